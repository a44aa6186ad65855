/**
 * Cast (ONNX) between float32, float16 and int32 (int64 maps to int32 in the
 * IR), and to bool (int32 0/1, tilesim's form of ONNX's bool: 1 where the
 * input is nonzero). float -> float16 rounds to nearest even; float -> int
 * truncates toward zero. Its grad op casts the output gradient back to the input's type; a
 * cast to or from an integer type has no gradient.
 */
import { GradOp, Op, OutputGradOnlyGradOp, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { DType } from '../ir/dtype.js';
import { isFloat } from '../ir/dtype.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { UserError } from '../errors.js';
import type { LowerContext } from '../lower/context.js';
import { mapElementwise } from '../lower/elementwise.js';
import { castBoolCodelet, castCodelet } from '../../sim/codelets/cast.js';

/** ONNX TensorProto.DataType codes Cast accepts, and the IR type each becomes. */
export const CAST_TARGETS: Record<number, DType> = { 1: 'float32', 10: 'float16', 6: 'int32', 7: 'int32', 9: 'int32' };
/** ONNX's bool: a cast to it tests for nonzero. */
export const ONNX_BOOL = 9;
const ONNX_CODE: Record<DType, number> = { float32: 1, float16: 10, int32: 6 };

const CAST = { domain: 'ai.onnx', type: 'Cast', version: 6 };
const CAST_GRAD = { domain: 'ai.graphcore', type: 'CastGrad', version: 1 };

export class CastOp extends Op {
  constructor(
    readonly to: DType,
    settings: OpSettings,
    version = CAST.version,
    /** To ONNX bool: 1 where the input is nonzero, else 0 (`to` is int32). */
    readonly toBool = false,
  ) {
    super({ ...CAST, version }, settings);
  }
  setup(): void {
    this.setOutInfo(0, { dtype: this.to, shape: this.inInfo(0).shape });
  }
  override getGradOps(): GradOp[] {
    return isFloat(this.to) && isFloat(this.inInfo(0).dtype) ? [new CastGradOp(this)] : [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { to: this.toBool ? ONNX_BOOL : ONNX_CODE[this.to] };
  }
  override flops(): number {
    return 0;
  }
}

export class CastGradOp extends OutputGradOnlyGradOp {
  constructor(fwd: CastOp) {
    super(CAST_GRAD, fwd);
  }
}

function lowerCast(op: Op, ctx: LowerContext): void {
  const x = ctx.input(0);
  if (op instanceof CastOp && op.toBool) {
    mapElementwise(ctx, castBoolCodelet, { in: x }, ctx.output(0, { like: x }));
    return;
  }
  if (x.dtype === op.outInfo(0).dtype) {
    ctx.aliasOutput(0, x);
    return;
  }
  mapElementwise(ctx, castCodelet, { in: x }, ctx.output(0, { like: x }));
}

function create(version: number) {
  return ({ attributes, settings }: { attributes: import('../ir/registry.js').Attributes; settings: OpSettings }) => {
    const code = attributes.int('to');
    const to = CAST_TARGETS[code];
    if (!to) {
      throw new UserError(
        `node '${settings.name}' (Cast): 'to' = ${code} is not supported; supported: ${Object.entries(CAST_TARGETS).map(([c, d]) => `${c} (${Number(c) === ONNX_BOOL ? 'bool, as int32 0/1' : d})`).join(', ')}`,
        settings.loc,
      );
    }
    return new CastOp(to, settings, version, code === ONNX_BOOL);
  };
}

export const castDefinitions: OpDefinition[] = [6, 9, 13].map((version) => defineOp({
  op: CastOp,
  id: { ...CAST, version },
  description: 'Element type conversion: float32, float16, int32 (int64 as int32), bool (int32 0/1: nonzero)',
  inputs: [{ name: 'input' }],
  outputs: [{ name: 'output' }],
  attributes: { to: { type: 'int', description: 'ONNX TensorProto.DataType code' } },
  grad: true,
  create: create(version),
  lower: lowerCast,
}));
castDefinitions.push(defineOp({ op: CastGradOp, id: CAST_GRAD, description: "Cast's output gradient cast back to the input type", lower: lowerCast }));

