/**
 * Codelets of the unary op family (popops' UnaryOp1D and BinaryOp1D
 * MultiVertices in structure): the forward ops take `in` and write `out`; the
 * grad ops take `gradOut` (y') and one forward tensor, `in` (x) or `fwdOut`
 * (y), and write `out` (x'). Arithmetic is done in double precision and
 * rounded once on the store (float16 fields arrive as Float32Arrays and are
 * rounded to half by the vertex runner). Neg, Abs, Sqrt, Relu, ReluGrad and
 * ExpGrad run on the WebAssembly kernels over tile memory: each is one IEEE
 * fp32 operation (or a select), so the bits equal the double-then-round
 * TypeScript (test/sim/wasm-kernels.test.ts).
 *
 * Cycle estimates: forward `W x (base + inner(ceil(N/W))) + 20` (base 17, 33
 * for loops that evaluate exp), grads `W x ((float ? 29 : 26) + inner) + 11`
 * (../shared/ipu-architecture.md §3, from PopLibs' popops cycle
 * estimators). The loop cost of each op, and where it comes from, is beside it
 * below: "§3" is a PopLibs figure quoted there; "DERIVED" composes §3 figures
 * (a transcendental's loop plus 3 cycles per extra ALU op on a 64-bit vector,
 * the add/mul rate of §3); where §3 has no half figure, half is costed as
 * float (no faster per element).
 */
import type { Codelet } from '../codelet.js';
import { defineCodelet, type CodeletDef, type ParamSpecs, type ParamValues } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceDType } from '../program.js';
import { dropoutCodelets } from './dropout.js';
import { addLoop, binaryMultiVertex, binaryOp2D, unaryMultiVertex, unaryOp2D, type LoopCost } from './estimators.js';
import { regionCounts, regionsInPlace, withMultiRegion } from './multi-region.js';
import { laneWise } from '../wasm/kernels.js';
import type { UnaryOp } from '../wasm/kernels-wat.js';
import { erf, erfGrad, gelu, geluGrad, geluTanh, geluTanhGrad } from './unary-math.js';

type LoopFor = (dtype: DeviceDType, params: Readonly<Record<string, number | undefined>>) => LoopCost;

function loop(cyclesPerLoop: number, unroll: number): LoopCost {
  return { cyclesPerLoop, vectorised: false, unroll };
}
/** A float loop, and a half loop (§3's half figure where there is one; otherwise the float loop). */
function byType(f: LoopCost, h: LoopCost = f): LoopFor {
  return (d) => (d === 'float16' ? h : f);
}
/** k ALU ops (add, mul, max, compare, select) per 64-bit vector: 3 cycles each, a vector being 2 floats or 4 halves (§3 add/mul rate). */
function alu(k: number): LoopFor {
  return (d) => loop(3 * k, d === 'float16' ? 4 : 2);
}

// Forward loops.
/** DERIVED: a sign flip is one ALU op per vector. */
const NEG_LOOP = alu(1);
/** DERIVED: clearing the sign bit is one ALU op per vector. */
const ABS_LOOP = alu(1);
/** §3: sqrt float {10, no, 2}; half as float. */
const SQRT_LOOP = byType(loop(10, 2));
/** §3: exp float {6, no, 2}, half {4, no, 4}; base 33. */
const EXP_LOOP = byType(loop(6, 2), loop(4, 4));
/** §3: log float {12, no, 2}; half as float. */
const LOG_LOOP = byType(loop(12, 2));
/** DERIVED: x^p = exp(p log x): log 12 + mul 3 + exp 6 per 2 floats; half as float; base 33 (it evaluates exp). */
const POW_LOOP = byType(loop(21, 2));
/** §3: relu float {3, no, 2}; half: one max per 64-bit vector of 4 halves (alu(1)). */
const RELU_LOOP = alu(1);
/** DERIVED (as the custom.ops LeakyRelu example): the relu loop plus one select, 4 cycles per vector. */
const LEAKY_LOOP: LoopFor = (d) => loop(4, d === 'float16' ? 4 : 2);
/** §3: sigmoid float {12, no, 2}, half {6, no, 4}. */
const SIGMOID_LOOP = byType(loop(12, 2), loop(6, 4));
/** §3: tanh float {12, no, 2}; half as float. */
const TANH_LOOP = byType(loop(12, 2));
/** DERIVED: §3 has no erf figure; costed as tanh, the transcendental of its class, {12, no, 2}; half as float. */
const ERF_LOOP = byType(loop(12, 2));
/**
 * DERIVED: exact GELU = erf 12 + 3 ALU ops (scale by 1/sqrt 2, add 1, times x/2) = 21;
 * tanh GELU = tanh 12 + 5 ALU ops (x^2, 1 + c x^2, times x, times k, then 1 + t, times x/2 fused) = 27. Half as float.
 */
const GELU_LOOP: LoopFor = (_d, p) => (p.tanh ? loop(27, 2) : loop(21, 2));

