/**
 * Codelets of the binary op family: elementwise ops whose operands may be
 * broadcast (NumPy rules), in PopLibs' structure.
 *
 * Every codelet here runs in one of three modes, chosen by the lowering
 * (src/lower/broadcast.ts) and visible in the vertex:
 *
 * - flat (no `arrays`): every input field is as long as `out`, out[i] = f(a[i], b[i], ...).
 *   Estimated as PopLibs' BinaryOp1D MultiVertex.
 * - cyclic (no `arrays`, an input shorter than `out`): that input is a trailing
 *   block of the output's shape (a bias, or a scalar) and is read at
 *   (offset + i) mod its length. Also a 1-D loop: BinaryOp1D.
 * - general (`arrays.shape` present): the output slice is elements
 *   [begin, begin + n) of a row-major tensor of the (axis-merged) shape
 *   `arrays.shape`; input field f holds elements [fBase, ...) of its own
 *   tensor, and output coordinate c reads f's element sum_k c_k x arrays[f][k]
 *   (broadcast axes have stride 0). Estimated as PopLibs'
 *   BroadcastVectorOuter{ByRow,ByColumn} MultiVertex: rows of the innermost
 *   merged axis, shared among the workers by rows or, when there are fewer
 *   rows than workers, by columns.
 *
 * Codelets see float16 fields as Float32Array views (converted at the vertex
 * boundary); int32 fields as Int32Array.
 */
import type { Codelet, ElemArray } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet, type ArraySpecs, type CodeletDef, type FieldSpecs, type ParamSpecs } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType, FieldValue } from '../program.js';
import { addLoop, binaryMultiVertex, binaryOp2D, innerLoop, vectorWidth, type LoopCost } from './estimators.js';
import { regionCounts, regionsInPlace, withMultiRegion } from './multi-region.js';
import { writesInPlace } from '../cost.js';
import type { BinaryOp, Int32Op } from '../wasm/kernels-wat.js';
import { laneWise } from '../wasm/kernels.js';

// ---------------------------------------------------------------------------
// Broadcast indexing, shared with the reduce-over-axes codelets.

/**
 * idx[i] = (sum_k c_k(begin + i) x strides[k]) - base for i < n, where c(j) are
 * the row-major coordinates of flat index j in `shape`.
 */
export function broadcastIndex(shape: readonly number[], strides: readonly number[], begin: number, base: number, n: number): Int32Array {
  const r = shape.length;
  const idx = new Int32Array(n);
  const c = new Array<number>(r).fill(0);
  let rem = begin;
  for (let k = r - 1; k >= 0; k--) {
    c[k] = rem % shape[k];
    rem = Math.floor(rem / shape[k]);
  }
  let cur = -base;
  for (let k = 0; k < r; k++) cur += c[k] * strides[k];
  const last = r - 1;
  const sLast = r > 0 ? strides[last] : 0;
  const dLast = r > 0 ? shape[last] : 1;
  for (let i = 0; i < n; i++) {
    idx[i] = cur;
    if (r === 0) continue;
    // Odometer increment, innermost axis first.
    if (++c[last] < dLast) {
      cur += sLast;
      continue;
    }
    c[last] = 0;
    cur -= sLast * (dLast - 1);
    for (let k = last - 1; k >= 0; k--) {
      if (++c[k] < shape[k]) {
        cur += strides[k];
        break;
      }
      c[k] = 0;
      cur -= strides[k] * (shape[k] - 1);
    }
  }
  return idx;
}

/**
 * Index maps are built once and reused across runs. Keyed on the vertex's
 * `arrays` object (stable across runs; it holds shape and strides, and may be
 * shared by several vertices) plus what differs per vertex: begin, base, n.
 */
const indexCache = new WeakMap<object, Map<string, Int32Array>>();

/** Params and arrays as the general broadcast mode reads them: by key, some keys per operand. */
export interface BroadcastArgs {
  params: Readonly<Record<string, number | undefined>>;
  arrays: Readonly<Record<string, readonly number[] | undefined>>;
}

/** An array the general broadcast mode needs, or a clear fault naming it. */
function needArray(args: BroadcastArgs, key: string): readonly number[] {
  const a = args.arrays[key];
  if (!a) throw new Error(`broadcast vertex: arrays.${key} is missing (arrays.shape is given)`);
  return a;
}

