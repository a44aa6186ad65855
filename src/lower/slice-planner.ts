/**
 * The embedding lookup plan (PopLibs' popops::embedding plan for multiSlice
 * and multiUpdateAdd, createSliceableTensor): where a table read by runtime
 * indices lives, and how the lookup and its gradient run.
 *
 * The table is viewed as `rows` = outer x axisSize rows of `inner` elements
 * (an embedding table [V, H] with axis 0: V rows of H). It is split
 *   - by columns into C groups of whole grains (the vector width): a column
 *     group is looked up on its own, no cross-tile combining needed;
 *   - by rows into R groups of `rowsPer` rows: an index's row lives in one
 *     group, unknown until run time, so each group's tiles write a partial
 *     output (the rows they own) and a second stage, MultiSliceCombine,
 *     takes each output row from the group that owns its index. The static
 *     exchange must bring every group's partial of a block to the block's
 *     tile: R x the output, spread over the output tiles.
 * Tile (r, c) holds rows of group r, columns of group c, and runs the
 * MultiSlice of that block; the table is never copied. The gradient
 * (MultiUpdateAdd) maps dTable like the table: tile (r, c) zeroes its block
 * and adds the output-gradient rows whose index lands in it, so an SGD update
 * of the table needs no exchange.
 *
 * The split is chosen by two estimates: the forward lookup's cycles (index
 * broadcast, MultiSlice, partial exchange, combine; the vertex estimates of
 * sim/codelets/multislice.ts) and its bytes on the busiest tile (table
 * block, partials, the combine's received partials, indices, vertex state).
 * Among the splits within availableMemoryProportion of a tile and within
 * CYCLE_SLACK of the fastest, the fewest bytes per tile wins (the table
 * block is resident all program long). Tiles each hold at most
 * MAX_ROW_REGIONS rows when the columns are split, column groups at least
 * MIN_COL_BYTES wide (unless the rows are narrower). The limits are ours:
 * tensors here are flat row-major, so a column block is one tile interval
 * and one vertex region per row (PopLibs' createSliceableTensor makes it one
 * contiguous region instead); narrow column groups would make millions of
 * them for a large vocabulary.
 */
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES, type DeviceDType } from '../../sim/program.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { multiSliceVertexCycles } from '../../sim/codelets/multislice.js';
import { linearLayout, linearStartTile } from './linear.js';
import type { TileRange } from './devicegraph.js';

/** The most table rows a tile holds (one vertex region each) when the columns are split. */
export const MAX_ROW_REGIONS = 256;

/**
 * The narrowest column group, in bytes of a row: each row a MultiSlice
 * copies costs 19 cycles of overhead besides its 1 cycle per element, so
 * narrower groups buy little and fragment the table and output into more
 * tile intervals (and the next op's exchange into more copies).
 */
export const MIN_COL_BYTES = 64;

/** Plans within this factor (plus one sync) of the fastest count as fast; the fewest bytes per tile wins among them. */
export const CYCLE_SLACK = 1.25;

export interface SliceProblem {
  outer: number;
  axisSize: number;
  inner: number;
  numIdx: number;
  dtype: DeviceDType;
}

export interface SlicePlan extends SliceProblem {
  /** Table rows: outer x axisSize. */
  rows: number;
  /** Row groups and the rows of each (the last may hold fewer). */
  R: number;
  rowsPer: number;
  /** Column group boundaries, C + 1 of them, in whole grains. */
  colBounds: number[];
  /** Output row blocks of the combine stage (R > 1) and the rows of each. */
  B: number;
  rowsPerBlock: number;
  /** First tile; tile (r, c) is (start + r C + c) mod tiles. */
  start: number;
  numTiles: number;
  /** The estimate that chose it. */
  cycles: number;
  bytesPerTile: number;
}

export const planC = (p: SlicePlan) => p.colBounds.length - 1;

/** Tile of table block (r, c). */
export function blockTile(p: SlicePlan, r: number, c: number): number {
  return (p.start + r * planC(p) + c) % p.numTiles;
}

/** Tile of output block (b, c) of the combine stage. */
export function outBlockTile(p: SlicePlan, b: number, c: number): number {
  return (p.start + b * planC(p) + c) % p.numTiles;
}

/** Table rows [lo, hi) of row group r. */
export function groupRows(p: SlicePlan, r: number): [number, number] {
  return [r * p.rowsPer, Math.min(p.rows, (r + 1) * p.rowsPer)];
}

