/**
 * `sim sweep`: run a grid of variations of one config, one table row per
 * point. Each --set key=v1,v2 names a dotted key of the config (e.g.
 * train.optimizer.lr=0.01,0.1 or device.tiles=4,16) and its values; the grid
 * is their product.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { OPTIMIZER_KEYS } from '../config/schema.js';
import { loadConfigText } from '../config/load.js';
import { RunError, UserError } from '../errors.js';
import { buildSummary, profileTables, type Summary } from '../report/summary.js';
import { toCsv, type CsvValue } from '../report/csv.js';
import { renderSweepReport } from '../report/sweep-html.js';
import { compile, run } from '../session.js';

export interface SweepAxis {
  key: string;
  values: unknown[];
}

export function parseSet(s: string): SweepAxis {
  const at = s.indexOf('=');
  if (at < 1 || at === s.length - 1) throw new UserError(`--set: '${s}' should be key=v1,v2,... (e.g. train.optimizer.lr=0.01,0.1)`);
  const doc = (v: string) => parseDocument(v).toJS() as unknown;
  return { key: s.slice(0, at), values: s.slice(at + 1).split(',').map((v) => doc(v.trim())) };
}

export interface SweepRow {
  point: Record<string, unknown>;
  /** Absent when the point failed to run (a RunError: out of tile memory, say). */
  summary?: Summary;
  /** The first line of the RunError that stopped this point: a sweep over chip sizes expects some not to fit. */
  error?: string;
}

export async function sweep(file: string, axes: SweepAxis[], opts: { numerics: boolean; workers: number; onPoint?: (row: SweepRow) => void }): Promise<SweepRow[]> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    throw new UserError(`cannot read config file ${file}`);
  }
  const points: Record<string, unknown>[] = axes.reduce<Record<string, unknown>[]>(
    (acc, axis) => acc.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.key]: v }))),
    [{}],
  );
  const rows: SweepRow[] = [];
  for (const point of points) {
    const doc = parseDocument(text);
    for (const [key, value] of Object.entries(point)) {
      const keys = key.split('.');
      // `device: mk2` is shorthand for {preset: mk2}: setting a device field needs the long form.
      if (keys[0] === 'device' && keys.length > 1 && typeof doc.get('device') === 'string') doc.set('device', doc.createNode({ preset: doc.get('device') }));
      doc.setIn(keys, value);
    }
    for (const key of Object.keys(point)) if (key.endsWith('optimizer.type')) dropForeignOptimizerKeys(doc, key, point);
    const config = loadConfigText(doc.toString(), abs, { numerics: opts.numerics });
    let row: SweepRow;
    try {
      const compiled = await compile(config);
      const result = await run(compiled, { workers: opts.workers, numerics: config.run.numerics, steps: config.steps ?? 1 });
      row = { point, summary: buildSummary(result, profileTables(result), {}, opts.workers) };
    } catch (e) {
      if (!(e instanceof RunError)) throw e;
      row = { point, error: e.message.split('\n')[0] };
    }
    rows.push(row);
    opts.onPoint?.(row);
  }
  return rows;
}

/**
 * Switching `train.optimizer.type` (sgd to adam, say) leaves the old type's
 * keys behind (momentum), which the new type rejects: drop the keys it does
 * not take, unless the point sets them itself, so the new type's defaults
 * apply. Shared keys (lr, weightDecay) are kept.
 */
function dropForeignOptimizerKeys(doc: Document, typeKey: string, point: Record<string, unknown>): void {
  const path = typeKey.split('.').slice(0, -1);
  const known = OPTIMIZER_KEYS[String(point[typeKey])];
  const opt: unknown = doc.getIn(path, true);
  if (!known || !isMap(opt)) return;
  for (const pair of [...opt.items]) {
    const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (!known.includes(k) && !(`${[...path, k].join('.')}` in point)) opt.delete(k);
  }
}

/** A point as `key=value` pairs, for labels and messages. */
export function pointLabel(point: Record<string, unknown>): string {
  return Object.entries(point).map(([k, v]) => `${k}=${String(v)}`).join(' ');
}

/** The files of `sim sweep --out DIR`: the rows as JSON and CSV, and their chart. */
export function sweepFiles(name: string, rows: SweepRow[]): Map<string, string> {
  const keys = rows.length ? Object.keys(rows[0].point) : [];
  const json = rows.map(({ point, summary: s, error }) => (s ? { point, cycles: s.cycles, seconds: s.seconds, steps: s.steps, memory: s.memory } : { point, error }));
  const csvRows = rows.map((r) => {
    const s = r.summary;
    const last = s?.steps[s.steps.length - 1];
    return { ...r.point, ...s?.cycles, seconds: s?.seconds, finalLoss: last?.loss, peakTileBytes: s?.memory.maxTileBytes, error: r.error } as Record<string, CsvValue>;
  });
  const columns = [...keys, 'total', 'compute', 'exchange', 'sync', 'streamCopy', 'seconds', 'finalLoss', 'peakTileBytes', 'error'];
  const chart = rows.map((r) => ({
    label: pointLabel(r.point),
    cycles: r.summary?.cycles,
    peakTileBytes: r.summary?.memory.maxTileBytes,
    tileCapacity: r.summary?.memory.tileCapacity,
    error: r.error,
  }));
  return new Map([
    ['sweep.json', JSON.stringify(json, null, 2) + '\n'],
    ['sweep.csv', toCsv(csvRows, columns)],
    ['sweep.html', renderSweepReport(name, chart)],
  ]);
}

export function formatSweep(rows: SweepRow[]): string {
  if (rows.length === 0) return '';
  const keys = Object.keys(rows[0].point);
  const header = [...keys, 'total cycles', 'simulated', 'compute %', 'exchange %', 'final loss', 'peak tile B'];
  const body = rows.map((r) => {
    const s = r.summary;
    if (!s) return [...keys.map((k) => String(r.point[k])), 'failed', '-', '-', '-', '-', '-'];
    const c = s.cycles;
    const last = s.steps[s.steps.length - 1];
    return [
      ...keys.map((k) => String(r.point[k])),
      c.total.toLocaleString('en-US'),
      `${(s.seconds * 1e6).toFixed(2)} us`,
      ((100 * c.compute) / c.total).toFixed(1),
      ((100 * c.exchange) / c.total).toFixed(1),
      last?.loss === undefined ? '-' : typeof last.loss === 'number' ? last.loss.toPrecision(6) : last.loss,
      s.memory.maxTileBytes.toLocaleString('en-US'),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  const failed = rows.filter((r) => r.error).map((r) => `${pointLabel(r.point)}: ${r.error}`);
  return [line(header), ...body.map(line), ...(failed.length ? ['failed points:', ...failed.map((f) => `  ${f}`)] : [])].join('\n');
}