/** The index map of input `key` (arrays[key] = strides, params[key + 'Base'] = base) for an n-element output. */
export function cachedIndex(args: BroadcastArgs, key: string, n: number, strideKey = key, baseKey = `${key}Base`): Int32Array {
  let m = indexCache.get(args.arrays);
  if (!m) {
    m = new Map();
    indexCache.set(args.arrays, m);
  }
  const begin = args.params.begin ?? 0;
  const base = args.params[baseKey] ?? 0;
  const k = `${strideKey}|${begin}|${base}|${n}`;
  let idx = m.get(k);
  if (!idx) {
    idx = broadcastIndex(needArray(args, 'shape'), needArray(args, strideKey), begin, base, n);
    m.set(k, idx);
  }
  return idx;
}

// ---------------------------------------------------------------------------
// Estimates.

/**
 * General broadcast MultiVertex (PopLibs BroadcastVectorOuter{ByRow,ByColumn}
 * structure, popopsCycleEstimators.cpp): (15 + outerLoops x (7 + inner)) x W,
 * plus the supervisor's 11 as in binaryMultiVertex. By row: ceil(rows / W)
 * rows of rowLen per worker; by column: every row, ceil(rowLen / W) each. The
 * cheaper of the two is taken, as popops picks the variant by shape.
 */
export function broadcastMultiVertex(rows: number, rowLen: number, dtype: DeviceDType, loop: LoopCost, device: DeviceSpec): number {
  const W = device.workersPerTile;
  const vw = vectorWidth(dtype, device);
  const byRow = Math.ceil(rows / W) * (7 + innerLoop(rowLen, vw, loop));
  const byColumn = rows * (7 + innerLoop(Math.ceil(rowLen / W), vw, loop));
  return W * (15 + Math.min(byRow, byColumn)) + 11;
}

/** Rows of the innermost merged axis that an n-element slice starting at flat index `begin` touches, and their length. */
export function broadcastRows(shape: readonly number[] | undefined, begin: number, n: number): { rows: number; rowLen: number } {
  if (n <= 0) return { rows: 0, rowLen: 0 };
  const L = shape && shape.length > 0 ? shape[shape.length - 1] : n;
  const rows = Math.floor((begin + n - 1) / L) - Math.floor(begin / L) + 1;
  return { rows, rowLen: Math.min(L, n) };
}

/**
 * Cost of one elementwise pass over `out` (flat or cyclic: BinaryOp1D, or its
 * in-place variant when the output is an input's region; general: the
 * broadcast MultiVertex, whose in-place variant PopLibs estimates the same).
 */
export function elementwiseCycles(v: { params: BroadcastArgs['params']; arrays?: BroadcastArgs['arrays'] }, out: FieldValue, loop: (d: DeviceDType) => LoopCost, device: DeviceSpec, inPlace = false): number {
  const n = regionCount(out);
  const dtype = fieldDType(out);
  const shape = v.arrays?.shape;
  if (!shape) return binaryMultiVertex(n, dtype, loop(dtype), device, inPlace);
  const { rows, rowLen } = broadcastRows(shape, v.params.begin ?? 0, n);
  return broadcastMultiVertex(rows, rowLen, dtype, loop(dtype), device);
}

/** divide float {10, no, 2}, half {21, no, 4} (ipu-architecture.md §3). */
export function divideLoop(dtype: DeviceDType): LoopCost {
  return dtype === 'float16' ? { cyclesPerLoop: 21, vectorised: false, unroll: 4 } : { cyclesPerLoop: 10, vectorised: false, unroll: 2 };
}
/**
 * Select (Where): not in §3. GUESS: a selector load and two operand loads per
 * vector, about twice add's loop: 6 cycles per 64-bit vector.
 */
export function selectLoop(dtype: DeviceDType): LoopCost {
  return { cyclesPerLoop: 6, vectorised: false, unroll: dtype === 'float16' ? 4 : 2 };
}
/** Comparison producing a float 0/1 mask: like max/min, {3, no, 2} (§3). */
export function compareLoop(dtype: DeviceDType): LoopCost {
  return { cyclesPerLoop: 3, vectorised: false, unroll: dtype === 'float16' ? 4 : 2 };
}
/** -g x a / b^2: one divide and two multiplies per element: divide's loop plus twice add's (§3). */
export function divRhsGradLoop(dtype: DeviceDType): LoopCost {
  const d = divideLoop(dtype);
  return { cyclesPerLoop: d.cyclesPerLoop + 6, vectorised: false, unroll: d.unroll };
}

// ---------------------------------------------------------------------------
// The codelet factory.

type Fn = (...xs: number[]) => number;