/** Output rows [lo, hi) that row group r can hold (those of the outer positions its rows span). */
export function groupOutRows(p: SlicePlan, r: number): [number, number] {
  const [lo, hi] = groupRows(p, r);
  if (hi <= lo) return [0, 0];
  const oLo = Math.floor(lo / p.axisSize);
  const oHi = Math.floor((hi - 1) / p.axisSize);
  return [oLo * p.numIdx, (oHi + 1) * p.numIdx];
}

/** Output rows [lo, hi) of combine block b. */
export function blockOutRows(p: SlicePlan, b: number): [number, number] {
  const n = p.outer * p.numIdx;
  return [Math.min(n, b * p.rowsPerBlock), Math.min(n, (b + 1) * p.rowsPerBlock)];
}

/** Element runs [begin, end) of a [rows, inner] tensor: rows [lo, hi), columns [c0, c1) (merged when whole rows). */
export function blockRuns(inner: number, lo: number, hi: number, c0: number, c1: number): [number, number][] {
  if (hi <= lo || c1 <= c0) return [];
  if (c0 === 0 && c1 === inner) return [[lo * inner, hi * inner]];
  const runs: [number, number][] = [];
  for (let q = lo; q < hi; q++) runs.push([q * inner + c0, q * inner + c1]);
  return runs;
}

/** The table's (and its gradient's) tile mapping under the plan. */
export function tableMapping(p: SlicePlan): TileRange[] {
  const out: TileRange[] = [];
  const C = planC(p);
  for (let r = 0; r < p.R; r++) {
    const [lo, hi] = groupRows(p, r);
    if (C === 1) {
      if (hi > lo) out.push({ tile: blockTile(p, r, 0), begin: lo * p.inner, end: hi * p.inner });
      continue;
    }
    for (let q = lo; q < hi; q++) for (let c = 0; c < C; c++) out.push({ tile: blockTile(p, r, c), begin: q * p.inner + p.colBounds[c], end: q * p.inner + p.colBounds[c + 1] });
  }
  return out;
}

/** The output's tile mapping: column group c on tile (0, c) when R = 1, else block (b, c) of the combine. */
export function outputMapping(p: SlicePlan): TileRange[] {
  const out: TileRange[] = [];
  const C = planC(p);
  const nOut = p.outer * p.numIdx;
  const blocks = p.R === 1 ? 1 : p.B;
  for (let b = 0; b < blocks; b++) {
    const [lo, hi] = p.R === 1 ? [0, nOut] : blockOutRows(p, b);
    for (let c = 0; c < C; c++) {
      const tile = p.R === 1 ? blockTile(p, 0, c) : outBlockTile(p, b, c);
      for (const [begin, end] of blockRuns(p.inner, lo, hi, p.colBounds[c], p.colBounds[c + 1])) out.push({ tile, begin, end });
    }
  }
  return out;
}

/** Column boundaries of C groups of whole grains over `inner` columns, as even as whole grains allow. */
function columnBounds(inner: number, grain: number, C: number): number[] {
  const grains = Math.ceil(inner / grain);
  const b = [0];
  for (let c = 0; c < C; c++) b.push(Math.min(inner, Math.floor((grains * (c + 1)) / C) * grain));
  return b;
}

/** Estimate one split: forward cycles and the lookup's bytes on its busiest tile. */
function estimate(prob: SliceProblem, rows: number, rowsPer: number, R: number, C: number, cols: number, numTiles: number, device: DeviceSpec) {
  const bytes = DTYPE_BYTES[prob.dtype];
  const nOut = prob.outer * prob.numIdx;
  const bpc = device.exchangeBytesPerCycle;
  // Output rows a group's partial holds: all of them for axis 0, else those of the outer positions it spans.
  const nP = prob.outer === 1 ? nOut : Math.min(nOut, prob.numIdx * (Math.floor((rowsPer - 1) / prob.axisSize) + 2));
  const idxBytes = prob.numIdx * 4;
  let cycles = device.syncCycles + Math.ceil(idxBytes / bpc) + multiSliceVertexCycles(nP, cols, prob.dtype, device);
  let mem = rowsPer * cols * bytes + idxBytes;
  let regions = C > 1 ? rowsPer : 1;
  if (R === 1) {
    mem += nOut * cols * bytes;
    regions += C > 1 ? nOut : 1;
  } else {
    const B = Math.max(1, Math.min(nOut, Math.floor(numTiles / C)));
    const rowsPerBlock = Math.ceil(nOut / B);
    // Groups whose partials a block needs: all for axis 0, else those spanning its outer positions.
    const groups = prob.outer === 1 ? R : Math.min(R, Math.ceil((prob.axisSize * (Math.ceil(rowsPerBlock / prob.numIdx) + 1)) / rowsPer) + 1);
    const sent = nP * cols * bytes;
    const received = groups * rowsPerBlock * cols * bytes;
    cycles += 2 * device.syncCycles + Math.ceil(Math.max(sent, received) / bpc) + multiSliceVertexCycles(rowsPerBlock, cols, prob.dtype, device);
    mem += sent + received + rowsPerBlock * cols * bytes;
    regions += 1 + groups + (C > 1 ? rowsPerBlock : 1);
  }
  mem += regions * 8;
  return { cycles, mem };
}

