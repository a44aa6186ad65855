/**
 * Running the vertices of a compute set on a range of tiles: shared by the
 * main thread and the pool workers. Codelets see float16 fields as
 * Float32Arrays: decoded before compute, and for outputs encoded back (round
 * to nearest even) after it, so every codelet is written once, on floats.
 * The decoded floats live in this thread's scratch arena of tile memory when
 * there is one (sim/memory.ts), so the WebAssembly kernels can run on them;
 * each vertex's start at the arena's base (one vertex runs at a time).
 */
import type { Codelet, CodeletRegistry, ElemArray, VertexArgs } from './codelet.js';
import { CodeletFault, ExitCalled, describeThrown } from './faults.js';
import { decodeHalf, encodeHalf } from './half.js';
import type { TileMemory } from './memory.js';
import type { ComputeSet, Region, Vertex } from './program.js';
import { vertexAt, vertexCodelet, vertexRange as tableRange } from './vertex-table.js';

interface HalfField {
  bits: Uint16Array;
  floats: Float32Array;
  load: boolean;
  store: boolean;
}

interface PreparedVertex {
  codelet: Codelet;
  args: VertexArgs;
  halves: HalfField[];
  /** Where the arena's free space starts while this vertex runs (after its decoded fields). */
  arenaTop: number;
}

function prepare(v: Vertex, codelet: Codelet, mem: TileMemory): PreparedVertex {
  const fields: VertexArgs['fields'] = {};
  const halves: HalfField[] = [];
  const arena = mem.arena;
  if (arena) arena.top = arena.base;
  const floatsFor = (count: number): Float32Array => {
    const at = arena ? arena.alloc(4 * count) : -1;
    return at < 0 ? new Float32Array(count) : new Float32Array(mem.buffer, at, count);
  };
  const viewOf = (name: string, r: Region): ElemArray => {
    const view = mem.view(v.tile, r);
    if (r.dtype !== 'float16') return view;
    const dir = codelet.fields[name]?.direction ?? 'input';
    const h: HalfField = { bits: view as Uint16Array, floats: floatsFor(r.count), load: dir !== 'output', store: dir !== 'input' };
    halves.push(h);
    return h.floats;
  };
  for (const [name, f] of Object.entries(v.fields)) fields[name] = Array.isArray(f) ? f.map((r) => viewOf(name, r)) : viewOf(name, f);
  return { codelet, args: { fields, params: v.params, arrays: v.arrays ?? {} }, halves, arenaTop: arena ? arena.top : 0 };
}

/** Index range [lo, hi) of the vertices on tiles [tileLo, tileHi); vertices are sorted by tile. */
export function vertexRange(cs: ComputeSet, tileLo: number, tileHi: number): [number, number] {
  return tableRange(cs.vertices, tileLo, tileHi);
}

/** Caches each vertex's views so a compute set run many times builds them once. */
export class VertexRunner {
  private readonly cache = new Map<number, PreparedVertex[]>();

  constructor(
    private readonly codelets: CodeletRegistry,
    private readonly mem: TileMemory,
  ) {}

  /**
   * Run the vertices of `cs` on tiles [tileLo, tileHi). `onVertex(i)` is told
   * each vertex index before it runs (the pool's record of where a worker was
   * if its thread dies). A codelet that throws, whatever it throws, or calls
   * process.exit becomes a CodeletFault naming the codelet, tile, compute set
   * and module: process.exit is swapped for a throwing stand-in meanwhile
   * (compute() is synchronous, so nothing else sees the swap).
   */
  run(cs: ComputeSet, tileLo: number, tileHi: number, onVertex?: (index: number) => void): void {
    const [lo, hi] = vertexRange(cs, tileLo, tileHi);
    this.runVertices(cs, lo, hi, onVertex);
  }

  /** As run(), calling `beforeTile(t)` before the vertices of each tile t that has some (sim/fused.ts). */
  runByTile(cs: ComputeSet, tileLo: number, tileHi: number, beforeTile: (tile: number) => void, onVertex?: (index: number) => void): void {
    const [lo, hi] = vertexRange(cs, tileLo, tileHi);
    for (let i = lo; i < hi; ) {
      const tile = cs.vertices.tile[i];
      let j = i + 1;
      while (j < hi && cs.vertices.tile[j] === tile) j++;
      beforeTile(tile);
      this.runVertices(cs, i, j, onVertex);
      i = j;
    }
  }

  /** Run vertices [lo, hi) of `cs` (indices into cs.vertices), as run() does. */
  runVertices(cs: ComputeSet, lo: number, hi: number, onVertex?: (index: number) => void): void {
    let prepared = this.cache.get(cs.id);
    if (!prepared) {
      prepared = [];
      this.cache.set(cs.id, prepared);
    }
    const exit = process.exit;
    process.exit = ((code?: unknown) => {
      throw new ExitCalled(code);
    }) as typeof process.exit;
    try {
      for (let i = lo; i < hi; i++) {
        onVertex?.(i);
        let p = prepared[i];
        if (!p) {
          const v = vertexAt(cs.vertices, i);
          p = prepared[i] = prepare(v, this.codelets.get(v.codelet), this.mem);
        }
        if (this.mem.arena) this.mem.arena.top = p.arenaTop;
        try {
          // Output-only fields start at zero, as fresh arrays would (the arena holds the last vertex's values).
          for (const h of p.halves) if (h.load) decodeHalf(h.bits, h.floats);
            else h.floats.fill(0);
          p.codelet.compute(p.args);
          for (const h of p.halves) if (h.store) encodeHalf(h.floats, h.bits);
        } catch (e) {
          const exited = e instanceof ExitCalled;
          const codelet = vertexCodelet(cs.vertices, i);
          const module = this.codelets.moduleOf(codelet);
          // A built-in codelet throws only to refuse its data (a label out of range): its message says why.
          const refused = module === undefined && e instanceof Error && !exited;
          throw new CodeletFault({
            kind: exited ? 'exit' : 'compute',
            what: exited ? `compute() called ${e.message}; a codelet must return, not end the process` : refused ? e.message : `compute() threw ${describeThrown(e)}`,
            codelet,
            module,
            tile: cs.vertices.tile[i],
            computeSet: cs.name,
            op: cs.op,
          });
        }
      }
    } finally {
      process.exit = exit;
    }
  }
}