// Grad loops (binary: y' and a forward tensor).
/** DERIVED: select y' or -y' by the sign of x, as the LeakyRelu example's select loop, 4 cycles per vector. */
const ABS_GRAD_LOOP: LoopFor = (d) => loop(4, d === 'float16' ? 4 : 2);
/** DERIVED: y' / (2 y): §3 divide (float {10, no, 2}, half {21, no, 4}) plus one mul (3). */
const SQRT_GRAD_LOOP = byType(loop(13, 2), loop(24, 4));
/** §3: y' y is one mul, the add/mul loop. */
const EXP_GRAD_LOOP: LoopFor = (d) => addLoop(d);
/** §3: y' / x is the divide loop, float {10, no, 2}, half {21, no, 4}. */
const LOG_GRAD_LOOP = byType(loop(10, 2), loop(21, 4));
/** DERIVED: y' p x^(p-1): the pow loop 21 plus two muls 6; half as float. */
const POW_GRAD_LOOP = byType(loop(27, 2));
/** §3: the relu loop (a compare-select per vector). */
const RELU_GRAD_LOOP = alu(1);
/** DERIVED: y' y (1 - y): 3 ALU ops. */
const SIGMOID_GRAD_LOOP = alu(3);
/** DERIVED: y' (1 - y^2): 3 ALU ops. */
const TANH_GRAD_LOOP = alu(3);
/** DERIVED: y' 2/sqrt(pi) exp(-x^2): exp 6 plus 3 ALU ops 9 (x^2, scale, times y'); half as float. */
const ERF_GRAD_LOOP = byType(loop(15, 2));
/** DERIVED: exact form erf 12 + exp 6 + 5 ALU ops 15 = 33; tanh form tanh 12 + 8 ALU ops 24 = 36. Half as float. */
const GELU_GRAD_LOOP: LoopFor = (_d, p) => (p.tanh ? loop(36, 2) : loop(33, 2));

/** The loop part of a 1-D estimate source (after its first '; '). */
function loopOf(estimateSource: string): string {
  const at = estimateSource.indexOf('; ');
  return at < 0 ? estimateSource : estimateSource.slice(at + 2);
}

function source(kind: 'unary' | 'binary', what: string, base = 17): string {
  return kind === 'unary'
    ? `PopLibs UnaryOp1D MultiVertex: W x (${base} + inner) + 20; ${what}`
    : `PopLibs BinaryOp1D MultiVertex: W x (29 float / 26 half + inner) + 11; ${what}`;
}

const FLOATS = ['float32', 'float16'] as const;
const UNARY_FIELDS = { in: { direction: 'input', dtypes: FLOATS }, out: { direction: 'output', dtypes: FLOATS } } as const;
/** A forward unary codelet's fields: x as `in`, y as `out`. */
export type UnaryFields = typeof UNARY_FIELDS;
/** A grad codelet's fields: y', the forward tensor its rule reads (x as `in`, y as `fwdOut`), and x'. */
export type GradFields<W extends 'in' | 'fwdOut'> = {
  gradOut: { direction: 'input'; dtypes: typeof FLOATS };
  out: { direction: 'output'; dtypes: typeof FLOATS };
} & Record<W, { direction: 'input'; dtypes: typeof FLOATS }>;

/** A forward codelet: out[i] = f(in[i]); `make` turns the vertex params (declared in `params`) into f. */
export function unaryCodelet<const P extends ParamSpecs>(
  name: string,
  params: P,
  make: (p: ParamValues<P>) => (x: number) => number,
  loopFor: LoopFor,
  estimateSource: string,
  base = 17,
  wasm?: UnaryOp,
  domain?: string,
): CodeletDef<UnaryFields, P> {
  const def = defineCodelet({
    ...(domain !== undefined ? { domain } : {}),
    name,
    kind: 'multi',
    fields: UNARY_FIELDS,
    params,
    compute({ fields, params }) {
      const x = fields.in;
      const y = fields.out;
      // The kernel when both are fp32 views of tile memory (decoded float16 included) and as long.
      const w = wasm && x.length === y.length ? laneWise(y, [x]) : undefined;
      if (w) return w.K.x[wasm!](w.ins[0], w.out, y.length);
      const f = make(params);
      for (let i = 0; i < y.length; i++) y[i] = f(x[i]);
    },
    cycles(v, device) {
      const d = fieldDType(v.fields.out);
      return unaryMultiVertex(regionCount(v.fields.out), d, loopFor(d, v.params), device, base);
    },
    estimateSource,
  });
  return withMultiRegion(
    def,
    (v, device) => {
      const d = fieldDType(v.fields.out);
      return unaryOp2D(regionCounts(v.fields.out), d, loopFor(d, v.params), device);
    },
    `PopLibs UnaryOp2D worker vertex: 20 + inner per region; ${loopOf(estimateSource)}`,
  );
}

/** A grad codelet: out[i] = g(gradOut[i], fwd[i]) where fwd is the forward input `in` or output `fwdOut`. */
export function gradCodelet<const W extends 'in' | 'fwdOut', const P extends ParamSpecs>(
  name: string,
  fwdField: W,
  params: P,
  make: (p: ParamValues<P>) => (dy: number, f: number) => number,
  loopFor: LoopFor,
  estimateSource: string,
  wasm?: 'relu_grad' | 'mul_vv',
  domain?: string,
): CodeletDef<GradFields<W>, P> {
  // A computed key widens to an index signature, and compute cannot resolve field types over a generic W:
  // it is typed with both forward fields, of which it reads only fwdField; the codelet made declares GradFields<W>.
  const fields = { gradOut: UNARY_FIELDS.in, [fwdField]: UNARY_FIELDS.in, out: UNARY_FIELDS.out } as GradFields<'in' | 'fwdOut'>;
  const def = defineCodelet({
    ...(domain !== undefined ? { domain } : {}),
    name,
    kind: 'multi',
    fields,
    params,
    compute({ fields, params }) {
      const dy = fields.gradOut;
      const f = fields[fwdField];
      const dx = fields.out;
      const w = wasm && dy.length === dx.length && f.length === dx.length ? laneWise(dx, [dy, f]) : undefined;
      if (w) return w.K.x[wasm!](w.ins[0], w.ins[1], w.out, dx.length);
      const g = make(params);
      for (let i = 0; i < dx.length; i++) dx[i] = g(dy[i], f[i]);
    },
    cycles(v, device) {
      const d = fieldDType(v.fields.out);
      return binaryMultiVertex(regionCount(v.fields.out), d, loopFor(d, v.params), device);
    },
    estimateSource,
  });
  withMultiRegion(
    def,
    (v, device) => {
      const d = fieldDType(v.fields.out);
      return binaryOp2D(regionCounts(v.fields.out), d, loopFor(d, v.params), device, regionsInPlace(v, 'gradOut') || regionsInPlace(v, fwdField));
    },
    `PopLibs BinaryOp2D worker vertex: 5 (in place 20) + inner per region; ${loopOf(estimateSource)}`,
  );
  return def as CodeletDef as CodeletDef<GradFields<W>, P>;
}