interface ElementwiseSpec<I extends string, X extends ParamSpecs> {
  name: string;
  /** Input field names, in the order `fn` takes them. */
  inputs: readonly I[];
  fn: Fn;
  loop: (d: DeviceDType) => LoopCost;
  source: string;
  /** Per-input accepted dtypes (default: float and int32). */
  inputDTypes?: Partial<Record<I, readonly DeviceDType[]>>;
  /** Params beyond the modes' own (begin, offset, <input>Base), which `bind` reads. */
  params?: X;
  /** Makes fn from the vertex params (e.g. a scale); default: spec.fn. */
  bind?: (params: Readonly<Record<string, number | undefined>>) => Fn;
  /** The WebAssembly kernel computing fn on fp32 lanes (flat and cyclic modes), bit for bit. */
  wasm?: BinaryOp;
}

const ANY = ['float32', 'float16', 'int32'] as const;
type AnyField<D extends 'input' | 'output'> = { direction: D; dtypes: readonly DeviceDType[] };
/** The fields, params and arrays of an elementwise codelet over inputs I: the three modes' keys (see the top of the file). */
export type ElementwiseFields<I extends string> = Record<I, AnyField<'input'>> & { out: AnyField<'output'> };
export type ElementwiseParams<I extends string, X extends ParamSpecs> = { begin: 'int?'; offset: 'int?' } & Record<`${I}Base`, 'int?'> & X;
export type ElementwiseArrays<I extends string> = { shape: 'ints?' } & Record<I, 'ints?'>;
/** What the modes read, by key: fields by input name, params and arrays per operand. */
interface ElementwiseArgs extends BroadcastArgs {
  fields: Readonly<Record<string, ElemArray>>;
}

/** Cyclic operands shorter than this run in TypeScript: one kernel call per repeat would cost more. */
const MIN_CYCLIC_WASM = 16;

/**
 * out = a op b on the WebAssembly kernel, b as long as out or cyclic (read
 * from `offset` mod its length, one call per repeat; a single element as a
 * scalar). False when the operands are not fp32 tile memory (the caller then
 * runs the reference). fp32 add, sub, mul and div are single IEEE operations
 * in both, so the results are the same bits.
 */
export function binaryWasm(op: BinaryOp, out: ElemArray, a: ElemArray, b: ElemArray, offset: number): boolean {
  const n = out.length;
  if (a.length !== n || (b.length !== n && b.length !== 1 && b.length < MIN_CYCLIC_WASM)) return false;
  const int = out instanceof Int32Array;
  if (int && op === 'div') return false;
  const w = laneWise(out, [a, b], int ? 'int32' : 'float32');
  if (!w) return false;
  const [pa, pb] = w.ins;
  const vv = int ? w.K.x[`${op as Int32Op}_i32_vv`] : w.K.x[`${op}_vv`];
  if (b.length === n) vv(pa, pb, w.out, n);
  else if (b.length === 1) (int ? w.K.x[`${op as Int32Op}_i32_vs`] : w.K.x[`${op}_vs`])(pa, pb, w.out, n);
  else {
    const len = b.length;
    for (let i = 0, j = offset % len; i < n; j = 0) {
      const run = Math.min(n - i, len - j);
      vv(pa + 4 * i, pb + 4 * j, w.out + 4 * i, run);
      i += run;
    }
  }
  return true;
}

/** Broadcast rows shorter than this run in TypeScript: one kernel call per row would cost more. */
const MIN_ROW_WASM = 16;

/**
 * General broadcast mode on the kernels, one call per row of the innermost
 * merged axis: each operand's row is either contiguous (stride 1 there) or
 * one element repeated (stride 0), so a row is add_vv, add_vs or add_sv at the
 * addresses the index maps give for the row's first element. False when the
 * rows are short, an operand steps otherwise, or the fields are not fp32 tile
 * memory.
 */
function broadcastWasm(op: BinaryOp, args: BroadcastArgs, names: readonly string[], out: ElemArray, a: ElemArray, b: ElemArray): boolean {
  const shape = needArray(args, 'shape');
  const last = shape.length - 1;
  const L = last >= 0 ? shape[last] : 1;
  const n = out.length;
  if (L < MIN_ROW_WASM) return false;
  const [sa, sb] = names.map((f) => args.arrays[f]?.[last]);
  if ((sa !== 0 && sa !== 1) || (sb !== 0 && sb !== 1) || (sa === 0 && sb === 0)) return false;
  const int = out instanceof Int32Array;
  if (int && op === 'div') return false;
  const w = laneWise(out, [a, b], int ? 'int32' : 'float32');
  if (!w) return false;
  const ia = cachedIndex(args, names[0], n);
  const ib = cachedIndex(args, names[1], n);
  const form: 'sv' | 'vs' | 'vv' = sa === 0 ? 'sv' : sb === 0 ? 'vs' : 'vv';
  const f = int ? w.K.x[`${op as Int32Op}_i32_${form}`] : w.K.x[`${op}_${form}`];
  const [pa, pb] = w.ins;
  const begin = args.params.begin ?? 0;
  for (let i = 0; i < n; ) {
    const run = Math.min(L - ((begin + i) % L), n - i);
    f(pa + 4 * ia[i], pb + 4 * ib[i], w.out + 4 * i, run);
    i += run;
  }
  return true;
}

