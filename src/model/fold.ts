/**
 * Constant folding when the graph is built (PopART's constant folding, for
 * the shape arithmetic PyTorch exports): an op whose inputs are all constants
 * is evaluated once on the host and replaced by constants of its outputs, so
 * Shape -> Gather -> Concat -> Reshape or CastLike -> Pow reach the op that
 * needs constant inputs as constants.
 *
 * What is folded, when the outputs hold at most FOLD_MAX_ELEMENTS elements
 * (a weight transformed by a large Transpose stays on the device, where the
 * planned ops spread it):
 *
 * - elementwise ops (ELEMENTWISE: Cast, CastLike, the unary and binary
 *   arithmetic, comparisons and logic, variadic Max/Min/Sum/Mean, Where),
 *   evaluated from the node alone, before any op is made: int32 shape
 *   arithmetic (Neg of an axis, Sub of ranks) is folded although the device
 *   ops take only floats. Values are computed in double precision and rounded
 *   once to the output type: float16 results are rounded to float16, int32
 *   results wrap to 32 bits, floats cast to int32 truncate toward zero (as the
 *   Cast codelet stores them), integer Div truncates toward zero (as
 *   onnxruntime). CastLike's second input gives only the type, so it need not
 *   be a constant.
 * - ops that move data (MOVERS: Reshape, Flatten, Squeeze, Unsqueeze, Expand,
 *   Gather, Concat, Slice, Transpose): the op is made and its setup() run
 *   first, so its checks and output infos are the device op's own, and the
 *   data is moved with the op's own geometry (SliceOp.view(),
 *   GatherOp.geometry(), ConcatOp.axis, TransposeOp.perm).
 *
 * Shape, Size, ConstantOfShape and Range are composites that become
 * constants by themselves (src/ops/logic.ts, src/ops/constant.ts).
 */
import { roundHalf } from '../../sim/half.js';
import type { NodeDecl } from '../config/types.js';
import type { DType } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { normDomain } from '../ir/opid.js';
import { CAST_TARGETS, ONNX_BOOL } from '../ops/cast.js';
import type { Attributes, OpClass } from '../ir/registry.js';
import { nelms, type TensorInfo } from '../ir/tensorinfo.js';
import { forEachSource, transposeView } from '../lower/rearrange.js';
import { ConcatOp, SliceOp, TransposeOp } from '../ops/shape-move.js';
import { GatherOp } from '../ops/shape-gather.js';

/** The most elements an op's outputs may hold, in all, for it to be folded. */
export const FOLD_MAX_ELEMENTS = 1 << 16;

type Data = Float32Array | Int32Array;
interface In {
  info: TensorInfo;
  data: Data;
}
/** Output values (as plain numbers) for output `out`'s info. */
type Folder = (op: Op, ins: In[], out: TensorInfo, attrs: Attributes) => ArrayLike<number>;

/** Row-major index of an input of `shape` for each element of `outShape` (ONNX multidirectional broadcasting). */
function broadcastIndex(shape: readonly number[], outShape: readonly number[]): (j: number) => number {
  const r = outShape.length;
  const padded = [...new Array<number>(r - shape.length).fill(1), ...shape];
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let k = r - 1; k >= 0; k--) {
    strides[k] = padded[k] === 1 ? 0 : s;
    s *= padded[k];
  }
  return (j) => {
    let src = 0;
    for (let k = r - 1; k >= 0; k--) {
      const d = outShape[k];
      src += (j % d) * strides[k];
      j = Math.floor(j / d);
    }
    return src;
  };
}

/** Values of an elementwise op, for the broadcast of its inputs. */
type Elementwise = (v: number[], int: boolean) => number;

const unary = (f: (x: number) => number): Elementwise => (v) => f(v[0]);
const binary = (f: (a: number, b: number, int: boolean) => number): Elementwise => (v, int) => f(v[0], v[1], int);
const bool = (b: boolean) => (b ? 1 : 0);
/** Round half to even, as ONNX Round. */
const roundEven = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const same = (ins: TensorInfo[]) => ins[0].dtype;
const boolean = (): DType => 'int32';

const CAST_TO_BOOL: { f: Elementwise; dtype: () => DType; arity?: number } = { f: unary((x) => bool(x !== 0)), dtype: boolean };

