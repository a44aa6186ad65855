/** Running the vertices of a compute set on a range of tiles: shared by the main thread and the pool workers. */
import type { CodeletRegistry, ElemArray, VertexArgs } from './codelet.js';
import type { TileMemory } from './memory.js';
import type { ComputeSet, Vertex } from './program.js';

export function vertexArgs(v: Vertex, mem: TileMemory): VertexArgs {
  const fields: VertexArgs['fields'] = {};
  for (const [name, f] of Object.entries(v.fields)) {
    fields[name] = Array.isArray(f) ? f.map((r) => mem.view(v.tile, r)) : (mem.view(v.tile, f) as ElemArray);
  }
  return { fields, params: v.params, arrays: v.arrays ?? {} };
}

/** Index range [lo, hi) of the vertices on tiles [tileLo, tileHi); vertices are sorted by tile. */
export function vertexRange(cs: ComputeSet, tileLo: number, tileHi: number): [number, number] {
  const first = (t: number) => {
    let lo = 0;
    let hi = cs.vertices.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cs.vertices[mid].tile < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return [first(tileLo), first(tileHi)];
}

/** Caches each vertex's views so a compute set run many times builds them once. */
export class VertexRunner {
  private readonly cache = new Map<number, VertexArgs[]>();

  constructor(
    private readonly codelets: CodeletRegistry,
    private readonly mem: TileMemory,
  ) {}

  run(cs: ComputeSet, tileLo: number, tileHi: number): void {
    const [lo, hi] = vertexRange(cs, tileLo, tileHi);
    for (let i = lo; i < hi; i++) {
      const v = cs.vertices[i];
      const key = cs.id * 0x100000 + i;
      let args = this.cache.get(key);
      if (!args) {
        args = [vertexArgs(v, this.mem)];
        this.cache.set(key, args);
      }
      try {
        this.codelets.get(v.codelet).compute(args[0]);
      } catch (e) {
        throw new Error(`vertex ${v.codelet} on tile ${v.tile} in compute set '${cs.name}' failed: ${(e as Error).message}`);
      }
    }
  }
}