export const negCodelet = unaryCodelet('Neg', {}, () => (x) => -x, NEG_LOOP, source('unary', 'negate: 1 ALU op per 64-bit vector (DERIVED)'), 17, 'neg');
export const absCodelet = unaryCodelet('Abs', {}, () => Math.abs, ABS_LOOP, source('unary', 'abs: 1 ALU op per 64-bit vector (DERIVED)'), 17, 'abs');
export const sqrtCodelet = unaryCodelet('Sqrt', {}, () => Math.sqrt, SQRT_LOOP, source('unary', 'sqrt float {10, no, 2} (§3)'), 17, 'sqrt');
export const expCodelet = unaryCodelet('Exp', {}, () => Math.exp, EXP_LOOP, source('unary', 'exp float {6, no, 2}, half {4, no, 4} (§3)', 33), 33);
export const logCodelet = unaryCodelet('Log', {}, () => Math.log, LOG_LOOP, source('unary', 'log float {12, no, 2} (§3)'));
export const powCodelet = unaryCodelet(
  'Pow',
  { exponent: 'float' },
  (p) => {
    const e = Math.fround(p.exponent);
    return (x) => Math.pow(x, e);
  },
  POW_LOOP,
  source('unary', 'x^p = exp(p log x): log 12 + mul 3 + exp 6 per 2 floats (DERIVED)', 33),
  33,
);
/**
 * Pow with a tensor exponent: out[i] = in[i] ^ exponent[(offset + i) mod len(exponent)], so one
 * codelet covers an exponent the size of the base (offset 0) and one broadcast along leading axes.
 */
