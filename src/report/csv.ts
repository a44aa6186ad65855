/**
 * CSV per RFC 4180: a field holding a comma, a double quote, CR or LF is
 * quoted, with quotes doubled. Lines end in '\n' (RFC 4180 says CRLF; every
 * CSV reader accepts both, and '\n' diffs cleanly). null / undefined are empty.
 */
import type { ProfileTables } from './types.js';

export type CsvValue = string | number | boolean | null | undefined;

export function csvField(v: CsvValue): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Header line then one line per row. `columns` defaults to every key of the
 * rows, in first-seen order; keys not in `columns` are left out.
 */
export function toCsv(rows: readonly Record<string, CsvValue>[], columns?: readonly string[]): string {
  let cols = columns;
  if (!cols) {
    const seen = new Set<string>();
    for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
    cols = [...seen];
  }
  const lines = [cols.map(csvField).join(',')];
  for (const r of rows) lines.push(cols.map((c) => csvField(r[c])).join(','));
  return lines.join('\n') + '\n';
}

export const STEP_COLUMNS = ['step', 'loss', 'cycles', 'compute', 'exchange', 'sync', 'streamCopy'] as const;
export const OP_COLUMNS = ['name', 'type', 'domain', 'compute', 'exchange', 'sync', 'flops', 'memoryBytes'] as const;
export const TILE_COLUMNS = ['tile', 'bytes', 'computeCycles', 'exchangeBytes', 'alwaysLive', 'temporaries', 'code', 'vertexState', 'sentBytes', 'receivedBytes'] as const;

export const PROGRAM_COLUMNS = ['programStep', 'kind', 'name', 'op', 'cycles', 'syncCycles', 'tiles', 'vertices', 'regions', 'maxTileCycles', 'meanTileCycles', 'busiestTile', 'bytes', 'codelets'] as const;
export const PROGRAM_TILE_COLUMNS = ['programStep', 'tile', 'vertices', 'regions', 'cycles', 'sentBytes', 'receivedBytes'] as const;
export const TENSOR_COLUMNS = ['name', 'op', 'category', 'dtype', 'shape', 'bytes', 'tiles', 'maxTile', 'maxTileBytes', 'peakTileBytes', 'liveFrom', 'liveTo'] as const;

/** Interfaces lack an index signature, so spread each row into a plain record. */
export const plainRows = <T extends object>(rows: readonly T[]): Record<string, CsvValue>[] => rows.map((r) => ({ ...r }) as Record<string, CsvValue>);

/** The columns, with `streamingMemory` after `after` when any row has it (a run with remote buffers): other runs' CSVs keep their columns. */
function withStreamingMemory(columns: readonly string[], rows: readonly { streamingMemory?: number }[], after: string): readonly string[] {
  if (!rows.some((r) => r.streamingMemory !== undefined)) return columns;
  const at = columns.indexOf(after) + 1;
  return [...columns.slice(0, at), 'streamingMemory', ...columns.slice(at)];
}

/** 'profile/steps.csv', 'profile/ops.csv', 'profile/tiles.csv'. */
export function profileCsvs(input: ProfileTables): Map<string, string> {
  const plain = plainRows;
  return new Map([
    ['profile/steps.csv', toCsv(plain(input.steps), withStreamingMemory(STEP_COLUMNS, input.steps, 'streamCopy'))],
    ['profile/ops.csv', toCsv(plain(input.ops), withStreamingMemory(OP_COLUMNS, input.ops, 'sync'))],
    ['profile/tiles.csv', toCsv(plain(input.tiles), TILE_COLUMNS)],
  ]);
}