/** Element i of input j: flat, cyclic (shorter than out) or through its index map. */
function elementwiseCompute<I extends string, X extends ParamSpecs>(spec: ElementwiseSpec<I, X>) {
  const k = spec.inputs.length;
  return (args: ElementwiseArgs): void => {
    const out = args.fields.out;
    const n = out.length;
    const ins = spec.inputs.map((f) => args.fields[f]);
    if (spec.wasm && (args.arrays.shape ? broadcastWasm(spec.wasm, args, spec.inputs, out, ins[0], ins[1]) : binaryWasm(spec.wasm, out, ins[0], ins[1], args.params.offset ?? 0))) return;
    const fn = spec.bind ? spec.bind(args.params) : spec.fn;
    if (args.arrays.shape) {
      const idx = spec.inputs.map((f) => cachedIndex(args, f, n));
      if (k === 1) {
        const [x] = ins;
        const [ix] = idx;
        for (let i = 0; i < n; i++) out[i] = fn(x[ix[i]]);
      } else if (k === 2) {
        const [a, b] = ins;
        const [ia, ib] = idx;
        for (let i = 0; i < n; i++) out[i] = fn(a[ia[i]], b[ib[i]]);
      } else {
        const vals = new Array<number>(k);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < k; j++) vals[j] = ins[j][idx[j][i]];
          out[i] = fn(...vals);
        }
      }
      return;
    }
    // Flat or cyclic: input j read at (offset + i) mod its length when it is shorter than out.
    const offset = args.params.offset ?? 0;
    const pos = ins.map((x) => (x.length === n ? 0 : offset % x.length));
    if (k === 2 && ins[0].length === n) {
      const [a, b] = ins;
      const len = b.length;
      let j = pos[1];
      for (let i = 0; i < n; i++) {
        out[i] = fn(a[i], b[j]);
        if (++j === len) j = 0;
      }
      return;
    }
    const vals = new Array<number>(k);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        const x = ins[j];
        vals[j] = x[pos[j]];
        if (++pos[j] === x.length) pos[j] = 0;
      }
      out[i] = fn(...vals);
    }
  };
}

/**
 * An elementwise codelet over inputs I, typed for ctx.vertex by its
 * ElementwiseFields/Params/Arrays. The specs are built from the table entry
 * at run time, so compute is written over them by key (ElementwiseArgs) and
 * the codelet made is given the types the specs spell out.
 */
function elementwiseCodelet<const I extends string, const X extends ParamSpecs = Record<never, 'float'>>(
  spec: ElementwiseSpec<I, X>,
): CodeletDef<ElementwiseFields<I>, ElementwiseParams<I, X>, ElementwiseArrays<I>> {
  const fields: FieldSpecs = {};
  const params: ParamSpecs = { begin: 'int?', offset: 'int?', ...spec.params };
  const arrays: ArraySpecs = { shape: 'ints?' };
  for (const f of spec.inputs) {
    fields[f] = { direction: 'input', dtypes: spec.inputDTypes?.[f] ?? ANY };
    params[`${f}Base`] = 'int?';
    arrays[f] = 'ints?';
  }
  fields.out = { direction: 'output', dtypes: ANY };
  const compute = elementwiseCompute(spec);
  const def = defineCodelet({
    name: spec.name,
    kind: 'multi',
    fields,
    params,
    arrays,
    compute: (args) => compute(args as ElementwiseArgs),
    cycles(v, device) {
      return elementwiseCycles(v, v.fields.out, spec.loop, device, spec.inputs.some((f) => writesInPlace(v, f)));
    },
    estimateSource: spec.source,
  });
  // The 2-D form runs flat passes, or passes with one scalar operand (src/lower/broadcast.ts places it in those modes only).
  withMultiRegion(
    def,
    (v, device) => {
      const d = fieldDType(v.fields.out);
      return binaryOp2D(regionCounts(v.fields.out), d, spec.loop(d), device, spec.inputs.some((f) => regionsInPlace(v, f)));
    },
    `${BINARY_2D_SOURCE}; ${spec.source.slice(spec.source.lastIndexOf('; ') + 2)}`,
  );
  return def as CodeletDef as CodeletDef<ElementwiseFields<I>, ElementwiseParams<I, X>, ElementwiseArrays<I>>;
}

