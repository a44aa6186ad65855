/**
 * Layouts chosen by a planned consumer (PopLibs' createMatMulInputLHS/RHS,
 * createWeights, createInput): the tile mapping of an operand nothing
 * produces, built from the plan's reads so the planned op finds its operand
 * where it reads it.
 *
 * The plan says, per block, which runs of the operand a group of tiles reads
 * (one tile, or several when the block is broadcast across another split:
 * the A block of a matmul is read by every column block's tile). Each block's
 * elements, in the order the tiles read them, are cut into equal pieces of
 * whole grains, one per reader: every reader then holds a share and receives
 * only the rest (the broadcast part), the holders each sending their share
 * once. A block read by one tile lies wholly on it: no exchange at all.
 * Pieces are at least `minElems` long (fewer readers hold one when the block
 * is small), the first piece's reader rotating from block to block so small
 * blocks spread. An element read by several blocks (a convolution's halo)
 * stays where the first block put it; an element nothing reads (none, for
 * the built-in plans) is mapped as a linear mapping would map it.
 *
 * A block strided in the tensor (the column block of a row-major weight)
 * lies on its tile as many intervals, and every elementwise op over the
 * tensor, the optimizer's update of a weight each step among them, runs one
 * vertex per interval: a layout giving some tile more than
 * `maxIntervalsPerTile` intervals is not worth it, and the answer is no
 * layout (the tensor is then mapped linearly).
 */
import type { TileRange } from './devicegraph.js';
import { layoutTile, type LinearLayout } from './linear.js';

/** Element runs [begin, end) of a flat tensor. */
export type Run = readonly [number, number];

/**
 * Append the element run [b, e) to `runs`, merged into the last run when
 * adjacent, an empty one dropped: plans list what a tile reads this way, as
 * they build it (one run per row or channel, merged after, was most of a
 * ResNet compile's garbage).
 */
export function pushRun(runs: [number, number][], b: number, e: number): void {
  if (e <= b) return;
  const last = runs.length > 0 ? runs[runs.length - 1] : undefined;
  if (last !== undefined && last[1] === b) last[1] = e;
  else runs.push([b, e]);
}

/**
 * Element runs [begin, end) as one flat column of bounds: what a tile reads,
 * built run by run as pushRun builds a list of pairs (adjacent runs merged),
 * one object instead of one array per run (a ResNet-50 forward made twelve
 * million: a pair per input channel per tile). The column is a plain array of
 * small integers, not an Int32Array: most lists are short, and each typed
 * array has a backing store outside the heap, slow to make and to free (a
 * BERT layer's compile makes hundreds of thousands).
 */
export class RunList {
  n = 0;
  /** Run k is [a[2k], a[2k + 1]). */
  readonly a: number[] = [];

  /** The runs as they are (none merged). */
  static from(runs: readonly Run[]): RunList {
    const r = new RunList();
    for (let k = 0; k < runs.length; k++) r.a.push(runs[k][0], runs[k][1]);
    r.n = runs.length;
    return r;
  }

  /** Append [b, e) as pushRun does: merged into the last run when adjacent, an empty one dropped. */
  push(b: number, e: number): void {
    if (e <= b) return;
    if (this.n > 0 && this.a[2 * this.n - 1] === b) {
      this.a[2 * this.n - 1] = e;
      return;
    }
    this.a.push(b, e);
    this.n++;
  }

  /** Empty again (a scratch list reused). */
  clear(): void {
    this.a.length = 0;
    this.n = 0;
  }

  begin(k: number): number {
    return this.a[2 * k];
  }

  end(k: number): number {
    return this.a[2 * k + 1];
  }

  /** The runs as pairs (for a plan's few distinct reads). */
  pairs(): [number, number][] {
    return Array.from({ length: this.n }, (_, k): [number, number] => [this.a[2 * k], this.a[2 * k + 1]]);
  }

  /**
   * A 30-bit hash of the runs (FNV-1a over the bounds, its low 30 bits: a
   * small integer, which V8 keeps unboxed as a Map key), to find an equal
   * list among earlier ones without building a string key of it: plans group
   * and cache reads by their runs, and such keys were most of a whole-model
   * compile's garbage. Compare with same() on a hit.
   */
  hash(): number {
    let h = 0x811c9dc5;
    for (let k = 0; k < 2 * this.n; k++) h = Math.imul(h ^ this.a[k], 0x01000193);
    return h & 0x3fffffff;
  }

