/** Host data for tensors: initializer values and input data from their config specs. */
import { readFileSync } from 'node:fs';
import type { InitSpec, InputSpec, SourceLocation } from '../config/types.js';
import { UserError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import { nelms } from '../ir/tensorinfo.js';
import { decodeNpy } from '../report/npy.js';
import { decodeHalf } from '../../sim/half.js';
import { Rng, stateAt, type RandomDraw } from '../../sim/random.js';

export type HostArray = Float32Array | Int32Array;

function alloc(dtype: DType, n: number): HostArray {
  return dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
}

/** Flatten nested arrays, checking they have `shape` exactly. */
export function fromNested(value: unknown, shape: readonly number[], dtype: DType, what: string, loc?: SourceLocation): HostArray {
  const out: number[] = [];
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number') throw new UserError(`${what}: expected a number at ${path || 'the top'}, found ${JSON.stringify(v)}`, loc);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      const found = Array.isArray(v) ? `${v.length} entries` : JSON.stringify(v);
      throw new UserError(`${what}: expected shape [${shape.join(', ')}], but at ${path || 'the top'} found ${found} where ${shape[depth]} were expected`, loc);
    }
    v.forEach((x, i) => walk(x, depth + 1, `${path}[${i}]`));
  };
  walk(value, 0, '');
  const a = alloc(dtype, out.length);
  a.set(out);
  return a;
}

/** Load an .npy file whose shape must be `shape`, or `[k, ...shape]` when `batches` is allowed. */
export function fromNpy(path: string, shape: readonly number[], dtype: DType, what: string, loc?: SourceLocation, batches = false): { data: HostArray; batches: number } {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new UserError(`${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, loc);
  }
  let arr;
  try {
    arr = decodeNpy(buf, path);
  } catch (e) {
    throw new UserError(`${what}: ${(e as Error).message}`, loc);
  }
  const same = arr.shape.length === shape.length && arr.shape.every((d, i) => d === shape[i]);
  const batched = batches && arr.shape.length === shape.length + 1 && arr.shape.slice(1).every((d, i) => d === shape[i]);
  if (!same && !batched) {
    throw new UserError(
      `${what}: ${path} has shape [${arr.shape.join(', ')}], expected [${shape.join(', ')}]` +
        (batches ? ` or [batches, ${shape.join(', ')}]` : ''),
      loc,
    );
  }
  const want = dtype === 'int32' ? 'int32' : 'float32';
  if ((arr.dtype === 'int32') !== (want === 'int32')) throw new UserError(`${what}: ${path} holds ${arr.dtype}, expected ${dtype}`, loc);
  const data = alloc(dtype, arr.data.length);
  // float16 files hold bits: decode them to values (a float16 tensor rounds them back on the device).
  data.set(arr.dtype === 'float16' ? decodeHalf(arr.data as Uint16Array) : (arr.data as ArrayLike<number>));
  return { data, batches: same ? 1 : arr.shape[0] };
}

export function initializerData(init: InitSpec, shape: readonly number[], dtype: DType, what: string, loc?: SourceLocation): HostArray {
  const n = nelms(shape);
  const a = alloc(dtype, n);
  switch (init.kind) {
    case 'normal':
      new Rng(init.seed).fillNormal(a, init.mean, init.std);
      return a;
    case 'uniform':
      new Rng(init.seed).fillUniform(a, init.low, init.high);
      return a;
    case 'constant':
      return a.fill(init.value);
    case 'value':
      return fromNested(init.value, shape, dtype, what, loc);
    case 'npy':
      return fromNpy(init.path, shape, dtype, what, loc).data;
    case 'data': {
      if (init.data.length !== n) throw new UserError(`${what}: has ${init.data.length} values, expected ${n} for shape [${shape.join(', ')}]`, loc);
      a.set(init.data);
      return a;
    }
  }
}

/**
 * One batch of a graph input's data: host values, or a uniform or integer
 * random fill not yet drawn (float32 and int32 inputs), which the engine
 * draws straight into tile memory each time the input is streamed (the same
 * values as drawing it here; materialize() draws it on the host).
 */
export type InputBatch = HostArray | RandomDraw;

/** A batch's values on the host (a RandomDraw drawn, as the engine would draw it). */
export function materialize(b: InputBatch, dtype: DType): HostArray {
  if (!('kind' in b)) return b;
  const a = alloc(dtype, b.length);
  new Rng(b.state).fillSpan(a, b.integer, b.low, b.span);
  return a;
}

/**
 * Data for one graph input: a single batch, or several (npy with a leading batch dimension).
 * `draws`: random data is drawn as that many consecutive batches of one generator (the
 * micro-batches of one step with gradient accumulation or replication), so they differ and
 * together equal one draw of the whole batch.
 */
export function inputData(spec: InputSpec, shape: readonly number[], dtype: DType, what: string, draws = 1): InputBatch[] {
  const n = nelms(shape);
  switch (spec.kind) {
    case 'random': {
      const r = new Rng(spec.seed);
      if (spec.distribution !== 'normal' && (dtype === 'float32' || dtype === 'int32')) {
        // Drawn later, where the data goes (sim/random.ts): batch b starts b x n draws in.
        const integer = spec.distribution === 'integers';
        const span = integer ? spec.high - spec.low + 1 : spec.high - spec.low;
        const state = spec.seed >>> 0;
        return Array.from({ length: draws }, (_, b): RandomDraw => ({ kind: 'randomDraw', state: stateAt(state, b * n), integer, low: spec.low, span, length: n }));
      }
      const a = alloc(dtype, n * draws);
      if (spec.distribution === 'normal') r.fillNormal(a, spec.mean, spec.std);
      else if (spec.distribution === 'uniform') r.fillUniform(a, spec.low, spec.high);
      else r.fillIntegers(a, spec.low, spec.high);
      return Array.from({ length: draws }, (_, b) => a.subarray(b * n, (b + 1) * n) as HostArray);
    }
    case 'value':
      return [fromNested(spec.value, shape, dtype, what, spec.loc)];
    case 'npy': {
      const { data, batches } = fromNpy(spec.path, shape, dtype, what, spec.loc, true);
      return Array.from({ length: batches }, (_, b) => data.subarray(b * n, (b + 1) * n) as HostArray);
    }
  }
}