export const powBroadcastCodelet = defineCodelet({
  name: 'PowBroadcast',
  kind: 'multi',
  fields: {
    in: { direction: 'input', dtypes: ['float32', 'float16'] },
    exponent: { direction: 'input', dtypes: ['float32', 'float16', 'int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { offset: 'int' },
  compute({ fields, params }) {
    const x = fields.in;
    const e = fields.exponent;
    const y = fields.out;
    let j = params.offset % e.length;
    for (let i = 0; i < y.length; i++) {
      y[i] = Math.pow(x[i], e[j]);
      if (++j === e.length) j = 0;
    }
  },
  cycles(v, device) {
    const d = fieldDType(v.fields.out);
    return binaryMultiVertex(regionCount(v.fields.out), d, POW_LOOP(d, v.params), device);
  },
  estimateSource: source('binary', 'x^p = exp(p log x): log 12 + mul 3 + exp 6 per 2 floats (DERIVED)'),
});

/** Its grad for the base: out[i] = gradOut[i] p x^(p - 1), p = exponent[(offset + i) mod len]. */
export const powBroadcastGradCodelet = defineCodelet({
  name: 'PowBroadcastGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', dtypes: ['float32', 'float16'] },
    in: { direction: 'input', dtypes: ['float32', 'float16'] },
    exponent: { direction: 'input', dtypes: ['float32', 'float16', 'int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { offset: 'int' },
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const x = fields.in;
    const e = fields.exponent;
    const dx = fields.out;
    let j = params.offset % e.length;
    for (let i = 0; i < dx.length; i++) {
      const p = e[j];
      dx[i] = p === 0 ? 0 : dy[i] * p * Math.pow(x[i], p - 1);
      if (++j === e.length) j = 0;
    }
  },
  cycles(v, device) {
    const d = fieldDType(v.fields.out);
    return binaryMultiVertex(regionCount(v.fields.out), d, POW_GRAD_LOOP(d, v.params), device);
  },
  estimateSource: source('binary', 'the pow loop 21 plus two muls, {27, no, 2} (DERIVED; a third operand costed as binary)'),
});

export const reluCodelet = unaryCodelet('Relu', {}, () => (x) => (x > 0 ? x : 0), RELU_LOOP, source('unary', 'relu float {3, no, 2} (§3)'), 17, 'relu');
export const leakyReluCodelet = unaryCodelet(
  'OnnxLeakyRelu',
  { alpha: 'float' },
  (p) => {
    const alpha = Math.fround(p.alpha); // a float vertex field on the device
    return (x) => (x >= 0 ? x : alpha * x);
  },
  LEAKY_LOOP,
  source('unary', 'relu loop plus a select, 4 cycles per 64-bit vector (DERIVED)'),
);
export const sigmoidCodelet = unaryCodelet('Sigmoid', {}, () => (x) => 1 / (1 + Math.exp(-x)), SIGMOID_LOOP, source('unary', 'sigmoid float {12, no, 2}, half {6, no, 4} (§3)'));
export const tanhCodelet = unaryCodelet('Tanh', {}, () => Math.tanh, TANH_LOOP, source('unary', 'tanh float {12, no, 2} (§3)'));
export const erfCodelet = unaryCodelet('Erf', {}, () => erf, ERF_LOOP, source('unary', 'erf costed as tanh, {12, no, 2} (DERIVED: no §3 figure)'));
export const geluCodelet = unaryCodelet(
  'Gelu',
  { tanh: 'int' },
  (p) => (p.tanh ? geluTanh : gelu),
  GELU_LOOP,
  source('unary', 'exact: erf 12 + 3 ALU ops = {21, no, 2}; tanh form: tanh 12 + 5 ALU ops = {27, no, 2} (DERIVED)'),
);

export const absGradCodelet = gradCodelet('AbsGrad', 'in', {}, () => (dy, x) => (x > 0 ? dy : x < 0 ? -dy : 0), ABS_GRAD_LOOP, source('binary', 'select by sign, 4 cycles per 64-bit vector (DERIVED)'));
export const sqrtGradCodelet = gradCodelet('SqrtGrad', 'fwdOut', {}, () => (dy, y) => dy / (2 * y), SQRT_GRAD_LOOP, source('binary', 'divide (§3) plus a mul: float {13, no, 2}, half {24, no, 4}'));
export const expGradCodelet = gradCodelet('ExpGrad', 'fwdOut', {}, () => (dy, y) => dy * y, EXP_GRAD_LOOP, source('binary', 'one mul, 3 cycles per 64-bit vector (§3)'), 'mul_vv');
export const logGradCodelet = gradCodelet('LogGrad', 'in', {}, () => (dy, x) => dy / x, LOG_GRAD_LOOP, source('binary', 'divide float {10, no, 2}, half {21, no, 4} (§3)'));
export const powGradCodelet = gradCodelet(
  'PowGrad',
  'in',
  { exponent: 'float' },
  (p) => {
    const e = Math.fround(p.exponent);
    return (dy, x) => (e === 0 ? 0 : dy * e * Math.pow(x, e - 1));
  },
  POW_GRAD_LOOP,
  source('binary', 'the pow loop 21 plus two muls, {27, no, 2} (DERIVED)'),
);
export const reluGradCodelet = gradCodelet('ReluGrad', 'fwdOut', {}, () => (dy, y) => (y > 0 ? dy : 0), RELU_GRAD_LOOP, source('binary', 'the relu loop, {3, no, 2} (§3)'), 'relu_grad');
export const leakyReluGradCodelet = gradCodelet(
  'OnnxLeakyReluGrad',
  'in',
  { alpha: 'float' },
  (p) => {
    const alpha = Math.fround(p.alpha);
    return (dy, x) => (x >= 0 ? dy : alpha * dy);
  },
  LEAKY_LOOP,
  source('binary', 'a select, 4 cycles per 64-bit vector (DERIVED)'),
);
export const sigmoidGradCodelet = gradCodelet('SigmoidGrad', 'fwdOut', {}, () => (dy, y) => dy * y * (1 - y), SIGMOID_GRAD_LOOP, source('binary', '3 ALU ops, {9, no, 2} (DERIVED)'));
export const tanhGradCodelet = gradCodelet('TanhGrad', 'fwdOut', {}, () => (dy, y) => dy * (1 - y * y), TANH_GRAD_LOOP, source('binary', '3 ALU ops, {9, no, 2} (DERIVED)'));
export const erfGradCodelet = gradCodelet('ErfGrad', 'in', {}, () => (dy, x) => dy * erfGrad(x), ERF_GRAD_LOOP, source('binary', 'exp 6 plus 3 ALU ops, {15, no, 2} (DERIVED)'));
export const geluGradCodelet = gradCodelet(
  'GeluGrad',
  'in',
  { tanh: 'int' },
  (p) => {
    const d = p.tanh ? geluTanhGrad : geluGrad;
    return (dy, x) => dy * d(x);
  },
  GELU_GRAD_LOOP,
  source('binary', 'exact: erf 12 + exp 6 + 5 ALU ops = {33, no, 2}; tanh form: tanh 12 + 8 ALU ops = {36, no, 2} (DERIVED)'),
);

// ---------------------------------------------------------------------------
// Activations and elementwise math of issue 15. Loops DERIVED from §3 figures as above:
// exp {6, no, 2}, log {12, no, 2}, tanh and sigmoid {12, no, 2}, divide float {10, no, 2},
// half {21, no, 4}, 3 cycles per extra ALU op (add, mul, max, min, compare, select) per
// 64-bit vector; sin and cos, which §3 lacks, costed as tanh. Loops that evaluate exp use
// the base of 33, as Exp does.

/** Rounds a vertex param to the float the device holds. */
const f32 = Math.fround;

/** exp 6 + sub 1 and scale 3 + select 3 = {15, no, 2}. */
const ELU_LOOP = byType(loop(15, 2));
/** exp 6 + 3 ALU ops (alpha, -alpha, gamma) + select 3 = {18, no, 2}. */
const SELU_LOOP = byType(loop(18, 2));
/** x / alpha (a mul) + exp 6 + sub, mul, min, max, add 15 = {24, no, 2}. */
const CELU_LOOP = byType(loop(24, 2));
/** alpha x + beta, max, min: 4 ALU ops. */
const HARD_SIGMOID_LOOP = alu(4);
/** x / 6 + 1/2, max, min, times x: 5 ALU ops. */
const HARD_SWISH_LOOP = alu(5);
/** exp 6 + log 12 + 2 ALU ops (the stable form's max and add) = {24, no, 2}. */
const SOFTPLUS_LOOP = byType(loop(24, 2));
/** |x| and 1 + |x|: 2 ALU ops + divide float {10, no, 2}, half {21, no, 4}. */
const SOFTSIGN_LOOP = byType(loop(16, 2), loop(27, 4));
/** compare and select, as the LeakyRelu select loop: 4 cycles per vector. */
const THRESHOLD_LOOP: LoopFor = (d) => loop(4, d === 'float16' ? 4 : 2);
/** softplus 24 + tanh 12 + mul 3 = {39, no, 2}. */
const MISH_LOOP = byType(loop(39, 2));
/** §3: divide float {10, no, 2}, half {21, no, 4}. */
const RECIPROCAL_LOOP = byType(loop(10, 2), loop(21, 4));
/** sin, cos: no §3 figure; costed as tanh {12, no, 2}. */
const TRIG_LOOP = byType(loop(12, 2));
/** exp 6 + divide 10 (e^-x = 1 / e^x) + add and halve 6 = {22, no, 2}. */
const HYPERBOLIC_LOOP = byType(loop(22, 2));
/** floor, ceil: one ALU op per vector (f32int); round: 2 (the half-to-even fix-up); sign: compare and select, 2. */
const ROUND1_LOOP = alu(1);
const ROUND2_LOOP = alu(2);

/** exp 6 + 2 ALU ops (scale, times y') + select = {15, no, 2}. */
const ELU_GRAD_LOOP = byType(loop(15, 2));
/** exp 6 + 3 ALU ops + select = {18, no, 2}. */
const SELU_GRAD_LOOP = byType(loop(18, 2));
/** two compares, a mul and a select: 4 ALU ops. */
const HARD_SIGMOID_GRAD_LOOP = alu(4);
/** two compares, x / 3 + 1/2, times y', select: 5 ALU ops. */
const HARD_SWISH_GRAD_LOOP = alu(5);
/** sigmoid {12, no, 2} + mul 3. */
const SOFTPLUS_GRAD_LOOP = byType(loop(15, 2));
/** abs, add, square: 3 ALU ops + divide = float {19, no, 2}, half {30, no, 4}. */
const SOFTSIGN_GRAD_LOOP = byType(loop(19, 2), loop(30, 4));
/** softplus 24 + tanh 12 + sigmoid 12 + 5 ALU ops 15 = {63, no, 2}. */
const MISH_GRAD_LOOP = byType(loop(63, 2));
/** -y' y y: 2 muls (the sign folded in). */
const RECIPROCAL_GRAD_LOOP = alu(2);
/** cos or sin (as tanh, 12) + mul 3. */
const TRIG_GRAD_LOOP = byType(loop(15, 2));
/** cosh or sinh 22 + mul 3. */
const HYPERBOLIC_GRAD_LOOP = byType(loop(25, 2));

/** ln(1 + e^x) without overflow: x + ln(1 + e^-x) for x > 0. */
function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}
function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
/** Round half to even (ONNX Round, numpy.round). */
function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

export const eluCodelet = unaryCodelet(
  'Elu',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (x) => (x >= 0 ? x : a * Math.expm1(x));
  },
  ELU_LOOP,
  source('unary', 'exp 6 + 2 ALU ops + a select, {15, no, 2} (DERIVED)', 33),
  33,
);
export const seluCodelet = unaryCodelet(
  'Selu',
  { alpha: 'float', gamma: 'float' },
  (p) => {
    const a = f32(p.alpha);
    const g = f32(p.gamma);
    return (x) => (x > 0 ? g * x : g * (a * Math.exp(x) - a));
  },
  SELU_LOOP,
  source('unary', 'exp 6 + 3 ALU ops + a select, {18, no, 2} (DERIVED)', 33),
  33,
);
export const celuCodelet = unaryCodelet(
  'Celu',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (x) => Math.max(0, x) + Math.min(0, a * Math.expm1(x / a));
  },
  CELU_LOOP,
  source('unary', 'exp 6 + 6 ALU ops, {24, no, 2} (DERIVED)', 33),
  33,
);
export const hardSigmoidCodelet = unaryCodelet(
  'HardSigmoid',
  { alpha: 'float', beta: 'float' },
  (p) => {
    const a = f32(p.alpha);
    const b = f32(p.beta);
    return (x) => Math.max(0, Math.min(1, f32(a * x) + b));
  },
  HARD_SIGMOID_LOOP,
  source('unary', '4 ALU ops, {12, no, 2} (DERIVED)'),
);
export const hardSwishCodelet = unaryCodelet('HardSwish', {}, () => (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)), HARD_SWISH_LOOP, source('unary', '5 ALU ops, {15, no, 2} (DERIVED)'));
export const softplusCodelet = unaryCodelet('Softplus', {}, () => softplus, SOFTPLUS_LOOP, source('unary', 'exp 6 + log 12 + 2 ALU ops, {24, no, 2} (DERIVED)', 33), 33);
export const softsignCodelet = unaryCodelet('Softsign', {}, () => (x) => x / (1 + Math.abs(x)), SOFTSIGN_LOOP, source('unary', '2 ALU ops + divide: float {16, no, 2}, half {27, no, 4} (DERIVED)'));
export const thresholdedReluCodelet = unaryCodelet(
  'ThresholdedRelu',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (x) => (x > a ? x : 0);
  },
  THRESHOLD_LOOP,
  source('unary', 'compare and select, 4 cycles per 64-bit vector (DERIVED)'),
);
export const mishCodelet = unaryCodelet('Mish', {}, () => (x) => x * Math.tanh(softplus(x)), MISH_LOOP, source('unary', 'softplus 24 + tanh 12 + mul 3, {39, no, 2} (DERIVED)', 33), 33);
export const reciprocalCodelet = unaryCodelet('Reciprocal', {}, () => (x) => 1 / x, RECIPROCAL_LOOP, source('unary', 'divide float {10, no, 2}, half {21, no, 4} (§3)'));
export const sinCodelet = unaryCodelet('Sin', {}, () => Math.sin, TRIG_LOOP, source('unary', 'sin costed as tanh, {12, no, 2} (DERIVED: no §3 figure)'));
export const cosCodelet = unaryCodelet('Cos', {}, () => Math.cos, TRIG_LOOP, source('unary', 'cos costed as tanh, {12, no, 2} (DERIVED: no §3 figure)'));
export const sinhCodelet = unaryCodelet('Sinh', {}, () => Math.sinh, HYPERBOLIC_LOOP, source('unary', 'exp 6 + divide 10 + 2 ALU ops, {22, no, 2} (DERIVED)', 33), 33);
export const coshCodelet = unaryCodelet('Cosh', {}, () => Math.cosh, HYPERBOLIC_LOOP, source('unary', 'exp 6 + divide 10 + 2 ALU ops, {22, no, 2} (DERIVED)', 33), 33);
export const floorCodelet = unaryCodelet('Floor', {}, () => Math.floor, ROUND1_LOOP, source('unary', 'one ALU op per 64-bit vector (DERIVED)'));
export const ceilCodelet = unaryCodelet('Ceil', {}, () => Math.ceil, ROUND1_LOOP, source('unary', 'one ALU op per 64-bit vector (DERIVED)'));
export const roundCodelet = unaryCodelet('Round', {}, () => roundHalfEven, ROUND2_LOOP, source('unary', 'round plus the half-to-even fix-up, 2 ALU ops (DERIVED)'));
export const signCodelet = unaryCodelet('Sign', {}, () => (x) => (x > 0 ? 1 : x < 0 ? -1 : x), ROUND2_LOOP, source('unary', 'compare and select, 2 ALU ops (DERIVED)'));

