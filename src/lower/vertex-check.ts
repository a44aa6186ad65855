/**
 * Checking a vertex against its codelet's declaration when a lowering places
 * it: field names, connected fields, vector or single, dtypes, and (for a
 * codelet made by defineCodelet) its params. A mistake is the lowering's,
 * named by op, codelet and field (exit 2), at compile time rather than when
 * the vertex runs.
 */
import { mustConnect, type Codelet } from '../../sim/codelet.js';
import type { ArraySpecs, ArrayValues, CodeletDef, Connected, FieldSpecs, IsVector, Optional, ParamSpecs, ParamValues, RequiredKeys } from '../../sim/define.js';
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

/** Throws a UserError naming op, codelet and field for a vertex that does not match its codelet. */
export function checkVertex(
  op: string,
  codelet: Codelet,
  fields: Record<string, Slice | Slice[] | undefined>,
  params: Record<string, number>,
  tensorOf: (s: Slice) => { name: string; dtype: DeviceDType },
): void {
  const names = Object.keys(codelet.fields);
  for (const [name, f] of Object.entries(fields)) {
    const spec = codelet.fields[name];
    if (!spec) throw wrong(op, codelet, `connects field '${name}', which the codelet does not have (it has ${names.join(', ')})`);
    if (f === undefined) continue;
    if (Array.isArray(f) !== (spec.vector === true)) {
      throw wrong(op, codelet, spec.vector ? `gives field '${name}' one slice, but it is a vector field: give a list of slices` : `gives field '${name}' a list of slices, but it takes one slice`);
    }
    for (const s of Array.isArray(f) ? f : [f]) {
      const t = tensorOf(s);
      const e = fieldDtypeError(op, codelet, name, t.dtype, t.name);
      if (e) throw e;
    }
  }
  for (const name of names) {
    const spec = codelet.fields[name];
    if (fields[name] === undefined && mustConnect(spec)) throw wrong(op, codelet, `leaves field '${name}' (${spec.required ? 'required ' : ''}${spec.direction}) unconnected`);
  }
  if (!isCodeletDef(codelet)) return;
  const declared = Object.keys(codelet.params);
  for (const p of Object.keys(params)) {
    if (!(p in codelet.params)) throw wrong(op, codelet, `gives param '${p}', which the codelet does not declare (it takes ${declared.length ? declared.join(', ') : 'no params'})`);
    // A float param may be infinite (a reduction's identity, as a float vertex field holds it), never NaN.
    if (typeof params[p] !== 'number' || Number.isNaN(params[p])) throw wrong(op, codelet, `gives param '${p}' the value ${params[p]}; a param is a number`);
    if (codelet.params[p].startsWith('int') && !Number.isInteger(params[p])) throw wrong(op, codelet, `gives int param '${p}' the value ${params[p]}`);
  }
  for (const p of declared) if (params[p] === undefined && !codelet.params[p].endsWith('?')) throw wrong(op, codelet, `does not give param '${p}' (${codelet.params[p]})`);
}