/** Elementwise ops: values, and the output type from the inputs' infos and the attributes. */
const ELEMENTWISE: Record<string, { f: Elementwise; dtype: (ins: TensorInfo[], attrs: Attributes) => DType | undefined; arity?: number }> = {
  Identity: { f: unary((x) => x), dtype: same },
  Cast: { f: unary((x) => x), dtype: (_i, a) => CAST_TARGETS[a.int('to')] },
  // Input 1 gives only the type.
  CastLike: { f: unary((x) => x), dtype: (i) => i[1].dtype, arity: 1 },
  Neg: { f: unary((x) => -x), dtype: same },
  Abs: { f: unary(Math.abs), dtype: same },
  Sqrt: { f: unary(Math.sqrt), dtype: same },
  Reciprocal: { f: unary((x) => 1 / x), dtype: same },
  Exp: { f: unary(Math.exp), dtype: same },
  Log: { f: unary(Math.log), dtype: same },
  Floor: { f: unary(Math.floor), dtype: same },
  Ceil: { f: unary(Math.ceil), dtype: same },
  Round: { f: unary(roundEven), dtype: same },
  Sign: { f: unary(Math.sign), dtype: same },
  Relu: { f: unary((x) => Math.max(0, x)), dtype: same },
  Not: { f: unary((x) => bool(!x)), dtype: boolean },
  Add: { f: binary((a, b) => a + b), dtype: same },
  Sub: { f: binary((a, b) => a - b), dtype: same },
  Mul: { f: binary((a, b, int) => (int ? Math.imul(a, b) : a * b)), dtype: same },
  // Integer division truncates toward zero (C, as onnxruntime does).
  Div: { f: binary((a, b, int) => (int ? (b === 0 ? 0 : Math.trunc(a / b)) : a / b)), dtype: same },
  Pow: { f: binary((a, b) => Math.pow(a, b)), dtype: same },
  Equal: { f: binary((a, b) => bool(a === b)), dtype: boolean },
  Less: { f: binary((a, b) => bool(a < b)), dtype: boolean },
  LessOrEqual: { f: binary((a, b) => bool(a <= b)), dtype: boolean },
  Greater: { f: binary((a, b) => bool(a > b)), dtype: boolean },
  GreaterOrEqual: { f: binary((a, b) => bool(a >= b)), dtype: boolean },
  And: { f: binary((a, b) => bool(!!a && !!b)), dtype: boolean },
  Or: { f: binary((a, b) => bool(!!a || !!b)), dtype: boolean },
  Xor: { f: binary((a, b) => bool(!!a !== !!b)), dtype: boolean },
  Max: { f: (v) => Math.max(...v), dtype: same },
  Min: { f: (v) => Math.min(...v), dtype: same },
  Sum: { f: (v) => v.reduce((a, b) => a + b, 0), dtype: same },
  Mean: { f: (v) => v.reduce((a, b) => a + b, 0) / v.length, dtype: same },
  Where: { f: (v) => (v[0] ? v[1] : v[2]), dtype: (i) => i[1].dtype },
};

/** The broadcast of `shapes` (ONNX multidirectional broadcasting), or undefined when they do not broadcast. */
function broadcastShape(shapes: readonly (readonly number[])[]): number[] | undefined {
  const r = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(r).fill(1);
  for (const s of shapes)
    for (let k = 0; k < s.length; k++) {
      const o = r - s.length + k;
      if (s[k] === out[o] || s[k] === 1) continue;
      if (out[o] !== 1) return undefined;
      out[o] = s[k];
    }
  return out;
}

function evalElementwise(f: Elementwise, ins: In[], outShape: readonly number[]): number[] {
  const n = nelms(outShape);
  const idx = ins.map((i) => broadcastIndex(i.info.shape, outShape));
  const int = ins[0].info.dtype === 'int32';
  const r = new Array<number>(n);
  const v = new Array<number>(ins.length);
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < ins.length; k++) v[k] = ins[k].data[idx[k](j)];
    r[j] = f(v, int);
  }
  return r;
}

/** Output = input 0 in row-major order. */
const view: Folder = (_op, ins) => ins[0].data;

/** A Folder reading the geometry of an op of class `cls` (checked, as defineOp checks a lowering's op). */
function folderOf<O extends Op>(cls: OpClass<O>, f: (op: O, ins: In[], out: TensorInfo) => ArrayLike<number>): Folder {
  return (op, ins, out) => {
    if (!(op instanceof cls)) throw new Error(`internal: ${op.name} is folded as a ${cls.name} but is a ${op.constructor.name}`);
    return f(op, ins, out);
  };
}