const BINARY_2D_SOURCE = 'PopLibs BinaryOp2D worker vertex: 5 (in place 20) + inner per region (flat operands; a scalar operand as BroadcastScalar2D, costed alike)';
const BINARY_SOURCE = 'PopLibs BinaryOp1D MultiVertex W x (29 + inner) + 11 (flat or cyclic operand); broadcast: BroadcastVectorOuter W x (15 + outerLoops x (7 + inner)) + 11';

export const addCodelet = elementwiseCodelet({ name: 'Add', inputs: ['a', 'b'], wasm: 'add', fn: (a, b) => a + b, loop: addLoop, source: `${BINARY_SOURCE}; add about 3 cycles per 64-bit vector` });
export const subCodelet = elementwiseCodelet({ name: 'Sub', inputs: ['a', 'b'], wasm: 'sub', fn: (a, b) => a - b, loop: addLoop, source: `${BINARY_SOURCE}; subtract about 3 cycles per 64-bit vector` });
export const mulCodelet = elementwiseCodelet({ name: 'Mul', inputs: ['a', 'b'], wasm: 'mul', fn: (a, b) => a * b, loop: addLoop, source: `${BINARY_SOURCE}; multiply about 3 cycles per 64-bit vector` });

/** a / b. int32 operands truncate toward zero (the out view is Int32Array), as onnxruntime's integer Div. */
export const divCodelet = elementwiseCodelet({ name: 'Div', inputs: ['a', 'b'], wasm: 'div', fn: (a, b) => a / b, loop: divideLoop, source: `${BINARY_SOURCE}; divide float {10, no, 2}, half {21, no, 4}` });

/** Gradient of a / b with respect to b: -g x a / b^2. */
export const divRhsGradCodelet = elementwiseCodelet({
  name: 'DivRhsGrad',
  inputs: ['g', 'a', 'b'],
  fn: (g, a, b) => (-g * a) / (b * b),
  loop: divRhsGradLoop,
  source: `${BINARY_SOURCE}; a divide and two multiplies per element`,
});

/** Mod: a divide, a truncation and a multiply-subtract (and the sign fix-up when fmod = 0): divide's loop plus 2 ALU ops. */
function modLoop(dtype: DeviceDType): LoopCost {
  const d = divideLoop(dtype);
  return { cyclesPerLoop: d.cyclesPerLoop + 6, vectorised: false, unroll: d.unroll };
}
/** ONNX Mod: fmod = 1 is C's fmod (the sign of a, exact in floating point: JS's %); fmod = 0 takes the sign of b (Python's %), integers only. */
export const modCodelet = elementwiseCodelet({
  name: 'Mod',
  inputs: ['a', 'b'],
  fn: (a, b) => a % b,
  params: { fmod: 'int' },
  bind: (p) =>
    p.fmod !== 0
      ? (a, b) => a % b
      : (a, b) => {
          const r = a % b;
          return r !== 0 && r < 0 !== b < 0 ? r + b : r;
        },
  loop: modLoop,
  source: `${BINARY_SOURCE}; divide, truncate, multiply-subtract: divide's loop + 2 ALU ops`,
});
/** Mod's (fmod) gradient with respect to b: -g x trunc(a / b). */
export const modRhsGradCodelet = elementwiseCodelet({
  name: 'ModRhsGrad',
  inputs: ['g', 'a', 'b'],
  fn: (g, a, b) => -g * Math.trunc(a / b),
  loop: modLoop,
  source: `${BINARY_SOURCE}; a divide, a truncation and a multiply`,
});

/** Where: cond (int32 0/1) ? a : b. */
export const whereCodelet = elementwiseCodelet({
  name: 'Where',
  inputs: ['cond', 'a', 'b'],
  fn: (c, a, b) => (c !== 0 ? a : b),
  loop: selectLoop,
  inputDTypes: { cond: ['int32'] },
  source: `${BINARY_SOURCE.replace('BinaryOp1D', 'Select (ternary) 1D')}; select GUESS 6 cycles per 64-bit vector`,
});

/** Where's gradient for X (param side = 0: cond ? g : 0) or for Y (side = 1: cond ? 0 : g). */
export const whereGradCodelet = elementwiseCodelet({
  name: 'WhereGrad',
  inputs: ['cond', 'g'],
  fn: (c, g) => (c !== 0 ? g : 0),
  params: { side: 'int' },
  bind: (p) => (p.side === 1 ? (c, g) => (c !== 0 ? 0 : g) : (c, g) => (c !== 0 ? g : 0)),
  loop: selectLoop,
  inputDTypes: { cond: ['int32'] },
  source: `${BINARY_SOURCE}; select GUESS 6 cycles per 64-bit vector`,
});

