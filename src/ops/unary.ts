/**
 * Built-in ops of the unary family (ai.onnx): Neg, Abs, Sqrt, Exp, Log, Pow
 * (constant exponent: a scalar, or a tensor broadcast to the base), Relu,
 * LeakyRelu, Sigmoid, Tanh, Erf, Gelu, Elu, Selu, Celu, HardSigmoid,
 * HardSwish, Softplus, Softsign, ThresholdedRelu, Mish, Reciprocal, Sin, Cos,
 * Sinh, Cosh, Tan, Atan, Asin, Acos, Asinh, Acosh, Atanh, Identity and Dropout (src/ops/dropout.ts), each with its grad op
 * and their lowering side by side; Floor, Ceil, Round and Sign, which have no
 * grad op (their gradient is zero almost everywhere). Codelets: sim/codelets/unary.ts and sim/codelets/dropout.ts.
 *
 * Each op is registered at every ONNX version from the one in force at opset
 * 11 (older ones carry the legacy `consumed_inputs` attribute) up to the
 * newest one through opset 22; later versions only added element types
 * (bfloat16, integers), so all of one op's versions share one Op class and one
 * lowering, and the registry picks the highest version <= the model's opset.
 *
 * The grad ops follow PopART: each is an op of its own in ai.graphcore taking
 * y' and the one forward tensor its formula needs, x (In) or y (Out).
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import { isFloat } from '../ir/dtype.js';
import { GRAPHCORE_DOMAIN, ONNX_DOMAIN, type OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type AttributeDef, type Attributes, type Lowering, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import { mapElementwise } from '../lower/elementwise.js';
import type { Codelet } from '../../sim/codelet.js';
import { dropoutDefinitions, identityDefinitions } from './dropout.js';
import { shrinkCodelet, shrinkGradCodelet, acosCodelet, acosGradCodelet, acoshCodelet, acoshGradCodelet, asinCodelet, asinGradCodelet, asinhCodelet, asinhGradCodelet, atanCodelet, atanGradCodelet, atanhCodelet, atanhGradCodelet, tanCodelet, tanGradCodelet } from '../../sim/codelets/unary.js';
import { absCodelet, powBroadcastCodelet, powBroadcastGradCodelet, absGradCodelet, ceilCodelet, celuCodelet, celuGradCodelet, clipCodelet, clipGradCodelet, cosCodelet, cosGradCodelet, coshCodelet, coshGradCodelet, eluCodelet, eluGradCodelet, erfCodelet, erfGradCodelet, expCodelet, expGradCodelet, floorCodelet, geluCodelet, geluGradCodelet, hardSigmoidCodelet, hardSigmoidGradCodelet, hardSwishCodelet, hardSwishGradCodelet, leakyReluCodelet, leakyReluGradCodelet, logCodelet, logGradCodelet, mishCodelet, mishGradCodelet, negCodelet, powCodelet, powGradCodelet, reciprocalCodelet, reciprocalGradCodelet, reluCodelet, reluGradCodelet, roundCodelet, seluCodelet, seluGradCodelet, sigmoidCodelet, sigmoidGradCodelet, signCodelet, sinCodelet, sinGradCodelet, sinhCodelet, sinhGradCodelet, softplusCodelet, softplusGradCodelet, softsignCodelet, softsignGradCodelet, sqrtCodelet, sqrtGradCodelet, tanhCodelet, tanhGradCodelet, thresholdedReluCodelet, thresholdedReluGradCodelet } from '../../sim/codelets/unary.js';

/** What a unary op's grad op reads besides y'. */
type GradUses = GradOpInType.In | GradOpInType.Out | 'none';

export interface UnaryGradSpec {
  type: string;
  description: string;
  uses: GradUses;
  /** Codelet: fields gradOut and `in` (uses In) or `fwdOut` (uses Out), or, for 'none', a unary codelet applied to y'. */
  codelet: Codelet;
}

/**
 * One op of the family: the whole of a built-in, and of a custom op written
 * the short way (defineUnaryOp; docs/custom-ops.md).
 */
