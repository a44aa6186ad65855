/**
 * The codelet interface. A codelet is what a vertex runs: typed fields that
 * are regions of its tile's memory, scalar params, a compute function and a
 * cycle estimate in the PopLibs style. Built-in and custom codelets are the
 * same thing; custom-op modules export theirs.
 */
import type { DeviceSpec } from './device.js';
import type { DeviceDType, FieldValue, Vertex } from './program.js';

export type FieldDirection = 'input' | 'output' | 'inout';

export interface FieldSpec {
  direction: FieldDirection;
  /** Accepted element types (default: any float); checked when the vertex is placed and at finalize. */
  dtypes?: readonly DeviceDType[];
  /** True when the field is a list of regions (Poplar's Vector<Input<Vector<T>>>). */
  vector?: boolean;
  /** An inout field the vertex cannot run without (state updated in place); other inout fields may be left unconnected. */
  required?: boolean;
}

/** Whether a vertex must connect the field: inputs, outputs and required inout state. */
export function mustConnect(f: FieldSpec): boolean {
  return f.direction !== 'inout' || f.required === true;
}

export type ElemArray = Float32Array | Int32Array | Uint16Array | Uint8Array;

/** What compute() sees: each field as a typed view of tile memory (float16 as raw bits). */
export interface VertexArgs {
  fields: Record<string, ElemArray | ElemArray[]>;
  params: Record<string, number>;
  arrays: Record<string, number[]>;
}

/** What cycles() sees: field sizes and types, no data. */
export interface VertexShape {
  fields: Record<string, FieldValue>;
  params: Record<string, number>;
  arrays?: Record<string, number[]>;
}

export interface Codelet {
  name: string;
  /**
   * 'multi': a MultiVertex that runs on all workers of the tile; cycles() is
   * its whole tile cost. 'worker': a Vertex on one worker; cycles() counts that
   * worker's own instruction slots and the tile schedules such vertices over
   * its workers.
   */
  kind: 'multi' | 'worker';
  fields: Record<string, FieldSpec>;
  compute(args: VertexArgs): void;
  cycles(v: VertexShape, device: DeviceSpec): number;
  /** Source of the estimate, for `sim vertex` and the docs. */
  estimateSource?: string;
  /**
   * The multi-region form of a 1-D elementwise MultiVertex (popops'
   * UnaryOp2D / BinaryOp2D): a worker vertex whose fields are lists of
   * regions, region j of every field making one 1-D pass. Elementwise
   * lowerings place it, one per worker, on a tile that holds several runs of
   * the output (src/lower/elementwise.ts placeByTile).
   */
  multiRegion?: Codelet;
}

/** A custom codelet's name is qualified by its domain (`custom.ops::LeakyRelu`); built-in names never are. */
export const DOMAIN_SEPARATOR = '::';

export class CodeletRegistry {
  private readonly byName = new Map<string, Codelet>();
  private readonly modules = new Map<string, string>();

  /**
   * `module`: the custom-op module file the codelet comes from (none for
   * built-ins), for blaming faults. A codelet's multi-region form comes with it.
   */
  add(c: Codelet, module?: string): void {
    const prev = this.byName.get(c.name);
    if (prev && prev !== c) throw new Error(`codelet '${c.name}' is registered twice with different definitions`);
    this.byName.set(c.name, c);
    if (module !== undefined) this.modules.set(c.name, module);
    if (c.multiRegion) this.add(c.multiRegion, module);
  }

  /** The custom-op module a codelet comes from; undefined for a built-in. */
  moduleOf(name: string): string | undefined {
    return this.modules.get(name);
  }

  get(name: string): Codelet {
    const c = this.byName.get(name);
    if (!c) throw new Error(`no codelet '${name}' is registered (known: ${[...this.byName.keys()].sort().join(', ')})`);
    return c;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }
}

export function vertexElements(v: Vertex | VertexShape): number {
  let n = 0;
  for (const f of Object.values(v.fields)) {
    if (Array.isArray(f)) for (const r of f) n += r.count;
    else n += f.count;
  }
  return n;
}

export function regionCount(f: FieldValue | undefined): number {
  if (!f) return 0;
  return Array.isArray(f) ? f.reduce((s, r) => s + r.count, 0) : f.count;
}

export function fieldDType(f: FieldValue): DeviceDType {
  return Array.isArray(f) ? (f[0]?.dtype ?? 'float32') : f.dtype;
}