/** out = 1 where a == b else 0 (the mask that routes ReduceMax's gradient). */
export const isEqualMaskCodelet = elementwiseCodelet({
  name: 'IsEqualMask',
  inputs: ['a', 'b'],
  fn: (a, b) => (a === b ? 1 : 0),
  loop: compareLoop,
  source: `${BINARY_SOURCE}; comparison like max {3, no, 2}`,
});

/** out = scale x in, `in` broadcast to `out` (Expand; reduction gradients; a negated copy). */
export const broadcastCopyCodelet = elementwiseCodelet({
  name: 'BroadcastCopy',
  inputs: ['in'],
  fn: (x) => x,
  params: { scale: 'float?' },
  bind: (p) => {
    const s = p.scale ?? 1;
    return s === 1 ? (x) => x : (x) => x * s;
  },
  loop: addLoop,
  source: 'PopLibs BroadcastScalar / BroadcastVectorOuter MultiVertex: flat W x (29 + inner) + 11, broadcast W x (15 + outerLoops x (7 + inner)) + 11; about 3 cycles per 64-bit vector',
});

/** Sum on the kernels: in0 + in1, then + in2, ... in place (the reference's order). `out` may be in0, no other input. */
function sumWasm(out: ElemArray, ins: readonly ElemArray[]): boolean {
  const n = out.length;
  if (ins.length < 2 || ins.some((x) => x.length !== n)) return false;
  const w = laneWise(out, ins);
  if (!w || w.ins.slice(1).some((p) => p === w.out)) return false;
  w.K.x.add_vv(w.ins[0], w.ins[1], w.out, n);
  for (let k = 2; k < ins.length; k++) w.K.x.add_vv(w.out, w.ins[k], w.out, n);
  return true;
}

/**
 * The fields of Sum and the variadic ops: a list of operands `in`. In the
 * general broadcast mode each operand j also has array in<j> (its strides)
 * and param in<j>Base, declared as indexed keys (sim/define.ts).
 */
const VARIADIC_FIELDS = { in: { direction: 'input', vector: true, dtypes: ANY }, out: { direction: 'output', dtypes: ANY } } as const;
const VARIADIC_ARRAYS = { shape: 'ints?', 'in<j>': 'ints?' } as const;

/**
 * Sum of k inputs (field `in`, a list) into `out`: flat, or with arrays
 * in0, in1, ... (strides) and params in0Base, ... (general broadcast).
 */
export const sumCodelet = defineCodelet({
  name: 'Sum',
  kind: 'multi',
  fields: VARIADIC_FIELDS,
  params: { begin: 'int?', offset: 'int?', 'in<j>Base': 'int?' },
  arrays: VARIADIC_ARRAYS,
  compute(args) {
    const ins = args.fields.in;
    const out = args.fields.out;
    const n = out.length;
    // Sequential adds in the output's precision, in input order (as the device, and onnxruntime, add).
    if (args.arrays.shape) {
      for (let k = 0; k < ins.length; k++) {
        const x = ins[k];
        const idx = cachedIndex(args, `in${k}`, n);
        if (k === 0) for (let i = 0; i < n; i++) out[i] = x[idx[i]];
        else for (let i = 0; i < n; i++) out[i] += x[idx[i]];
      }
      return;
    }
    if (sumWasm(out, ins)) return;
    out.set(ins[0]);
    for (let k = 1; k < ins.length; k++) {
      const x = ins[k];
      for (let i = 0; i < n; i++) out[i] += x[i];
    }
  },
  cycles(v, device) {
    const out = v.fields.out;
    const k = Array.isArray(v.fields.in) ? v.fields.in.length : 1;
    // k - 1 binary adds over the output, the first out of place, the rest in place.
    let c = elementwiseCycles(v, out, addLoop, device);
    for (let i = 2; i < k; i++) c += elementwiseCycles(v, out, addLoop, device, true);
    return c;
  },
  estimateSource: '(k - 1) x PopLibs BinaryOp1D add (first out of place, the rest in place); broadcast inputs: BroadcastVectorOuter per add',
});
withMultiRegion(
  sumCodelet,
  (v, device) => {
    const counts = regionCounts(v.fields.out);
    const k = regionCounts(v.fields.in).length / Math.max(1, counts.length);
    const d = fieldDType(v.fields.out);
    // As the 1-D form: k - 1 adds over each region, the first out of place, the rest in place.
    let c = binaryOp2D(counts, d, addLoop(d), device);
    for (let i = 2; i < k; i++) c += binaryOp2D(counts, d, addLoop(d), device, true);
    return c;
  },
  '(k - 1) x PopLibs BinaryOp2D add worker vertex: 5 (in place 20) + inner per region; `in` holds k operand regions per output region',
);