/** The plan for a lookup of `prob` on `device` (deterministic: createInput, the lookup and its gradient agree). */
export function planSlice(prob: SliceProblem, device: DeviceSpec): SlicePlan {
  const numTiles = device.ipus * device.tilesPerIpu;
  const rows = prob.outer * prob.axisSize;
  const grain = Math.min(prob.inner, vectorWidth(prob.dtype, device));
  const grains = Math.max(1, Math.ceil(prob.inner / Math.max(1, grain)));
  const budget = device.bytesPerTile * (device.availableMemoryProportion ?? 0.6);
  type Candidate = { R: number; rowsPer: number; C: number; cycles: number; mem: number };
  const all: Candidate[] = [];
  const minGrains = Math.min(grains, Math.max(1, Math.ceil(MIN_COL_BYTES / (Math.max(1, grain) * DTYPE_BYTES[prob.dtype]))));
  for (let C = 1; C <= Math.min(grains, numTiles); C++) {
    if (Math.floor(grains / C) < minGrains) break;
    const cols = Math.min(prob.inner, Math.ceil(grains / C) * grain);
    let lastRowsPer = -1;
    for (let R = 1; R <= Math.max(1, Math.min(rows, Math.floor(numTiles / C))); R++) {
      const rowsPer = Math.max(1, Math.ceil(rows / R));
      if (rowsPer === lastRowsPer) continue;
      lastRowsPer = rowsPer;
      // C = 1 is always admissible (one region per tile), so there is always a candidate.
      if (C > 1 && rowsPer > MAX_ROW_REGIONS) continue;
      const realR = Math.max(1, Math.ceil(rows / rowsPer));
      const e = estimate(prob, rows, rowsPer, realR, C, cols, numTiles, device);
      all.push({ R: realR, rowsPer, C, cycles: e.cycles, mem: e.mem });
    }
  }
  // Within the budget: the fewest bytes per tile among the plans within CYCLE_SLACK of the fastest
  // (the table block stays resident all program long; the lookup's cycles are small either way),
  // then the fewest cycles, then the fewest tiles. None within the budget: the fewest bytes.
  const fitting = all.filter((c) => c.mem <= budget);
  const fastest = Math.min(...fitting.map((c) => c.cycles));
  const pool = fitting.length > 0 ? fitting.filter((c) => c.cycles <= fastest * CYCLE_SLACK + device.syncCycles) : all;
  const best = pool.reduce((x, y) => (y.mem < x.mem || (y.mem === x.mem && (y.cycles < x.cycles || (y.cycles === x.cycles && y.R * y.C < x.R * x.C))) ? y : x));
  const colBounds = columnBounds(prob.inner, Math.max(1, grain), best.C);
  const C = colBounds.length - 1;
  const nOut = prob.outer * prob.numIdx;
  const B0 = Math.max(1, Math.min(nOut, Math.floor(numTiles / C)));
  const rowsPerBlock = Math.max(1, Math.ceil(nOut / B0));
  const B = Math.max(1, Math.ceil(nOut / rowsPerBlock));
  const used = Math.max(best.R, B) * C;
  const bytes = DTYPE_BYTES[prob.dtype];
  // Fewer tiles than the device has: start where the linear rule would put a tensor of the table's size.
  const l = linearLayout(rows * prob.inner, bytes, Math.max(1, grain), device.minBytesPerTile, numTiles, device.tilesPerSharedBus);
  const start = used >= numTiles ? 0 : linearStartTile(rows * prob.inner, Math.max(used, l.tiles), numTiles, device.tilesPerSharedBus);
  return { ...prob, rows, R: best.R, rowsPer: best.rowsPer, colBounds, B, rowsPerBlock, start, numTiles, cycles: best.cycles, bytesPerTile: best.mem };
}
