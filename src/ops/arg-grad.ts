/** The grad op most ops need: one output, the gradient of one forward input, its inputs named by mappers. */
import { GradOp, GradOpInType, type GradInOutMapper, type Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import type { OpClass, OpGuard } from '../ir/registry.js';

export const gradOut = (gradOpInIndex: number, fwdIndex = 0): GradInOutMapper => ({ gradOpInIndex, fwdIndex, type: GradOpInType.GradOut });
export const fwdIn = (gradOpInIndex: number, fwdIndex: number): GradInOutMapper => ({ gradOpInIndex, fwdIndex, type: GradOpInType.In });
export const fwdOut = (gradOpInIndex: number, fwdIndex: number): GradInOutMapper => ({ gradOpInIndex, fwdIndex, type: GradOpInType.Out });

/**
 * The gradient of forward input `arg`: output 0 has that input's info; its
 * inputs are whatever `mappers` say (in that order); `flopCount` its work.
 */
export class ArgGradOp<F extends Op = Op> extends GradOp {
  constructor(
    opid: OperatorIdentifier,
    readonly fwd: F,
    readonly arg: number,
    private readonly mappers: GradInOutMapper[],
    private readonly flopCount: () => number = () => 0,
    settings?: OpSettings,
  ) {
    super(opid, fwd, settings);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(this.arg));
  }
  gradInputInfo(): GradInOutMapper[] {
    return this.mappers;
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.arg]]);
  }
  override flops(): number {
    return this.flopCount();
  }
}

/**
 * defineOp's check for an ArgGradOp of forward class F: the lowering then sees
 * `op.fwd` as F (`defineOp({ op: gradOf(ConvOp), id, lower: (op, ctx) => op.fwd.spec() })`).
 */
export function gradOf<F extends Op>(fwd: OpClass<F>): OpGuard<ArgGradOp<F>> {
  return {
    name: `ArgGradOp<${fwd.name}>`,
    is: (op): op is ArgGradOp<F> => op instanceof ArgGradOp && op.fwd instanceof fwd,
    describe: (op) => (op instanceof ArgGradOp ? `ArgGradOp<${op.fwd.constructor.name}>` : op.constructor.name),
  };
}