export const eluGradCodelet = gradCodelet(
  'EluGrad',
  'in',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (dy, x) => (x >= 0 ? dy : dy * a * Math.exp(x));
  },
  ELU_GRAD_LOOP,
  source('binary', 'exp 6 + 2 ALU ops + a select, {15, no, 2} (DERIVED)'),
);
export const seluGradCodelet = gradCodelet(
  'SeluGrad',
  'in',
  { alpha: 'float', gamma: 'float' },
  (p) => {
    const a = f32(p.alpha);
    const g = f32(p.gamma);
    return (dy, x) => (x > 0 ? g * dy : g * a * Math.exp(x) * dy);
  },
  SELU_GRAD_LOOP,
  source('binary', 'exp 6 + 3 ALU ops + a select, {18, no, 2} (DERIVED)'),
);
export const celuGradCodelet = gradCodelet(
  'CeluGrad',
  'in',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (dy, x) => (x >= 0 ? dy : dy * Math.exp(x / a));
  },
  ELU_GRAD_LOOP,
  source('binary', 'a mul + exp 6 + mul + select, {15, no, 2} (DERIVED)'),
);
export const hardSigmoidGradCodelet = gradCodelet(
  'HardSigmoidGrad',
  'in',
  { alpha: 'float', beta: 'float' },
  (p) => {
    const a = f32(p.alpha);
    const b = f32(p.beta);
    return (dy, x) => {
      const t = f32(a * x) + b;
      return t > 0 && t < 1 ? a * dy : 0;
    };
  },
  HARD_SIGMOID_GRAD_LOOP,
  source('binary', '4 ALU ops, {12, no, 2} (DERIVED)'),
);
export const hardSwishGradCodelet = gradCodelet('HardSwishGrad', 'in', {}, () => (dy, x) => (x < -3 ? 0 : x > 3 ? dy : dy * (x / 3 + 0.5)), HARD_SWISH_GRAD_LOOP, source('binary', '5 ALU ops, {15, no, 2} (DERIVED)'));
export const softplusGradCodelet = gradCodelet('SoftplusGrad', 'in', {}, () => (dy, x) => dy * sigmoid(x), SOFTPLUS_GRAD_LOOP, source('binary', 'sigmoid {12, no, 2} (§3) + a mul, {15, no, 2}'));
export const softsignGradCodelet = gradCodelet(
  'SoftsignGrad',
  'in',
  {},
  () => (dy, x) => {
    const d = 1 + Math.abs(x);
    return dy / (d * d);
  },
  SOFTSIGN_GRAD_LOOP,
  source('binary', '3 ALU ops + divide: float {19, no, 2}, half {30, no, 4} (DERIVED)'),
);
export const thresholdedReluGradCodelet = gradCodelet(
  'ThresholdedReluGrad',
  'in',
  { alpha: 'float' },
  (p) => {
    const a = f32(p.alpha);
    return (dy, x) => (x > a ? dy : 0);
  },
  THRESHOLD_LOOP,
  source('binary', 'compare and select, 4 cycles per 64-bit vector (DERIVED)'),
);
export const mishGradCodelet = gradCodelet(
  'MishGrad',
  'in',
  {},
  () => (dy, x) => {
    const t = Math.tanh(softplus(x));
    return dy * (t + x * sigmoid(x) * (1 - t * t));
  },
  MISH_GRAD_LOOP,
  source('binary', 'softplus 24 + tanh 12 + sigmoid 12 + 5 ALU ops, {63, no, 2} (DERIVED)'),
);
export const reciprocalGradCodelet = gradCodelet('ReciprocalGrad', 'fwdOut', {}, () => (dy, y) => -dy * y * y, RECIPROCAL_GRAD_LOOP, source('binary', '2 muls, {6, no, 2} (DERIVED)'));
export const sinGradCodelet = gradCodelet('SinGrad', 'in', {}, () => (dy, x) => dy * Math.cos(x), TRIG_GRAD_LOOP, source('binary', 'cos (as tanh) 12 + a mul, {15, no, 2} (DERIVED)'));
export const cosGradCodelet = gradCodelet('CosGrad', 'in', {}, () => (dy, x) => -dy * Math.sin(x), TRIG_GRAD_LOOP, source('binary', 'sin (as tanh) 12 + a mul, {15, no, 2} (DERIVED)'));
export const sinhGradCodelet = gradCodelet('SinhGrad', 'in', {}, () => (dy, x) => dy * Math.cosh(x), HYPERBOLIC_GRAD_LOOP, source('binary', 'cosh 22 + a mul, {25, no, 2} (DERIVED)'));
export const coshGradCodelet = gradCodelet('CoshGrad', 'in', {}, () => (dy, x) => dy * Math.sinh(x), HYPERBOLIC_GRAD_LOOP, source('binary', 'sinh 22 + a mul, {25, no, 2} (DERIVED)'));

