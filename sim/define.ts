/**
 * Typed codelet definitions: `defineCodelet({ domain, name, fields, params,
 * compute, cycles })`. The field and param declarations are the types
 * compute() and cycles() see (an `int32` field arrives as an Int32Array, a
 * float one as a Float32Array, a `vector` field as a list), and the types a
 * lowering's `ctx.vertex(codelet, tile, {...})` is checked against: field
 * names, which fields must be connected, vector or not. The object made is
 * an ordinary Codelet (sim/codelet.ts), so the device side runs it like any
 * other.
 */
import { DOMAIN_SEPARATOR, type Codelet, type FieldSpec, type VertexArgs, type VertexShape } from './codelet.js';
import type { DeviceSpec } from './device.js';
import type { DeviceDType, Region } from './program.js';

/**
 * A param's type: a float (Poplar's float vertex field: round with Math.fround)
 * or an int; with a trailing '?' the lowering may leave it out (compute sees
 * undefined and applies its default).
 */
export type ParamType = 'float' | 'int' | 'float?' | 'int?';
export type FieldSpecs = Record<string, FieldSpec>;
export type ParamSpecs = Record<string, ParamType>;
/** Vector params (shapes, strides, tables) by name; '?' marks one a lowering may leave out. */
export type ArrayType = 'ints' | 'floats' | 'ints?' | 'floats?';
export type ArraySpecs = Record<string, ArrayType>;
/** The keys of a param or array spec the lowering must give, and those it may leave out. */
export type RequiredKeys<S extends Record<string, string>> = { [K in keyof S]: S[K] extends `${string}?` ? never : K }[keyof S];
export type OptionalKeys<S extends Record<string, string>> = Exclude<keyof S, RequiredKeys<S>>;
/**
 * A key with `<j>` in it is one per element of a vector field: `'in<j>Base'`
 * declares `in0Base`, `in1Base`, ... for the slices of vector field `in`
 * (Sum's operands, each with its own broadcast base). Such keys are optional.
 */
export const INDEX_MARK = '<j>';
export type IndexedKey<K> = K extends `${infer A}<j>${infer B}` ? `${A}${number}${B}` : K;
/** Params as compute() sees them: numbers, undefined where left out. */
export type ParamValues<P extends ParamSpecs> = { [K in RequiredKeys<P> as IndexedKey<K>]: number } & { [K in OptionalKeys<P> as IndexedKey<K>]?: number };
export type ArrayValues<A extends ArraySpecs> = { [K in RequiredKeys<A> as IndexedKey<K>]: number[] } & { [K in OptionalKeys<A> as IndexedKey<K>]?: number[] };

/** How a field of dtype D arrives in compute(): float16 decoded to floats (and rounded back after). */
export type ElemOf<D extends DeviceDType> = D extends 'int32' ? Int32Array : D extends 'uint8' ? Uint8Array : Float32Array;
/** The dtypes a field accepts: its `dtypes`, else any float. */
export type DtypesOf<F extends FieldSpec> = F extends { dtypes: readonly (infer D extends DeviceDType)[] } ? D : 'float32' | 'float16';
export type IsVector<F extends FieldSpec> = F extends { vector: true } ? true : false;
/** Fields that must be connected (input, output, required inout); other inout ones may be left out. */
export type Connected<F extends FieldSpecs> = { [K in keyof F]: F[K] extends { direction: 'inout' } ? (F[K] extends { required: true } ? K : never) : K }[keyof F];
export type Optional<F extends FieldSpecs> = Exclude<keyof F, Connected<F>>;
export type FieldView<F extends FieldSpec> = IsVector<F> extends true ? ElemOf<DtypesOf<F>>[] : ElemOf<DtypesOf<F>>;
export type FieldRegion<F extends FieldSpec> = IsVector<F> extends true ? Region[] : Region;

/** What compute() sees: typed views of tile memory. */
export interface TypedVertexArgs<F extends FieldSpecs, P extends ParamSpecs, A extends ArraySpecs> {
  fields: { [K in Connected<F>]: FieldView<F[K]> } & { [K in Optional<F>]?: FieldView<F[K]> };
  params: ParamValues<P>;
  arrays: ArrayValues<A>;
}

/** What cycles() sees: the fields' regions (sizes and dtypes, no data) and the params. */
export interface TypedVertexShape<F extends FieldSpecs, P extends ParamSpecs, A extends ArraySpecs> {
  fields: { [K in Connected<F>]: FieldRegion<F[K]> } & { [K in Optional<F>]?: FieldRegion<F[K]> };
  params: ParamValues<P>;
  arrays?: ArrayValues<A>;
}