/** Ops that move data, folded after their setup() with the op's own geometry. */
const MOVERS: Record<string, Folder> = {
  Reshape: view,
  Flatten: view,
  Squeeze: view,
  Unsqueeze: view,
  Expand: (_op, ins, out) => evalElementwise((v) => v[0], ins.slice(0, 1), out.shape),
  Gather: folderOf(GatherOp, (op, ins, out) => {
    const g = op.geometry();
    const r = new Array<number>(nelms(out.shape));
    let j = 0;
    for (let o = 0; o < g.outer; o++)
      for (const i of g.constant!) for (let k = 0; k < g.inner; k++) r[j++] = ins[0].data[(o * g.axisSize + i) * g.inner + k];
    return r;
  }),
  Concat: folderOf(ConcatOp, (op, ins, out) => {
    const a = op.axis;
    const outer = nelms(out.shape.slice(0, a));
    const r: number[] = [];
    for (let o = 0; o < outer; o++)
      for (const i of ins) {
        const run = nelms(i.info.shape.slice(a));
        for (let k = 0; k < run; k++) r.push(i.data[o * run + k]);
      }
    return r;
  }),
  Slice: folderOf(SliceOp, (op, ins, out) => gatherView(ins[0].data, op.view(), nelms(out.shape))),
  Transpose: folderOf(TransposeOp, (op, ins, out) => gatherView(ins[0].data, transposeView(ins[0].info.shape, op.perm), nelms(out.shape))),
};

function gatherView(src: Data, v: Parameters<typeof forEachSource>[0], n: number): number[] {
  const r = new Array<number>(n);
  if (n > 0) forEachSource(v, 0, n, (j, s) => (r[j] = src[s]));
  return r;
}

/** `values` as the output's element type: int32 wraps (floats truncate toward zero, as Cast), float16 rounds. */
function typed(values: ArrayLike<number>, info: TensorInfo): Data {
  const n = values.length;
  if (info.dtype === 'int32') {
    const out = new Int32Array(n);
    for (let j = 0; j < n; j++) {
      const v = values[j];
      out[j] = Number.isFinite(v) ? Math.trunc(v) | 0 : 0;
    }
    return out;
  }
  const out = Float32Array.from(values);
  if (info.dtype === 'float16') for (let j = 0; j < n; j++) out[j] = roundHalf(out[j]);
  return out;
}

const isOnnx = (domain: string) => domain === '' || domain === 'ai.onnx';

/** The constant inputs of a node, or undefined when one it reads is not a constant. */
function constantInputs(graph: Graph, ids: readonly string[]): In[] | undefined {
  const ins: In[] = [];
  for (const id of ids) {
    if (id === '') continue;
    const t = graph.tensor(id);
    if (t.kind !== 'constant' || !t.data) return undefined;
    ins.push({ info: t.info, data: t.data });
  }
  return ins.length > 0 ? ins : undefined;
}

/**
 * An elementwise node whose inputs are all constants, evaluated without
 * making its op (the device op may not take the type, as Neg of int32 shape
 * arithmetic): its output's info and values; undefined when the node is not
 * one of ELEMENTWISE, reads something not constant, or is too large.
 */
export function evaluateConstantElementwise(graph: Graph, node: NodeDecl, attrs: Attributes): { info: TensorInfo; data: Data } | undefined {
  // Cast to bool (ONNX 9) is a test for nonzero, not a truncation.
  const e = node.op === 'Cast' && attrs.int('to') === ONNX_BOOL ? CAST_TO_BOOL : ELEMENTWISE[node.op];
  if (!e || !isOnnx(normDomain(node.domain)) || node.outputs.length !== 1) return undefined;
  const read = node.inputs.filter((id) => id !== '');
  // CastLike's input 1 gives only the type: it may be anything.
  const ins = constantInputs(graph, read.slice(0, e.arity ?? read.length));
  if (!ins) return undefined;
  const dtype = e.dtype(read.map((id) => graph.tensor(id).info), attrs);
  const shape = broadcastShape(ins.map((i) => i.info.shape));
  if (!dtype || !shape || nelms(shape) > FOLD_MAX_ELEMENTS) return undefined;
  const info = { dtype, shape };
  return { info, data: typed(evalElementwise(e.f, ins, shape), info) };
}

/**
 * The values of `op`'s outputs when it moves data (MOVERS), every input it
 * reads is a constant and its output is small enough; undefined otherwise.
 * `op` has been added to its graph (its setup() has run).
 */
export function evaluateConstantOp(op: Op, attrs: Attributes): Data[] | undefined {
  const m = MOVERS[op.opid.type];
  if (!m || !isOnnx(op.opid.domain) || op.outputs.length !== 1) return undefined;
  const ins = constantInputs(op.graph, op.inputs);
  if (!ins) return undefined;
  const out = op.outInfo(0);
  if (nelms(out.shape) > FOLD_MAX_ELEMENTS) return undefined;
  const values = m(op, ins, out, attrs);
  if (values.length !== nelms(out.shape)) throw new Error(`internal: folding ${op.name} gave ${values.length} values for ${nelms(out.shape)} elements`);
  return [typed(values, out)];
}