export interface UnarySpec {
  /** The forward op's domain, and its grad op's (default: ai.onnx, the grad op ai.graphcore). */
  domain?: string;
  type: string;
  versions: number[];
  description: string;
  /** The codelet object: fields `in` and `out`. */
  codelet: Codelet;
  /** Floating-point operations per element (add = mul = 1; a transcendental counted as 1). */
  flops: number;
  attributes?: Record<string, AttributeDef>;
  /** Vertex params from the node's checked attributes (and, for Pow, its constant exponent: set in setup). */
  params?: (a: Attributes) => Record<string, number>;
  /** Checks beyond "one float tensor in, the same out". */
  check?: (op: UnaryOp) => void;
  /** The grad op; none for an op that is not differentiable (Floor, Ceil, Round, Sign: zero almost everywhere, as PopART has no grad op). */
  grad?: UnaryGradSpec;
  /** Forward inputs the grad op also reads, after y' and x or y (Pow's exponent tensor). */
  gradExtraInputs?: (op: UnaryOp) => number[];
  /** Lowerings in place of the generic one-codelet maps. */
  lower?: Lowering<UnaryOp>;
  lowerGrad?: Lowering<UnaryGradOp>;
  /** Input names (default one, 'X'); `?` after a name marks it optional. */
  inputs?: readonly string[];
}

/** One ai.onnx elementwise unary op: y has x's shape and type. */
export class UnaryOp extends Op {
  readonly params: Record<string, number>;

  constructor(
    opid: OperatorIdentifier,
    readonly spec: UnarySpec,
    private readonly attrs: Record<string, AttributeValue>,
    params: Record<string, number>,
    settings: OpSettings,
  ) {
    super(opid, settings);
    this.params = { ...params };
  }

  setup(): void {
    const x = this.inInfo(0);
    if (!isFloat(x.dtype)) this.fail(`supports float32 and float16 inputs, got ${this.inId(0)} ${fmtInfo(x)}`);
    this.spec.check?.(this);
    this.setOutInfo(0, x);
  }

  override getGradOps(): GradOp[] {
    return this.spec.grad ? [new UnaryGradOp(this)] : [];
  }

  override attributes(): Record<string, AttributeValue> {
    return { ...this.attrs };
  }

  override flops(): number {
    return nelms(this.inInfo(0).shape) * this.spec.flops;
  }
}

/** The grad op of a UnaryOp: x' = g(y', x or y), shaped like x. */
export class UnaryGradOp extends GradOp {
  readonly params: Record<string, number>;

  constructor(readonly fwd: UnaryOp) {
    super(gradId(fwd.spec), fwd);
    this.params = fwd.params;
  }

  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }

  /** Input 0: y'; input 1 (unless the grad needs y' alone): x or y. */
  gradInputInfo(): GradInOutMapper[] {
    const uses = this.fwd.spec.grad!.uses;
    const m: GradInOutMapper[] = [{ gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut }];
    if (uses !== 'none') m.push({ gradOpInIndex: 1, fwdIndex: 0, type: uses });
    for (const i of this.fwd.spec.gradExtraInputs?.(this.fwd) ?? []) m.push({ gradOpInIndex: m.length, fwdIndex: i, type: GradOpInType.In });
    return m;
  }

  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }

  override flops(): number {
    return nelms(this.fwdInInfo(0).shape) * 2;
  }
}

function lowerUnary(u: UnaryOp, ctx: LowerContext): void {
  const x = ctx.input(0);
  mapElementwise(ctx, u.spec.codelet, { in: x }, ctx.output(0, { like: x }), u.params);
}

function lowerUnaryGrad(g: UnaryGradOp, ctx: LowerContext): void {
  const spec = g.fwd.spec.grad!;
  const dy = ctx.input(0);
  if (spec.uses === 'none') {
    mapElementwise(ctx, spec.codelet, { in: dy }, ctx.output(0, { like: dy }), g.params);
    return;
  }
  const f = ctx.input(1);
  const out = ctx.output(0, { like: f });
  mapElementwise(ctx, spec.codelet, { gradOut: dy, [spec.uses === GradOpInType.In ? 'in' : 'fwdOut']: f }, out, g.params);
}

