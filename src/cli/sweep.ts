/**
 * `sim sweep`: run a grid of variations of one config, one table row per
 * point. Each --set key=v1,v2 names a dotted key of the config (e.g.
 * train.optimizer.lr=0.01,0.1 or device.tiles=4,16) and its values; the grid
 * is their product.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, parseDocument, type Document } from 'yaml';
import { OPTIMIZER_KEYS } from '../config/schema.js';
import { loadConfigText } from '../config/load.js';
import { UserError } from '../errors.js';
import type { Summary } from '../report/summary.js';
import type { RunConfig } from '../config/types.js';
import { toCsv, type CsvValue } from '../report/csv.js';
import { renderSweepReport } from '../report/sweep-html.js';

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

/** What a sweep keeps of a point's summary.json: the numbers its table, CSV, JSON and chart show. */
export type PointSummary = Pick<Summary, 'cycles' | 'seconds' | 'steps' | 'memory'>;

export function pointSummary(s: Summary): PointSummary {
  return { cycles: s.cycles, seconds: s.seconds, steps: s.steps, memory: s.memory };
}

export interface SweepRow {
  /** The point's id: a hash of its config text, the files it runs and the options (see planSweep). */
  id: string;
  point: Record<string, unknown>;
  /** Absent when the point failed to run (a RunError: out of tile memory, say). */
  summary?: PointSummary;
  /** The first line of the error that stopped this point: a sweep over chip sizes expects some not to fit. */
  error?: string;
}

/** One point of a sweep, ready to run here or on a worker (see sweep-point.ts). */
export interface PlannedPoint {
  index: number;
  id: string;
  point: Record<string, unknown>;
  /** The config with the point's values set, as YAML text. */
  text: string;
}

export interface SweepPlan {
  name: string;
  /** The config file, absolute. */
  configFile: string;
  /** The sweep's folder: every file a point names (the config, custom-op modules, data) lies below it. */
  root: string;
  /** Custom-op modules the points load, relative to root, with the SHA-256 of their text. */
  modules: { path: string; sha256: string }[];
  points: PlannedPoint[];
  numerics: boolean;
  workers: number;
}

export function gridPoints(axes: SweepAxis[]): Record<string, unknown>[] {
  return axes.reduce<Record<string, unknown>[]>((acc, axis) => acc.flatMap((p) => axis.values.map((v) => ({ ...p, [axis.key]: v }))), [{}]);
}

/** `text` with the point's dotted keys set. */
export function applyPoint(text: string, point: Record<string, unknown>): string {
  const doc = parseDocument(text);
  for (const [key, value] of Object.entries(point)) {
    const keys = key.split('.');
    // `device: mk2` is shorthand for {preset: mk2}: setting a device field needs the long form.
    if (keys[0] === 'device' && keys.length > 1 && typeof doc.get('device') === 'string') doc.set('device', doc.createNode({ preset: doc.get('device') }));
    doc.setIn(keys, value);
  }
  for (const key of Object.keys(point)) if (key.endsWith('optimizer.type')) dropForeignOptimizerKeys(doc, key, point);
  return doc.toString();
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** `file` relative to `root`, or undefined when it is not below it. */
export function below(root: string, file: string): string | undefined {
  const rel = path.relative(root, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : undefined;
}

/**
 * Every point's config, checked here before any point runs (a wrong key or
 * value is exit 2 at once, as for sim run), and its id: the first 16 hex
 * digits of the SHA-256 of the point's config text, the SHA-256 of each file
 * it reads (custom-op modules, ONNX model, npy data) and --no-numerics. The same config and grid always give the same ids, whatever
 * the order of the runs or the machines: a resumed sweep skips the points it
 * has. `root` (default: the config's folder) must hold every file the points
 * name when they go through a queue (`requireBelowRoot`).
 */
export function planSweep(file: string, axes: SweepAxis[], opts: { numerics: boolean; workers: number; root?: string; requireBelowRoot?: boolean }): SweepPlan {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    throw new UserError(`cannot read config file ${file}`);
  }
  const root = path.resolve(opts.root ?? path.dirname(abs));
  const configRel = below(root, abs);
  if (opts.requireBelowRoot && !configRel) throw new UserError(`the config ${abs} is not below the sweep's folder ${root} (--root)`);
  const modules = new Map<string, string>();
  const hashes = new Map<string, string>();
  const points = gridPoints(axes).map((point, index): PlannedPoint => {
    const pointText = applyPoint(text, point);
    const config = loadConfigText(pointText, abs, { numerics: opts.numerics });
    if (opts.requireBelowRoot) {
      for (const f of [...config.model.customOps, ...(config.model.onnx ? [config.model.onnx] : []), ...dataFiles(config)]) {
        if (!below(root, f)) throw new UserError(`${abs}: ${f} is outside the sweep's folder ${root}: a worker runs only files below it. Move it there, or name a folder above both with --root`);
      }
    }
    const hash = (f: string) => {
      if (!hashes.has(f)) hashes.set(f, sha256(readFileSync(f)));
      return hashes.get(f)!;
    };
    for (const m of config.model.customOps) modules.set(m, hash(m));
    // Not the folder the sweep runs in: a local sweep and one through a queue (or from another checkout) agree.
    const files = [...config.model.customOps, ...(config.model.onnx ? [config.model.onnx] : []), ...dataFiles(config)].map(hash);
    const id = sha256(JSON.stringify({ text: pointText, files, numerics: opts.numerics })).slice(0, 16);
    return { index, id, point, text: pointText };
  });
  const name = path.basename(file).replace(/\.ya?ml$/i, '');
  return {
    name,
    configFile: abs,
    root,
    modules: [...modules].map(([m, h]) => ({ path: below(root, m) ?? m, sha256: h })),
    points,
    numerics: opts.numerics,
    workers: opts.workers,
  };
}

/** Data files a config reads (npy inputs and initializers). */
export function dataFiles(config: RunConfig): string[] {
  const files: string[] = [];
  for (const d of Object.values(config.inputs)) if (d.kind === 'npy') files.push(d.path);
  return files;
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
  const json = rows.map(({ id, point, summary: s, error }) => (s ? { id, point, cycles: s.cycles, seconds: s.seconds, steps: s.steps, memory: s.memory } : { id, point, error }));
  const csvRows = rows.map((r) => {
    const s = r.summary;
    const last = s?.steps[s.steps.length - 1];
    return { id: r.id, ...r.point, ...s?.cycles, seconds: s?.seconds, finalLoss: last?.loss, peakTileBytes: s?.memory.maxTileBytes, error: r.error } as Record<string, CsvValue>;
  });
  const columns = ['id', ...keys, 'total', 'compute', 'exchange', 'sync', 'streamCopy', 'seconds', 'finalLoss', 'peakTileBytes', 'error'];
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
