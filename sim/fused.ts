/**
 * An exchange fused with the compute set right after it: one task per worker
 * per superstep instead of two rounds (sim/pool.ts), and each thread copies
 * into a tile and then runs that tile's vertices, tile by tile, so the
 * operands just copied are still in cache when the vertices read them.
 *
 * It gives the bytes of all the copies followed by all the vertices when
 * - no copy reads bytes that a copy into another tile writes (planByTile,
 *   sim/exchange.ts: then the copies may run tile by tile, each tile's in the
 *   exchange's order), and
 * - no vertex writes bytes that any copy reads (else a copy into a later
 *   tile, or another worker's, could see the vertex's result),
 * since a vertex reads only its own tile, into which every copy has run
 * before it. Otherwise, and for custom codelets (which may do anything) or
 * run.checkMemory, the engine runs the two apart as before.
 */
import type { CodeletRegistry } from './codelet.js';
import { fanOf, runsOf, unstrided } from './copies.js';
import type { VertexRunner } from './execute.js';
import { COPY_OVERHEAD_BYTES, countBelow, planByTile, type TilePlan } from './exchange.js';
import type { TileMemory } from './memory.js';
import { DTYPE_BYTES, type ComputeSet, type Exchange } from './program.js';
import { REGION_DTYPES, vertexCodelet } from './vertex-table.js';

/** Work of an exchange's copies (bytes + overhead per copy), as planExchange counts it. */
export function copyWork(ex: Exchange): number {
  let w = 0;
  const c = ex.copies;
  for (let i = 0; i < c.count; i++) w += runsOf(c, i) * fanOf(c, i) * (c.bytes[i] + COPY_OVERHEAD_BYTES);
  return w;
}

/** Whether a vertex of `cs` writes any byte a copy of `ex` reads: each copy's source against the outputs on its tile. */
function writesSources(ex: Exchange, cs: ComputeSet, memory: TileMemory, codelets: CodeletRegistry): boolean {
  // Per tile, the byte ranges its vertices write, as sorted starts and ends (a few per tile).
  const written = new Map<number, { starts: number[]; ends: number[] }>();
  const t = cs.vertices;
  for (let i = 0; i < t.count; i++) {
    const spec = codelets.get(vertexCodelet(t, i)).fields;
    for (let f = t.fieldStart[i]; f < t.fieldStart[i + 1]; f++) {
      if (spec[t.names[t.fieldName[f]]]?.direction === 'input') continue;
      let w = written.get(t.tile[i]);
      if (!w) written.set(t.tile[i], (w = { starts: [], ends: [] }));
      for (let r = t.regionStart[f]; r < t.regionStart[f + 1]; r++) {
        w.starts.push(t.regionOffset[r]);
        w.ends.push(t.regionOffset[r] + t.regionCount[r] * DTYPE_BYTES[REGION_DTYPES[t.regionDtype[r]]]);
      }
    }
  }
  const sorted = new Map<number, { starts: Float64Array; ends: Float64Array }>();
  for (const [t, w] of written) sorted.set(t, { starts: Float64Array.from(w.starts).sort(), ends: Float64Array.from(w.ends).sort() });
  const c = unstrided(ex.copies);
  for (let i = 0; i < c.count; i++) {
    const w = c.bytes[i] > 0 ? sorted.get(c.srcTile[i]) : undefined;
    if (!w) continue;
    const lo = c.srcOffset[i];
    // Written ranges overlapping [lo, lo + bytes): those starting below its end, less those ending at or below lo.
    if (countBelow(w.starts, lo + c.bytes[i]) - countBelow(w.ends, lo + 1) > 0) return true;
  }
  return false;
}

/** The tile-by-tile plan of `ex` when it may run fused with `cs`, else undefined (nothing allocated). */
export function planFused(ex: Exchange, cs: ComputeSet, memory: TileMemory, codelets: CodeletRegistry): TilePlan | undefined {
  if (writesSources(ex, cs, memory, codelets)) return undefined;
  return planByTile(ex, memory);
}

/**
 * Run the copies of plan records [at, at + n) (sorted by destination tile)
 * and the vertices of `cs` on tiles [tileLo, tileHi), each tile's copies just
 * before its vertices.
 */
export function runFused(runner: VertexRunner, memory: TileMemory, cs: ComputeSet, tileLo: number, tileHi: number, at: number, n: number, onVertex?: (index: number) => void): void {
  const rec = memory.plans;
  const end = at + n;
  let r = at;
  runner.runByTile(
    cs,
    tileLo,
    tileHi,
    (tile) => {
      // The first record into a later tile: destinations ascend with the tile.
      const limit = memory.tileBase[tile] + memory.tileBytes[tile];
      let lo = r;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (rec[3 * mid + 1] < limit) lo = mid + 1;
        else hi = mid;
      }
      memory.runPlan(r, lo - r);
      r = lo;
    },
    onVertex,
  );
  memory.runPlan(r, end - r);
}
