/**
 * Per-tile rows of each program step packed into columns for the page: tiles
 * as deltas (mostly 1) and only the columns a step's kind uses. A full mk2
 * MLP has ~40k (step, tile) rows: ~4 MB as JSON objects, under 1 MB packed.
 */
import type { ProgramTileRow } from '../program-view.js';

export interface PackedTiles {
  /** Tile deltas: tile[i] = tile[i-1] + d[i], tile[-1] = 0. */
  d: number[];
  /** cycles, vertices, regions (compute) / sent, received bytes (exchange). */
  c: number[];
  v?: number[];
  r?: number[];
  s?: number[];
  x?: number[];
}

export function packProgramTiles(rows: readonly ProgramTileRow[]): Record<number, PackedTiles> {
  const out: Record<number, PackedTiles> = {};
  const last = new Map<number, number>();
  for (const row of rows) {
    let p = out[row.programStep];
    if (!p) out[row.programStep] = p = { d: [], c: [] };
    p.d.push(row.tile - (last.get(row.programStep) ?? 0));
    last.set(row.programStep, row.tile);
    p.c.push(row.cycles);
    if (row.vertices || p.v) (p.v ??= new Array<number>(p.d.length - 1).fill(0)).push(row.vertices);
    if (row.regions || p.r) (p.r ??= new Array<number>(p.d.length - 1).fill(0)).push(row.regions);
    if (row.sentBytes || p.s) (p.s ??= new Array<number>(p.d.length - 1).fill(0)).push(row.sentBytes);
    if (row.receivedBytes || p.x) (p.x ??= new Array<number>(p.d.length - 1).fill(0)).push(row.receivedBytes);
  }
  // A column that started late was filled with zeros up to its start; pad the rest.
  for (const p of Object.values(out)) for (const k of ['v', 'r', 's', 'x'] as const) if (p[k]) while (p[k].length < p.d.length) p[k].push(0);
  return out;
}