  same(o: RunList): boolean {
    // Plans share one list among the tiles reading a block: the same object is the common hit.
    if (o === this) return true;
    if (o.n !== this.n) return false;
    for (let k = 0; k < 2 * this.n; k++) if (o.a[k] !== this.a[k]) return false;
    return true;
  }
}

/** One block of a plan: the tiles reading it and the runs they read, in the order they read them. */
export interface ReadGroup {
  tiles: readonly number[];
  runs: readonly Run[];
}

export interface ReadLayoutOptions {
  /** Piece boundaries fall on multiples of this many elements (of the block's read order). */
  grain: number;
  /** The least elements a reader holds (a smaller block goes to fewer readers). */
  minElems: number;
  /** Where elements no group reads go: the linear layout of the tensor. */
  linear: LinearLayout;
  numTiles: number;
  /** The most intervals a tile may hold (default MAX_INTERVALS_PER_TILE). */
  maxIntervalsPerTile?: number;
}

/**
 * Intervals per tile beyond which a layout by reads is refused: an update
 * vertex costs about as much as the exchange of a few hundred bytes, more
 * than a short strided run saves.
 */
export const MAX_INTERVALS_PER_TILE = 2;

/** The mapping of a tensor of `size` elements read as `groups` say, or undefined when too fragmented (see the file comment). */
export function layoutFromReads(size: number, groups: readonly ReadGroup[], o: ReadLayoutOptions): TileRange[] | undefined {
  const owner = new Int32Array(size).fill(-1);
  groups.forEach((group, gi) => {
    const total = group.runs.reduce((s, [b, e]) => s + (e - b), 0);
    if (total === 0 || group.tiles.length === 0) return;
    const grains = Math.ceil(total / o.grain);
    const pieces = Math.max(1, Math.min(group.tiles.length, Math.floor(total / Math.max(1, o.minElems)), grains));
    const first = gi % group.tiles.length;
    // Piece i covers read positions [cut(i), cut(i + 1)), whole grains.
    const cut = (i: number) => Math.min(total, Math.round((i * grains) / pieces) * o.grain);
    let piece = 0;
    let end = cut(1);
    let pos = 0;
    // Each run in stretches of one piece (one tile), an element keeping the first tile given it.
    for (const [b, e] of group.runs) {
      for (let x = b; x < e; ) {
        while (pos >= end) end = cut(++piece + 1);
        const tile = group.tiles[(first + piece) % group.tiles.length];
        const stop = Math.min(e, x + (end - pos));
        pos += stop - x;
        for (; x < stop; x++) if (owner[x] < 0) owner[x] = tile;
      }
    }
  });
  // Refused as soon as a tile takes one interval too many (most refusals come within the first rows).
  const max = o.maxIntervalsPerTile ?? MAX_INTERVALS_PER_TILE;
  // Counted per tile up to the highest a group names (a caller's tile past numTiles is counted too, and
  // left for setTileMapping to name).
  let tiles = o.numTiles;
  for (const g of groups) for (const t of g.tiles) if (t >= tiles) tiles = t + 1;
  const intervals = new Int32Array(tiles);
  const out: TileRange[] = [];
  for (let x = 0; x < size; ) {
    let tile = owner[x];
    let e = x + 1;
    if (tile < 0) {
      // Unread: its linear chunk (to the chunk's end or the next read element).
      const chunk = Math.floor(x / o.linear.perTile);
      tile = layoutTile(o.linear, chunk, o.numTiles);
      const chunkEnd = Math.min(size, (chunk + 1) * o.linear.perTile);
      while (e < chunkEnd && owner[e] < 0) e++;
    } else while (e < size && owner[e] === tile) e++;
    const last = out[out.length - 1];
    if (last && last.tile === tile && last.end === x) last.end = e;
    else {
      if (++intervals[tile] > max) return undefined;
      out.push({ tile, begin: x, end: e });
    }
    x = e;
  }
  return out;
}
