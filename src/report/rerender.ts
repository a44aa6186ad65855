/** `sim report <run-dir>`: rebuild report.html from what a run folder holds (summary.json and profile/*.csv). */
import { existsSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { UserError } from '../errors.js';
import { renderReport } from './html.js';
import type { LivenessRow } from './liveness.js';
import type { ProgramRow, ProgramTileRow } from './program-view.js';
import type { ReportData } from './report-data.js';
import type { Summary } from './summary.js';
import type { TensorRow } from './tensors.js';
import type { OpRow, StepRow, TileRow } from './types.js';

/** Text columns of the profile CSVs; every other column is a number. */
const TEXT_COLUMNS = new Set(['name', 'type', 'domain', 'kind', 'op', 'codelets', 'category', 'dtype', 'shape']);

function readCsv<T>(dir: string, name: string, optional = false): T[] {
  const file = path.join(dir, name);
  if (!existsSync(file)) {
    if (optional) return []; // a run folder from an older tilesim: the views that need it say so
    throw new UserError(`${dir} is not a complete run folder: ${name} is missing`);
  }
  return parse(readFileSync(file, 'utf8'), {
    columns: true,
    cast: (v, ctx) => (ctx.header || TEXT_COLUMNS.has(String(ctx.column)) || v === '' ? v : Number(v)),
  }) as T[];
}

/** Everything report.html is drawn from, read back from a run folder. */
export function readRunFolder(dir: string): ReportData {
  const summaryFile = path.join(dir, 'summary.json');
  if (!existsSync(summaryFile)) throw new UserError(`${dir} is not a run folder: no summary.json (run \`sim run <config> --out ${dir}\` first)`);
  let summary: Summary;
  try {
    summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as Summary;
  } catch (e) {
    throw new UserError(`${summaryFile}: not valid JSON (${(e as Error).message})`);
  }
  if (summary.schemaVersion !== 1) throw new UserError(`${summaryFile}: schemaVersion ${String(summary.schemaVersion)} is not one this tilesim reads (1)`);
  const steps = readCsv<StepRow>(dir, 'profile/steps.csv');
  const tiles = readCsv<TileRow>(dir, 'profile/tiles.csv');
  // Run folders before the column's rename call it `step`.
  const liveness = readCsv<LivenessRow & { programStep?: number }>(dir, 'profile/liveness.csv').map((r) => ({ step: r.programStep ?? r.step, name: r.name, bytes: r.bytes }));
  const ops = readCsv<OpRow>(dir, 'profile/ops.csv');
  const program = readCsv<ProgramRow>(dir, 'profile/program.csv', true);
  const programTiles = readCsv<ProgramTileRow>(dir, 'profile/program-tiles.csv', true);
  const tensors = readCsv<TensorRow>(dir, 'profile/tensors.csv', true);
  return { summary, tables: { steps, ops, tiles }, liveness, program, programTiles, tensors };
}

export async function rerenderReport(dir: string): Promise<string> {
  const html = renderReport(readRunFolder(dir));
  // Replace report.html alone, keeping the rest of the folder.
  const target = path.join(dir, 'report.html');
  const partial = `${target}.partial-${process.pid}`;
  await writeFile(partial, html);
  await rename(partial, target);
  return target;
}