/**
 * Pow's exponent must be a constant (an initializer that is not trainable),
 * read at setup: a scalar becomes the vertex param `exponent`; a tensor must
 * broadcast to the base (its shape, less leading 1s, a suffix of the base's)
 * and is read by the vertices (params.exponent left undefined).
 */
function checkPowExponent(op: UnaryOp): void {
  const id = op.inId(1);
  const t = op.graph.tensor(id);
  const data = op.graph.compileTimeData(id);
  if (!data) {
    const what = t.kind === 'variable' ? 'a trainable variable' : t.kind === 'stream' ? 'a streamed input' : `computed by op '${t.producer?.name ?? '?'}'`;
    op.fail(`the exponent '${id}' must be a constant (an initializer with trainable: false), but it is ${what}; only Pow with a constant exponent is supported`);
  }
  if (data.length === 1) {
    op.params.exponent = data[0];
    return;
  }
  const x = op.inInfo(0);
  const e = [...t.info.shape];
  while (e.length > 0 && e[0] === 1) e.shift();
  const off = x.shape.length - e.length;
  if (off < 0 || !e.every((d, i) => d === x.shape[off + i])) {
    op.fail(`the exponent '${id}' ${fmtInfo(t.info)} must broadcast to the base ${fmtInfo(x)}: a scalar, or a shape that is a suffix of the base's (the output has the base's shape)`);
  }
}

/** A tensor exponent: slice i of the output reads exponent[(offset + i) mod len], brought whole to each tile unless it is the base's size. */
function exponentField(ctx: LowerContext, e: BuildTensor, r: TileRange, outSize: number): { field: Slice; offset: number } {
  const same = e.size === outSize;
  return { field: same ? ctx.onTile(e, r.begin, r.end, r.tile) : ctx.onTile(e, 0, e.size, r.tile), offset: same ? 0 : r.begin % e.size };
}

function lowerPow(u: UnaryOp, ctx: LowerContext): void {
  const x = ctx.input(0);
  const out = ctx.output(0, { like: x });
  if (u.params.exponent !== undefined) {
    mapElementwise(ctx, powCodelet, { in: x }, out, u.params);
    return;
  }
  const e = ctx.input(1);
  ctx.computeSet('PowBroadcast');
  for (const r of ctx.ranges(out)) {
    const { field, offset } = exponentField(ctx, e, r, out.size);
    ctx.vertex(powBroadcastCodelet, r.tile, { in: ctx.onTile(x, r.begin, r.end, r.tile), exponent: field, out: ctx.slice(out, r.begin, r.end) }, { offset });
  }
}

function lowerPowGrad(g: UnaryGradOp, ctx: LowerContext): void {
  if (g.params.exponent !== undefined) {
    lowerUnaryGrad(g, ctx);
    return;
  }
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const e = ctx.input(2);
  const out = ctx.output(0, { like: x });
  ctx.computeSet('PowBroadcastGrad');
  for (const r of ctx.ranges(out)) {
    const { field, offset } = exponentField(ctx, e, r, out.size);
    const fields = { gradOut: ctx.onTile(dy, r.begin, r.end, r.tile), in: ctx.onTile(x, r.begin, r.end, r.tile), exponent: field, out: ctx.slice(out, r.begin, r.end) };
    ctx.vertex(powBroadcastGradCodelet, r.tile, fields, { offset });
  }
}

/**
 * Clip's bounds (optional inputs 1 and 2) must be constant scalars, read at
 * setup into the vertex params `min` and `max` (-/+ the float32 range when
 * absent).
 */
function checkClipBounds(op: UnaryOp): void {
  const bound = (i: number, name: string, absent: number): number => {
    if (!op.hasInput(i)) return absent;
    const t = op.graph.tensor(op.inId(i));
    const data = op.graph.compileTimeData(t.id);
    if (!data) op.fail(`${name} '${t.id}' must be a constant (an initializer with trainable: false); tilesim reads Clip's bounds at compile time`);
    if (data.length !== 1) op.fail(`${name} '${t.id}' must be a scalar, got ${fmtInfo(t.info)}`);
    return data[0];
  };
  op.params.min = bound(1, 'min', -3.4028234663852886e38);
  op.params.max = bound(2, 'max', 3.4028234663852886e38);
}

