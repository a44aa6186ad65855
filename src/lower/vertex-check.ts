/**
 * Checking a vertex against its codelet's declaration when a lowering places
 * it: field names, connected fields, vector or single, dtypes, and (for a
 * codelet made by defineCodelet) its params and arrays. A mistake is the lowering's,
 * named by op, codelet and field (exit 2), at compile time rather than when
 * the vertex runs.
 */
import { mustConnect, type Codelet } from '../../sim/codelet.js';
import { indexedField, matchKey, type ArraySpecs, type ArrayValues, type CodeletDef, type Connected, type FieldSpecs, type IsVector, type Optional, type ParamSpecs, type ParamValues, type RequiredKeys } from '../../sim/define.js';
import type { DeviceDType } from '../../sim/program.js';
import { UserError } from '../errors.js';
import type { Slice } from './devicegraph.js';

type SliceFor<F extends FieldSpecs, K extends keyof F> = IsVector<F[K]> extends true ? Slice[] : Slice;

/** The fields `ctx.vertex(codelet, tile, fields)` takes for a typed codelet: each input/output field, inout ones optional. */
export type VertexFields<F extends FieldSpecs> = { [K in Connected<F>]: SliceFor<F, K> } & { [K in Optional<F>]?: SliceFor<F, K> };
export type VertexParams<P extends ParamSpecs> = ParamValues<P>;
export type VertexArrays<A extends ArraySpecs> = ArrayValues<A>;
/** params (required when the codelet declares a required one) and arrays, after the fields. */
export type VertexRest<P extends ParamSpecs, A extends ArraySpecs> = [RequiredKeys<P>] extends [never]
  ? [params?: VertexParams<P>, arrays?: VertexArrays<A>]
  : [params: VertexParams<P>, arrays?: VertexArrays<A>];

/** A codelet not made by defineCodelet (no typed fields): what the untyped `ctx.vertex` accepts. */
export type UntypedCodelet = Codelet & { shortName?: undefined };

export function isCodeletDef(c: Codelet): c is CodeletDef {
  return typeof (c as Partial<CodeletDef>).shortName === 'string';
}

function wrong(op: string, codelet: Codelet, message: string): UserError {
  return new UserError(`the lowering of op '${op}' is wrong: its vertex of codelet '${codelet.name}' ${message}`);
}

/** The error for a field whose data has a dtype the codelet does not take (undefined: fine). */
export function fieldDtypeError(op: string, codelet: Codelet, field: string, dtype: DeviceDType, tensor: string): UserError | undefined {
  const accepted = codelet.fields[field]?.dtypes;
  if (!accepted || accepted.includes(dtype)) return undefined;
  return wrong(op, codelet, `gets ${dtype} tensor '${tensor}' for field '${field}', which takes ${accepted.join(' or ')}`);
}

/**
 * Throws a UserError naming op, codelet and field for a vertex that does not match its codelet.
 * Runs for every vertex a lowering places (millions for a whole model), so it allocates nothing
 * unless it throws: for-in loops, no key lists or entry pairs.
 */
export function checkVertex(
  op: string,
  codelet: Codelet,
  fields: Record<string, Slice | Slice[] | undefined>,
  params: Record<string, number>,
  tensorOf: (s: Slice) => { name: string; dtype: DeviceDType },
  arrays?: Record<string, number[]>,
): void {
  for (const name in fields) {
    const f = fields[name];
    const spec = codelet.fields[name];
    if (!spec) throw wrong(op, codelet, `connects field '${name}', which the codelet does not have (it has ${Object.keys(codelet.fields).join(', ')})`);
    if (f === undefined) continue;
    if (Array.isArray(f) !== (spec.vector === true)) {
      throw wrong(op, codelet, spec.vector ? `gives field '${name}' one slice, but it is a vector field: give a list of slices` : `gives field '${name}' a list of slices, but it takes one slice`);
    }
    if (!spec.dtypes) continue;
    if (Array.isArray(f)) {
      for (let k = 0; k < f.length; k++) checkDtype(op, codelet, name, tensorOf(f[k]));
    } else checkDtype(op, codelet, name, tensorOf(f));
  }
  for (const name in codelet.fields) {
    const spec = codelet.fields[name];
    if (fields[name] === undefined && mustConnect(spec)) throw wrong(op, codelet, `leaves field '${name}' (${spec.required ? 'required ' : ''}${spec.direction}) unconnected`);
  }
  if (!isCodeletDef(codelet)) return;
  checkKeys(op, codelet, 'param', codelet.params, params, fields);
  if (arrays) checkKeys(op, codelet, 'array', codelet.arrays, arrays, fields);
  for (const p in codelet.params) if (params[p] === undefined && !codelet.params[p].endsWith('?')) throw wrong(op, codelet, `does not give param '${p}' (${codelet.params[p]})`);
  for (const a in codelet.arrays) if (arrays?.[a] === undefined && !codelet.arrays[a].endsWith('?')) throw wrong(op, codelet, `does not give array '${a}' (${codelet.arrays[a]})`);
}

/**
 * Each given param or array is declared (by name, or as `<field><j>...` for
 * an index below the length of vector field `field`) and has its type's values.
 */
function checkKeys(
  op: string,
  codelet: CodeletDef,
  what: 'param' | 'array',
  specs: Record<string, string>,
  given: Record<string, number | number[]>,
  fields: Record<string, Slice | Slice[] | undefined>,
): void {
  for (const key in given) {
    const m = matchKey(specs, key);
    if (m === undefined) {
      const declared = Object.keys(specs);
      throw wrong(op, codelet, `gives ${what} '${key}', which the codelet does not declare (it takes ${declared.length ? declared.join(', ') : `no ${what}s`})`);
    }
    if (m.index !== undefined) {
      const field = indexedField(m.spec)!;
      const list = fields[field];
      const n = Array.isArray(list) ? list.length : 0;
      if (m.index >= n) throw wrong(op, codelet, `gives ${what} '${key}' (${m.spec}), but field '${field}' has ${n} slice${n === 1 ? '' : 's'}`);
    }
    const type = specs[m.spec];
    const value = given[key];
    if (what === 'array') {
      if (!Array.isArray(value)) throw wrong(op, codelet, `gives array '${key}' the value ${String(value)}; an array is a list of numbers`);
      const ints = type.startsWith('ints');
      for (let k = 0; k < value.length; k++) {
        const x = value[k];
        if (typeof x !== 'number' || Number.isNaN(x) || (ints && !Number.isInteger(x))) throw wrong(op, codelet, `gives array '${key}' the element ${String(x)} at ${k}; it holds ${ints ? 'integers' : 'numbers'}`);
      }
      continue;
    }
    // A float param may be infinite (a reduction's identity, as a float vertex field holds it), never NaN.
    if (typeof value !== 'number' || Number.isNaN(value)) throw wrong(op, codelet, `gives param '${key}' the value ${String(value)}; a param is a number`);
    if (type.startsWith('int') && !Number.isInteger(value)) throw wrong(op, codelet, `gives int param '${key}' the value ${value}`);
  }
}

function checkDtype(op: string, codelet: Codelet, field: string, t: { name: string; dtype: DeviceDType }): void {
  const e = fieldDtypeError(op, codelet, field, t.dtype, t.name);
  if (e) throw e;
}