// ---------------------------------------------------------------------------
// Comparisons, logic, PRelu and the variadic Max / Min / Mean (issue 15).
// Booleans are int32 0/1 (tilesim's form of ONNX bool): comparisons write them, And / Or / Xor / Not read them.

const CMP_SOURCE = `${BINARY_SOURCE}; comparison like max {3, no, 2} (§3), writing 0/1`;
const cmp = (name: string, fn: Fn) => elementwiseCodelet({ name, inputs: ['a', 'b'], fn, loop: compareLoop, source: CMP_SOURCE });
export const lessCodelet = cmp('Less', (a, b) => (a < b ? 1 : 0));
export const lessOrEqualCodelet = cmp('LessOrEqual', (a, b) => (a <= b ? 1 : 0));
export const greaterCodelet = cmp('Greater', (a, b) => (a > b ? 1 : 0));
export const greaterOrEqualCodelet = cmp('GreaterOrEqual', (a, b) => (a >= b ? 1 : 0));
export const equalCodelet = cmp('Equal', (a, b) => (a === b ? 1 : 0));

const LOGIC_SOURCE = `${BINARY_SOURCE}; a logical op on int32 0/1, one ALU op per 64-bit vector like add {3, no, 2}`;
const logic = (name: string, fn: Fn) => elementwiseCodelet({ name, inputs: ['a', 'b'], fn, loop: addLoop, inputDTypes: { a: ['int32'], b: ['int32'] }, source: LOGIC_SOURCE });
export const andCodelet = logic('And', (a, b) => (a !== 0 && b !== 0 ? 1 : 0));
export const orCodelet = logic('Or', (a, b) => (a !== 0 || b !== 0 ? 1 : 0));
export const xorCodelet = logic('Xor', (a, b) => ((a !== 0) !== (b !== 0) ? 1 : 0));
export const notCodelet = elementwiseCodelet({
  name: 'Not',
  inputs: ['in'],
  fn: (x) => (x === 0 ? 1 : 0),
  loop: addLoop,
  inputDTypes: { in: ['int32'] },
  source: 'PopLibs UnaryOp1D as BinaryOp1D MultiVertex W x (29 + inner) + 11; logical not, one ALU op per 64-bit vector like add {3, no, 2}',
});

const FLOAT_IN = { in: ['float32', 'float16'] } as const;
const CLASSIFY_SOURCE = 'PopLibs UnaryOp1D as BinaryOp1D MultiVertex W x (29 + inner) + 11; a classification of the float, compare-like {3, no, 2}';
/** IsNaN: 1 where x is NaN, else 0 (int32, tilesim's ONNX bool). */
export const isNaNCodelet = elementwiseCodelet({ name: 'IsNaN', inputs: ['in'], fn: (x) => (Number.isNaN(x) ? 1 : 0), loop: compareLoop, inputDTypes: FLOAT_IN, source: CLASSIFY_SOURCE });
/** IsInf: 1 where x is +inf (param positive = 1) or -inf (negative = 1), else 0. */
export const isInfCodelet = elementwiseCodelet({
  name: 'IsInf',
  inputs: ['in'],
  fn: (x) => (x === Infinity || x === -Infinity ? 1 : 0),
  params: { positive: 'int', negative: 'int' },
  bind: (p) => (x) => ((x === Infinity && p.positive !== 0) || (x === -Infinity && p.negative !== 0) ? 1 : 0),
  loop: compareLoop,
  inputDTypes: FLOAT_IN,
  source: CLASSIFY_SOURCE,
});