const ONE_INPUT: readonly string[] = ['X'];

export const UNARY_SPECS: readonly UnarySpec[] = [
  {
    type: 'Neg',
    versions: [6, 13],
    description: 'y = -x',
    codelet: negCodelet,
    flops: 1,
    grad: { type: 'NegGrad', description: "dx = -y'", uses: 'none', codelet: negCodelet },
  },
  {
    type: 'Abs',
    versions: [6, 13],
    description: 'y = |x|',
    codelet: absCodelet,
    flops: 1,
    grad: { type: 'AbsGrad', description: "dx = sign(x) y'", uses: GradOpInType.In, codelet: absGradCodelet },
  },
  {
    type: 'Sqrt',
    versions: [6, 13],
    description: 'y = sqrt(x)',
    codelet: sqrtCodelet,
    flops: 1,
    grad: { type: 'SqrtGrad', description: "dx = y' / (2 y)", uses: GradOpInType.Out, codelet: sqrtGradCodelet },
  },
  {
    type: 'Exp',
    versions: [6, 13],
    description: 'y = exp(x)',
    codelet: expCodelet,
    flops: 1,
    grad: { type: 'ExpGrad', description: "dx = y' y", uses: GradOpInType.Out, codelet: expGradCodelet },
  },
  {
    type: 'Log',
    versions: [6, 13],
    description: 'y = ln(x)',
    codelet: logCodelet,
    flops: 1,
    grad: { type: 'LogGrad', description: "dx = y' / x", uses: GradOpInType.In, codelet: logGradCodelet },
  },
  {
    type: 'Pow',
    versions: [7, 12, 13, 15],
    description: 'Z = X ^ Y with Y a constant (a scalar or broadcast to X); gradient for X only',
    codelet: powCodelet,
    flops: 3,
    inputs: ['X', 'Y'],
    check: checkPowExponent,
    gradExtraInputs: (op) => (op.params.exponent === undefined ? [1] : []),
    lower: lowerPow,
    lowerGrad: lowerPowGrad,
    grad: { type: 'PowArg0Grad', description: "dX = Z' Y X^(Y-1)", uses: GradOpInType.In, codelet: powGradCodelet },
  },
  {
    type: 'Relu',
    versions: [6, 13, 14],
    description: 'y = max(x, 0)',
    codelet: reluCodelet,
    flops: 1,
    grad: { type: 'ReluGrad', description: "dx = y' if y > 0 else 0", uses: GradOpInType.Out, codelet: reluGradCodelet },
  },
  {
    type: 'LeakyRelu',
    versions: [6, 16],
    description: 'y = x if x >= 0 else alpha x',
    codelet: leakyReluCodelet,
    flops: 2,
    attributes: { alpha: { type: 'float', default: 0.01, description: 'slope for x < 0' } },
    params: (a) => ({ alpha: a.float('alpha') }),
    grad: { type: 'LeakyReluGrad', description: "dx = y' if x >= 0 else alpha y'", uses: GradOpInType.In, codelet: leakyReluGradCodelet },
  },
  {
    type: 'Sigmoid',
    versions: [6, 13],
    description: 'y = 1 / (1 + exp(-x))',
    codelet: sigmoidCodelet,
    flops: 3,
    grad: { type: 'SigmoidGrad', description: "dx = y' y (1 - y)", uses: GradOpInType.Out, codelet: sigmoidGradCodelet },
  },
  {
    type: 'Tanh',
    versions: [6, 13],
    description: 'y = tanh(x)',
    codelet: tanhCodelet,
    flops: 1,
    grad: { type: 'TanhGrad', description: "dx = y' (1 - y^2)", uses: GradOpInType.Out, codelet: tanhGradCodelet },
  },
  {
    type: 'Erf',
    versions: [9, 13],
    description: 'y = erf(x)',
    codelet: erfCodelet,
    flops: 1,
    grad: { type: 'ErfGrad', description: "dx = y' 2/sqrt(pi) exp(-x^2)", uses: GradOpInType.In, codelet: erfGradCodelet },
  },
  {
    type: 'Gelu',
    versions: [20],
    description: "y = x Phi(x); approximate 'tanh': x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
    codelet: geluCodelet,
    flops: 8,
    attributes: { approximate: { type: 'string', default: 'none', description: "'none' (erf) or 'tanh'" } },
    params: (a) => ({ tanh: a.string('approximate') === 'tanh' ? 1 : 0 }),
    check: (op) => {
      const a = op.attributes().approximate;
      if (a !== 'none' && a !== 'tanh') op.fail(`attribute approximate must be 'none' or 'tanh', got '${String(a)}'`);
    },
    grad: { type: 'GeluGrad', description: "dx = y' d/dx gelu(x), in the node's form", uses: GradOpInType.In, codelet: geluGradCodelet },
  },

  // Activations and elementwise math of issue 15. Versions: the ones in force from opset 11 up
  // (src/onnx/versions.ts; later versions only added element types).
  {
    type: 'Elu',
    versions: [6],
    description: 'y = x if x >= 0 else alpha (exp(x) - 1)',
    codelet: eluCodelet,
    flops: 3,
    attributes: { alpha: { type: 'float', default: 1, description: 'scale for x < 0' } },
    params: (a) => ({ alpha: a.float('alpha') }),
    grad: { type: 'EluGrad', description: "dx = y' if x >= 0 else y' alpha exp(x)", uses: GradOpInType.In, codelet: eluGradCodelet },
  },
  {
    type: 'Selu',
    versions: [6],
    description: 'y = gamma x if x > 0 else gamma alpha (exp(x) - 1)',
    codelet: seluCodelet,
    flops: 4,
    attributes: {
      alpha: { type: 'float', default: 1.67326319217681884765625, description: 'scale of the exponential part' },
      gamma: { type: 'float', default: 1.05070102214813232421875, description: 'scale of the whole' },
    },
    params: (a) => ({ alpha: a.float('alpha'), gamma: a.float('gamma') }),
    grad: { type: 'SeluGrad', description: "dx = gamma y' if x > 0 else gamma alpha exp(x) y'", uses: GradOpInType.In, codelet: seluGradCodelet },
  },
  {
    type: 'Celu',
    versions: [12],
    description: 'y = max(0, x) + min(0, alpha (exp(x / alpha) - 1))',
    codelet: celuCodelet,
    flops: 5,
    attributes: { alpha: { type: 'float', default: 1, description: 'the CELU alpha' } },
    params: (a) => ({ alpha: a.float('alpha') }),
    check: (op) => {
      if (op.params.alpha === 0) op.fail('alpha must not be 0');
    },
    grad: { type: 'CeluGrad', description: "dx = y' if x >= 0 else y' exp(x / alpha)", uses: GradOpInType.In, codelet: celuGradCodelet },
  },
  {
    type: 'HardSigmoid',
    versions: [6],
    description: 'y = max(0, min(1, alpha x + beta))',
    codelet: hardSigmoidCodelet,
    flops: 4,
    attributes: { alpha: { type: 'float', default: 0.2, description: 'slope' }, beta: { type: 'float', default: 0.5, description: 'offset' } },
    params: (a) => ({ alpha: a.float('alpha'), beta: a.float('beta') }),
    grad: { type: 'HardSigmoidGrad', description: "dx = alpha y' where 0 < alpha x + beta < 1, else 0", uses: GradOpInType.In, codelet: hardSigmoidGradCodelet },
  },
  {
    type: 'HardSwish',
    versions: [14],
    description: 'y = x max(0, min(1, x / 6 + 1/2))',
    codelet: hardSwishCodelet,
    flops: 5,
    grad: { type: 'HardSwishGrad', description: "dx = 0 for x < -3, y' for x > 3, else y' (x / 3 + 1/2)", uses: GradOpInType.In, codelet: hardSwishGradCodelet },
  },
  {
    type: 'Softplus',
    versions: [1],
    description: 'y = ln(exp(x) + 1)',
    codelet: softplusCodelet,
    flops: 3,
    grad: { type: 'SoftplusGrad', description: "dx = y' sigmoid(x)", uses: GradOpInType.In, codelet: softplusGradCodelet },
  },
  {
    type: 'Softsign',
    versions: [1],
    description: 'y = x / (1 + |x|)',
    codelet: softsignCodelet,
    flops: 3,
    grad: { type: 'SoftsignGrad', description: "dx = y' / (1 + |x|)^2", uses: GradOpInType.In, codelet: softsignGradCodelet },
  },
  {
    type: 'ThresholdedRelu',
    versions: [10],
    description: 'y = x if x > alpha else 0',
    codelet: thresholdedReluCodelet,
    flops: 1,
    attributes: { alpha: { type: 'float', default: 1, description: 'threshold' } },
    params: (a) => ({ alpha: a.float('alpha') }),
    grad: { type: 'ThresholdedReluGrad', description: "dx = y' if x > alpha else 0", uses: GradOpInType.In, codelet: thresholdedReluGradCodelet },
  },
  {
    type: 'Shrink',
    versions: [9],
    description: 'y = x + bias if x < -lambd, x - bias if x > lambd, else 0',
    codelet: shrinkCodelet,
    flops: 2,
    attributes: { lambd: { type: 'float', default: 0.5, description: 'half width of the zero band' }, bias: { type: 'float', default: 0, description: 'moved towards 0 outside it' } },
    params: (a) => ({ lambd: a.float('lambd'), bias: a.float('bias') }),
    grad: { type: 'ShrinkGrad', description: "dx = y' where |x| > lambd, else 0", uses: GradOpInType.In, codelet: shrinkGradCodelet },
  },
  {
    type: 'Mish',
    versions: [18],
    description: 'y = x tanh(ln(1 + exp(x)))',
    codelet: mishCodelet,
    flops: 5,
    grad: { type: 'MishGrad', description: "dx = y' (tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)), sp = softplus(x)", uses: GradOpInType.In, codelet: mishGradCodelet },
  },
  {
    type: 'Reciprocal',
    versions: [6, 13],
    description: 'y = 1 / x',
    codelet: reciprocalCodelet,
    flops: 1,
    grad: { type: 'ReciprocalGrad', description: "dx = -y' y^2", uses: GradOpInType.Out, codelet: reciprocalGradCodelet },
  },
  { type: 'Sin', versions: [7], description: 'y = sin(x)', codelet: sinCodelet, flops: 1, grad: { type: 'SinGrad', description: "dx = y' cos(x)", uses: GradOpInType.In, codelet: sinGradCodelet } },
  { type: 'Cos', versions: [7], description: 'y = cos(x)', codelet: cosCodelet, flops: 1, grad: { type: 'CosGrad', description: "dx = -y' sin(x)", uses: GradOpInType.In, codelet: cosGradCodelet } },
  { type: 'Sinh', versions: [9], description: 'y = sinh(x)', codelet: sinhCodelet, flops: 1, grad: { type: 'SinhGrad', description: "dx = y' cosh(x)", uses: GradOpInType.In, codelet: sinhGradCodelet } },
  { type: 'Cosh', versions: [9], description: 'y = cosh(x)', codelet: coshCodelet, flops: 1, grad: { type: 'CoshGrad', description: "dx = y' sinh(x)", uses: GradOpInType.In, codelet: coshGradCodelet } },
  { type: 'Tan', versions: [7], description: 'y = tan(x)', codelet: tanCodelet, flops: 1, grad: { type: 'TanGrad', description: "dx = y' (1 + y^2)", uses: GradOpInType.Out, codelet: tanGradCodelet } },
  { type: 'Atan', versions: [7], description: 'y = atan(x)', codelet: atanCodelet, flops: 1, grad: { type: 'AtanGrad', description: "dx = y' / (1 + x^2)", uses: GradOpInType.In, codelet: atanGradCodelet } },
  { type: 'Asin', versions: [7], description: 'y = asin(x) (NaN outside [-1, 1])', codelet: asinCodelet, flops: 1, grad: { type: 'AsinGrad', description: "dx = y' / sqrt(1 - x^2)", uses: GradOpInType.In, codelet: asinGradCodelet } },
  { type: 'Acos', versions: [7], description: 'y = acos(x) (NaN outside [-1, 1])', codelet: acosCodelet, flops: 1, grad: { type: 'AcosGrad', description: "dx = -y' / sqrt(1 - x^2)", uses: GradOpInType.In, codelet: acosGradCodelet } },
  { type: 'Asinh', versions: [9], description: 'y = asinh(x)', codelet: asinhCodelet, flops: 1, grad: { type: 'AsinhGrad', description: "dx = y' / sqrt(x^2 + 1)", uses: GradOpInType.In, codelet: asinhGradCodelet } },
  { type: 'Acosh', versions: [9], description: 'y = acosh(x) (NaN below 1)', codelet: acoshCodelet, flops: 1, grad: { type: 'AcoshGrad', description: "dx = y' / sqrt(x^2 - 1)", uses: GradOpInType.In, codelet: acoshGradCodelet } },
  { type: 'Atanh', versions: [9], description: 'y = atanh(x) (NaN outside [-1, 1])', codelet: atanhCodelet, flops: 1, grad: { type: 'AtanhGrad', description: "dx = y' / (1 - x^2)", uses: GradOpInType.In, codelet: atanhGradCodelet } },
  {
    type: 'Clip',
    versions: [11, 12, 13],
    description: 'y = min(max(x, min), max); min and max optional constant scalars; dx = y\' where min <= x <= max',
    codelet: clipCodelet,
    flops: 2,
    inputs: ['input', 'min?', 'max?'],
    check: checkClipBounds,
    grad: { type: 'ClipGrad', description: "dx = y' where min <= x <= max, else 0", uses: GradOpInType.In, codelet: clipGradCodelet },
  },
  // Not differentiable (zero gradient almost everywhere): no grad op, as in PopART.
  { type: 'Floor', versions: [6, 13], description: 'y = floor(x); no gradient', codelet: floorCodelet, flops: 1 },
  { type: 'Ceil', versions: [6, 13], description: 'y = ceil(x); no gradient', codelet: ceilCodelet, flops: 1 },
  { type: 'Round', versions: [11], description: 'y = x rounded to the nearest integer, halves to even; no gradient', codelet: roundCodelet, flops: 1 },
  { type: 'Sign', versions: [9, 13], description: 'y = -1, 0 or 1 by the sign of x; no gradient', codelet: signCodelet, flops: 1 },
];

