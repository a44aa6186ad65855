/**
 * Device tensors for the report's memory views: bytes, where they sit (how
 * many tiles, the tile holding most of them) and when they are live (the
 * batch program's leaf steps, as src/lower/liveness.ts decided; -1 = always).
 */
import { DTYPE_BYTES, type DeviceProgram } from '../../sim/program.js';
import { elementsPerTile } from '../../sim/intervals.js';

export interface TensorRow {
  name: string;
  op: string;
  category: string;
  dtype: string;
  /** e.g. "16x784". */
  shape: string;
  bytes: number;
  tiles: number;
  maxTile: number;
  maxTileBytes: number;
  /** Bytes on the tile with the most memory in use (summary.memory.maxTile). */
  peakTileBytes: number;
  /** First and last program step it is live at; both -1 when always live. */
  liveFrom: number;
  liveTo: number;
}

export function tensorRows(p: DeviceProgram, peakTile: number): TensorRow[] {
  const rows: TensorRow[] = [];
  for (const t of p.tensors) {
    const size = DTYPE_BYTES[t.dtype];
    const perTile = elementsPerTile(t.intervals);
    if (!perTile.size) continue; // dropped: no memory
    let maxTile = -1;
    let maxTileBytes = 0;
    let bytes = 0;
    for (const [tile, elems] of perTile) {
      const b = elems * size;
      bytes += b;
      if (b > maxTileBytes || (b === maxTileBytes && tile < maxTile)) [maxTile, maxTileBytes] = [tile, b];
    }
    rows.push({
      name: t.name,
      op: t.op ?? '',
      category: t.category,
      dtype: t.dtype,
      shape: t.shape.join('x'),
      bytes,
      tiles: perTile.size,
      maxTile,
      maxTileBytes,
      peakTileBytes: (perTile.get(peakTile) ?? 0) * size,
      liveFrom: t.live ? t.live.from : -1,
      liveTo: t.live ? t.live.to : -1,
    });
  }
  return rows;
}

export const isLiveAt = (t: TensorRow, step: number) => t.liveFrom < 0 || (t.liveFrom <= step && step <= t.liveTo);

/**
 * The tensors the report shows (a full mk2 program has tens of thousands,
 * mostly exchange buffers): the `top` largest, the `top / 8` largest on the
 * peak tile and the `top / 8` largest live at the liveness peak, in tensor order.
 */
export function selectTensors(rows: TensorRow[], peakStep: number, top = 200): TensorRow[] {
  const keep = new Set<TensorRow>();
  const largest = (list: TensorRow[], n: number, key: (t: TensorRow) => number) => {
    for (const t of [...list].sort((a, b) => key(b) - key(a)).slice(0, n)) if (key(t) > 0) keep.add(t);
  };
  largest(rows, top, (t) => t.bytes);
  largest(rows, Math.ceil(top / 8), (t) => t.peakTileBytes);
  largest(rows.filter((t) => isLiveAt(t, peakStep)), Math.ceil(top / 8), (t) => t.bytes);
  return rows.filter((t) => keep.has(t));
}