// Tan and the inverse trigonometric and hyperbolic functions (ONNX 7 and 9). No §3 figures: each is costed
// from the ones it is made of (DERIVED), the transcendental part as tanh's {12, no, 2}, a divide {10, no, 2},
// a square root as the divide, an ALU op 3.
/** sin and cos (as tanh) sharing a range reduction, 12, then a divide 10: {22, no, 2}. */
const TAN_LOOP = byType(loop(22, 2));
/** atan/asin/acos as tanh: {12, no, 2}; asinh/acosh: log 12 of x + sqrt(x^2 +- 1) (3 + 10 + 3), {28, no, 2}; atanh: log of a divide, {25, no, 2}. */
const INVERSE_TRIG_LOOP = byType(loop(12, 2));
const INVERSE_HYPERBOLIC_LOOP = byType(loop(28, 2));
const ATANH_LOOP = byType(loop(25, 2));
/** y' (1 + y^2): 3 ALU ops. */
const TAN_GRAD_LOOP = alu(3);
/** y' / (1 +- x^2): 2 ALU ops and a divide 10, {16, no, 2}; y' / sqrt(1 +- x^2): a square root more, {26, no, 2}. */
const RATIONAL_GRAD_LOOP = byType(loop(16, 2));
const ROOT_GRAD_LOOP = byType(loop(26, 2));