/** PRelu: x < 0 ? slope x : x, slope broadcast to x. Relu's compare plus a mul and a select: {9, no, 2}. */
const preluLoop = (d: DeviceDType): LoopCost => ({ cyclesPerLoop: 9, vectorised: false, unroll: d === 'float16' ? 4 : 2 });
export const preluCodelet = elementwiseCodelet({ name: 'PRelu', inputs: ['x', 'slope'], fn: (x, s) => (x < 0 ? s * x : x), loop: preluLoop, source: `${BINARY_SOURCE}; compare, mul and select, {9, no, 2} (DERIVED from §3 relu and mul)` });
/** PRelu's gradient for X: x < 0 ? slope g : g. */
export const preluXGradCodelet = elementwiseCodelet({ name: 'PReluXGrad', inputs: ['g', 'x', 'slope'], fn: (g, x, s) => (x < 0 ? s * g : g), loop: preluLoop, source: `${BINARY_SOURCE}; compare, mul and select, {9, no, 2} (DERIVED)` });
/** PRelu's gradient for the slope, before the sum over broadcast axes: x < 0 ? x g : 0. */
export const preluSlopeGradCodelet = elementwiseCodelet({ name: 'PReluSlopeGrad', inputs: ['g', 'x'], fn: (g, x) => (x < 0 ? x * g : 0), loop: preluLoop, source: `${BINARY_SOURCE}; compare, mul and select, {9, no, 2} (DERIVED)` });
/** Max / Min's gradient for one input: a === out ? g : 0 (ties: every input equal to the result gets g, as PopART's MaxArgGrad mask). */
export const selectEqualGradCodelet = elementwiseCodelet({ name: 'SelectEqualGrad', inputs: ['g', 'a', 'b'], fn: (g, a, b) => (a === b ? g : 0), loop: selectLoop, source: `${BINARY_SOURCE}; compare and select, GUESS 6 cycles per 64-bit vector as Where` });

/**
 * A variadic elementwise op over field `in` (a list), as Sum: out = in0 op in1 op ... in input
 * order, then times 1 / param `count` (Mean: k) when it is given. Flat or general broadcast
 * (arrays in0, in1, ...).
 */
function variadicCodelet(name: string, combine: (acc: number, x: number) => number, what: string) {
  return defineCodelet({
    name,
    kind: 'multi',
    fields: VARIADIC_FIELDS,
    params: { begin: 'int?', offset: 'int?', count: 'int?', 'in<j>Base': 'int?' },
    arrays: VARIADIC_ARRAYS,
    compute(args) {
      const ins = args.fields.in;
      const out = args.fields.out;
      const n = out.length;
      for (let k = 0; k < ins.length; k++) {
        const x = ins[k];
        const idx = args.arrays.shape ? cachedIndex(args, `in${k}`, n) : undefined;
        if (k === 0) for (let i = 0; i < n; i++) out[i] = x[idx ? idx[i] : i];
        else for (let i = 0; i < n; i++) out[i] = combine(out[i], x[idx ? idx[i] : i]);
      }
      const count = args.params.count;
      // Times the float 1 / k, as onnxruntime's Mean (a divide would differ by an ulp).
      if (count !== undefined && ins.length > 1) {
        const inv = Math.fround(1 / count);
        for (let i = 0; i < n; i++) out[i] *= inv;
      }
    },
    cycles(v, device) {
      const out = v.fields.out;
      const k = Array.isArray(v.fields.in) ? v.fields.in.length : 1;
      // As Sum: k - 1 binary ops over the output, the first out of place, the rest in place; Mean's scale by 1 / k one more in place.
      let c = elementwiseCycles(v, out, k > 1 ? compareLoop : addLoop, device);
      for (let i = 2; i < k; i++) c += elementwiseCycles(v, out, compareLoop, device, true);
      if (v.params.count !== undefined && k > 1) c += elementwiseCycles(v, out, addLoop, device, true);
      return c;
    },
    estimateSource: `(k - 1) x PopLibs BinaryOp1D ${what} (first out of place, the rest in place); broadcast inputs: BroadcastVectorOuter per op`,
  });
}
/** NaN wins, as in onnxruntime's Max / Min (Eigen's propagate-NaN max). */
export const maxCodelet = variadicCodelet('Max', (a, x) => (a >= x || Number.isNaN(a) ? a : x), 'max {3, no, 2} (§3)');
export const minCodelet = variadicCodelet('Min', (a, x) => (a <= x || Number.isNaN(a) ? a : x), 'min {3, no, 2} (§3)');
export const meanCodelet = variadicCodelet('Mean', (a, x) => a + x, 'add {3, no, 2} (§3), then a multiply by 1 / k in place');

export const logicCodelets: Codelet[] = [
  lessCodelet, lessOrEqualCodelet, greaterCodelet, greaterOrEqualCodelet, equalCodelet, andCodelet, orCodelet, xorCodelet, notCodelet,
  preluCodelet, preluXGradCodelet, preluSlopeGradCodelet, selectEqualGradCodelet, maxCodelet, minCodelet, meanCodelet,
  isNaNCodelet, isInfCodelet,
];

/** Codelets of this family beyond Add/Sub/Mul/Sum (which sim/codelets/elementwise.ts exports, registered there). */
export const binaryCodelets: Codelet[] = [divCodelet, divRhsGradCodelet, modCodelet, modRhsGradCodelet, whereCodelet, whereGradCodelet, isEqualMaskCodelet, broadcastCopyCodelet, ...logicCodelets];
