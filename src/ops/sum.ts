/**
 * Sum (ONNX) of one or more inputs with NumPy broadcasting. Autodiff uses it
 * as the GradSum that adds the edge gradients of a tensor with several
 * consumers (equal shapes: the 1-D path). Each grad op hands the output's
 * gradient to one input, summed over the axes that input was broadcast along
 * (an alias when none was). Versions 8 and 13 are registered.
 */
import { GradOp, Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { broadcastOutput, mapBroadcast } from '../lower/broadcast.js';
import { BroadcastArgGradOp, broadcastInputs, lowerReduceGrad, operand, sameDType, versions } from './binary.js';
import { gradOut } from './arg-grad.js';
import { sumCodelet } from '../../sim/codelets/binary.js';

const SUM = { domain: 'ai.onnx', type: 'Sum', version: 13 };
const SUM_ARG_GRAD = { domain: 'ai.graphcore', type: 'SumArgGrad', version: 1 };

export class SumOp extends Op {
  static readonly defaultOperatorId = SUM;
  constructor(settings: OpSettings, opid: OperatorIdentifier = SUM) {
    super(opid, settings);
  }
  setup(): void {
    const all = this.inputs.map((_, i) => i);
    if (all.length === 0) this.fail('needs at least one input');
    const dtype = sameDType(this, all);
    this.setOutInfo(0, { dtype, shape: broadcastInputs(this, all) });
  }
  override getGradOps(): GradOp[] {
    return this.inputs.map((_, i) => new SumArgGradOp(this, i));
  }
  override flops(): number {
    return (this.inputs.length - 1) * nelms(this.outInfo(0).shape);
  }
}

export class SumArgGradOp extends BroadcastArgGradOp {
  constructor(fwd: SumOp, arg: number) {
    super(SUM_ARG_GRAD, fwd, arg, [gradOut(0)], { name: `SumArgGrad${arg}(${fwd.name})`, loc: fwd.settings.loc });
  }
}

export const sumDefinitions: OpDefinition[] = [
  ...versions('Sum', [8, 13], (id) => defineOp({
    op: SumOp,
    id,
    description: 'Elementwise sum of one or more inputs, NumPy broadcasting (also the GradSum of autodiff)',
    inputs: [{ name: 'data_0', variadic: true }],
    outputs: [{ name: 'sum' }],
    grad: true,
    create: ({ settings }) => new SumOp(settings, id),
    lower: (op, ctx) => {
      const ins = op.inputs.map((_, i) => operand(ctx, i));
      if (ins.length === 1) {
        ctx.aliasOutput(0, ins[0].t);
        return;
      }
      mapBroadcast(ctx, sumCodelet, { in: ins }, broadcastOutput(ctx, 0, ins), { name: 'sum' });
    },
  })),
  defineOp({ op: SumArgGradOp, id: SUM_ARG_GRAD, description: "Sum's output gradient summed to one input's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
];