/** The grad op's identifier: the forward op's domain (ai.graphcore for an ai.onnx op), version 1. */
function gradId(spec: UnarySpec): OperatorIdentifier {
  return { domain: spec.domain ?? GRAPHCORE_DOMAIN, type: spec.grad!.type, version: 1 };
}

/** The definitions of a unary op at each of its versions, and of its grad op: one spec, one op, one codelet per direction. */
export function defineUnaryOp(spec: UnarySpec): OpDefinition[] {
  const defs: OpDefinition[] = spec.versions.map((version) => {
    const id = { domain: spec.domain ?? ONNX_DOMAIN, type: spec.type, version };
    return defineOp({
      op: UnaryOp,
      id,
      description: spec.description,
      inputs: (spec.inputs ?? ONE_INPUT).map((name) => (name.endsWith('?') ? { name: name.slice(0, -1), optional: true } : { name })),
      outputs: [{ name: spec.type === 'Pow' ? 'Z' : 'Y' }],
      attributes: spec.attributes,
      grad: spec.grad !== undefined,
      create: ({ attributes, settings }) => new UnaryOp(id, spec, attributes.all(), spec.params?.(attributes) ?? {}, settings),
      lower: spec.lower ?? lowerUnary,
    });
  });
  if (spec.grad) defs.push(defineOp({ op: UnaryGradOp, id: gradId(spec), description: spec.grad.description, lower: spec.lowerGrad ?? lowerUnaryGrad }));
  return defs;
}

export const unaryDefinitions: OpDefinition[] = [...UNARY_SPECS.flatMap(defineUnaryOp), ...identityDefinitions, ...dropoutDefinitions];