export const tanCodelet = unaryCodelet('Tan', {}, () => Math.tan, TAN_LOOP, source('unary', 'sin and cos (as tanh) 12 + divide 10, {22, no, 2} (DERIVED)'));
export const atanCodelet = unaryCodelet('Atan', {}, () => Math.atan, INVERSE_TRIG_LOOP, source('unary', 'atan costed as tanh, {12, no, 2} (DERIVED)'));
export const asinCodelet = unaryCodelet('Asin', {}, () => Math.asin, INVERSE_TRIG_LOOP, source('unary', 'asin costed as tanh, {12, no, 2} (DERIVED)'));
export const acosCodelet = unaryCodelet('Acos', {}, () => Math.acos, INVERSE_TRIG_LOOP, source('unary', 'acos costed as tanh, {12, no, 2} (DERIVED)'));
export const asinhCodelet = unaryCodelet('Asinh', {}, () => Math.asinh, INVERSE_HYPERBOLIC_LOOP, source('unary', 'log 12 + sqrt 10 + 2 ALU ops, {28, no, 2} (DERIVED)', 33), 33);
export const acoshCodelet = unaryCodelet('Acosh', {}, () => Math.acosh, INVERSE_HYPERBOLIC_LOOP, source('unary', 'log 12 + sqrt 10 + 2 ALU ops, {28, no, 2} (DERIVED)', 33), 33);
export const atanhCodelet = unaryCodelet('Atanh', {}, () => Math.atanh, ATANH_LOOP, source('unary', 'log 12 + divide 10 + an ALU op, {25, no, 2} (DERIVED)', 33), 33);
export const tanGradCodelet = gradCodelet('TanGrad', 'fwdOut', {}, () => (dy, y) => dy * (1 + y * y), TAN_GRAD_LOOP, source('binary', "y' (1 + y^2), 3 ALU ops (DERIVED)"));
export const atanGradCodelet = gradCodelet('AtanGrad', 'in', {}, () => (dy, x) => dy / (1 + x * x), RATIONAL_GRAD_LOOP, source('binary', "y' / (1 + x^2): 2 ALU ops + divide, {16, no, 2} (DERIVED)"));
export const asinGradCodelet = gradCodelet('AsinGrad', 'in', {}, () => (dy, x) => dy / Math.sqrt(1 - x * x), ROOT_GRAD_LOOP, source('binary', "y' / sqrt(1 - x^2): 2 ALU ops + sqrt + divide, {26, no, 2} (DERIVED)"));
export const acosGradCodelet = gradCodelet('AcosGrad', 'in', {}, () => (dy, x) => -dy / Math.sqrt(1 - x * x), ROOT_GRAD_LOOP, source('binary', "-y' / sqrt(1 - x^2): 2 ALU ops + sqrt + divide, {26, no, 2} (DERIVED)"));
export const asinhGradCodelet = gradCodelet('AsinhGrad', 'in', {}, () => (dy, x) => dy / Math.sqrt(x * x + 1), ROOT_GRAD_LOOP, source('binary', "y' / sqrt(x^2 + 1): 2 ALU ops + sqrt + divide, {26, no, 2} (DERIVED)"));
export const acoshGradCodelet = gradCodelet('AcoshGrad', 'in', {}, () => (dy, x) => dy / Math.sqrt(x * x - 1), ROOT_GRAD_LOOP, source('binary', "y' / sqrt(x^2 - 1): 2 ALU ops + sqrt + divide, {26, no, 2} (DERIVED)"));
/** Shrink: two compares, an add and a select, 4 ALU ops; its grad two compares and a select, as Clip's. */
const SHRINK_LOOP = alu(4);
const SHRINK_GRAD_LOOP = alu(3);
export const shrinkCodelet = unaryCodelet(
  'Shrink',
  { lambd: 'float', bias: 'float' },
  (p) => {
    const l = f32(p.lambd);
    const b = f32(p.bias);
    return (x) => (x < -l ? x + b : x > l ? x - b : 0);
  },
  SHRINK_LOOP,
  source('unary', 'two compares, an add and a select, 4 ALU ops (DERIVED)'),
);
export const shrinkGradCodelet = gradCodelet(
  'ShrinkGrad',
  'in',
  // bias too: a grad vertex takes its forward op's params (bias does not change the slope).
  { lambd: 'float', bias: 'float' },
  (p) => {
    const l = f32(p.lambd);
    return (dy, x) => (x < -l || x > l ? dy : 0);
  },
  SHRINK_GRAD_LOOP,
  source('binary', 'two compares and a select, {9, no, 2} (DERIVED)'),
);
export const atanhGradCodelet = gradCodelet('AtanhGrad', 'in', {}, () => (dy, x) => dy / (1 - x * x), RATIONAL_GRAD_LOOP, source('binary', "y' / (1 - x^2): 2 ALU ops + divide, {16, no, 2} (DERIVED)"));