/** A codelet made by defineCodelet: a Codelet that keeps its field and param types. */
export interface CodeletDef<F extends FieldSpecs = FieldSpecs, P extends ParamSpecs = ParamSpecs, A extends ArraySpecs = ArraySpecs> extends Codelet {
  readonly fields: F;
  readonly params: P;
  readonly arrays: A;
  /** The domain that qualifies the name (absent for built-ins). */
  readonly domain?: string;
  /** The name without its domain (compute sets are named after it). */
  readonly shortName: string;
}

export interface CodeletDefinition<F extends FieldSpecs, P extends ParamSpecs, A extends ArraySpecs> {
  /** Qualifies the name, as an op's domain does: a custom codelet cannot collide with a built-in. Required for custom codelets. */
  domain?: string;
  name: string;
  kind: 'multi' | 'worker';
  fields: F;
  params?: P;
  arrays?: A;
  compute(args: TypedVertexArgs<F, P, A>): void;
  cycles(v: TypedVertexShape<F, P, A>, device: DeviceSpec): number;
  estimateSource?: string;
}

/** A typed codelet: `{domain: 'custom.ops', name: 'LeakyRelu'}` registers as `custom.ops::LeakyRelu`. */
export function defineCodelet<const F extends FieldSpecs, const P extends ParamSpecs = Record<never, ParamType>, const A extends ArraySpecs = Record<never, 'ints'>>(
  def: CodeletDefinition<F, P, A>,
): CodeletDef<F, P, A> {
  if (def.domain !== undefined && (def.domain === '' || def.domain.includes(DOMAIN_SEPARATOR))) {
    throw new Error(`codelet '${def.name}': domain must be a non-empty name without '${DOMAIN_SEPARATOR}', got '${def.domain}'`);
  }
  if (def.name.includes(DOMAIN_SEPARATOR)) throw new Error(`codelet '${def.name}': give the domain as \`domain\`, not in the name`);
  for (const [what, specs] of [['param', def.params ?? {}], ['array', def.arrays ?? {}]] as const) {
    for (const [key, type] of Object.entries(specs)) {
      const field = indexedField(key);
      if (field === undefined) continue;
      if (!def.fields[field]?.vector) throw new Error(`codelet '${def.name}': ${what} '${key}' is one per slice of '${field}', which is not a vector field`);
      if (!type.endsWith('?')) throw new Error(`codelet '${def.name}': ${what} '${key}' is one per slice of '${field}' and must be optional ('${type}?')`);
    }
  }
  return {
    name: def.domain === undefined ? def.name : `${def.domain}${DOMAIN_SEPARATOR}${def.name}`,
    shortName: def.name,
    ...(def.domain !== undefined ? { domain: def.domain } : {}),
    kind: def.kind,
    fields: def.fields,
    params: def.params ?? ({} as P),
    arrays: def.arrays ?? ({} as A),
    // The only place typed fields meet the untyped VertexArgs: defineCodelet's field specs are the contract
    // the vertex was checked against when it was placed (names, connection, dtypes).
    compute: def.compute as unknown as (args: VertexArgs) => void,
    cycles: def.cycles as unknown as (v: VertexShape, device: DeviceSpec) => number,
    ...(def.estimateSource !== undefined ? { estimateSource: def.estimateSource } : {}),
  };
}

/** The vector field an indexed key (`'in<j>Base'`) is per slice of, or undefined for a plain key. */
export function indexedField(key: string): string | undefined {
  const at = key.indexOf(INDEX_MARK);
  return at < 0 ? undefined : key.slice(0, at);
}

/**
 * The declared key that `key` matches in `specs`: itself, or the indexed key
 * `<field><j><rest>` for `key` = `<field><digits><rest>`, with the index.
 */
export function matchKey(specs: Record<string, string>, key: string): { spec: string; index?: number } | undefined {
  if (specs[key] !== undefined) return { spec: key };
  for (const spec in specs) {
    const at = spec.indexOf(INDEX_MARK);
    if (at < 0) continue;
    const head = spec.slice(0, at);
    const tail = spec.slice(at + INDEX_MARK.length);
    if (!key.startsWith(head) || !key.endsWith(tail) || key.length <= head.length + tail.length) continue;
    const digits = key.slice(head.length, key.length - tail.length);
    if (/^(0|[1-9][0-9]*)$/.test(digits)) return { spec, index: Number(digits) };
  }
  return undefined;
}

/** A codelet's name without its domain. */
export function shortCodeletName(c: Codelet | string): string {
  const name = typeof c === 'string' ? c : c.name;
  const at = name.indexOf(DOMAIN_SEPARATOR);
  return at < 0 ? name : name.slice(at + DOMAIN_SEPARATOR.length);
}