/** max then min: 2 ALU ops per vector (§3 max/min {3, no, 2} each). */
const CLIP_LOOP = alu(2);
/** two compares and a select: 3 ALU ops. */
const CLIP_GRAD_LOOP = alu(3);
export const clipCodelet = unaryCodelet(
  'Clip',
  { max: 'float', min: 'float' },
  (p) => {
    const lo = f32(p.min);
    const hi = f32(p.max);
    return (x) => (Number.isNaN(x) ? x : Math.min(Math.max(x, lo), hi));
  },
  CLIP_LOOP,
  source('unary', 'max and min, 2 ALU ops (§3 max/min {3, no, 2})'),
);
export const clipGradCodelet = gradCodelet(
  'ClipGrad',
  'in',
  { max: 'float', min: 'float' },
  (p) => {
    const lo = f32(p.min);
    const hi = f32(p.max);
    return (dy, x) => (x >= lo && x <= hi ? dy : 0);
  },
  CLIP_GRAD_LOOP,
  source('binary', 'two compares and a select, {9, no, 2} (DERIVED)'),
);

/** The codelets of the ops above, forward and grad. */
export const activationCodelets: Codelet[] = [
  clipCodelet, clipGradCodelet,
  eluCodelet, seluCodelet, celuCodelet, hardSigmoidCodelet, hardSwishCodelet, softplusCodelet, softsignCodelet, thresholdedReluCodelet, mishCodelet,
  reciprocalCodelet, sinCodelet, cosCodelet, sinhCodelet, coshCodelet, floorCodelet, ceilCodelet, roundCodelet, signCodelet,
  eluGradCodelet, seluGradCodelet, celuGradCodelet, hardSigmoidGradCodelet, hardSwishGradCodelet, softplusGradCodelet, softsignGradCodelet,
  thresholdedReluGradCodelet, mishGradCodelet, reciprocalGradCodelet, sinGradCodelet, cosGradCodelet, sinhGradCodelet, coshGradCodelet,
  tanCodelet, atanCodelet, asinCodelet, acosCodelet, asinhCodelet, acoshCodelet, atanhCodelet,
  tanGradCodelet, atanGradCodelet, asinGradCodelet, acosGradCodelet, asinhGradCodelet, acoshGradCodelet, atanhGradCodelet,
  shrinkCodelet, shrinkGradCodelet,
];

export const unaryCodelets: Codelet[] = [
  negCodelet,
  absCodelet,
  sqrtCodelet,
  expCodelet,
  logCodelet,
  powCodelet,
  powBroadcastCodelet,
  reluCodelet,
  leakyReluCodelet,
  sigmoidCodelet,
  tanhCodelet,
  erfCodelet,
  geluCodelet,
  absGradCodelet,
  sqrtGradCodelet,
  expGradCodelet,
  logGradCodelet,
  powGradCodelet,
  powBroadcastGradCodelet,
  reluGradCodelet,
  leakyReluGradCodelet,
  sigmoidGradCodelet,
  tanhGradCodelet,
  erfGradCodelet,
  geluGradCodelet,
  ...dropoutCodelets,
  ...activationCodelets,
];
