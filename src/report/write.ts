/** Writing a run folder: summary.json, outputs/*.npy, trace.json, profile/*.csv and report.html, all or nothing. */
import { npyChunks } from './npy.js';
import { PROGRAM_COLUMNS, PROGRAM_TILE_COLUMNS, TENSOR_COLUMNS, plainRows, profileCsvs, toCsv } from './csv.js';
import { renderReport } from './html.js';
import { livenessCurve } from './liveness.js';
import { keepProgramTiles, programView } from './program-view.js';
import type { ReportData } from './report-data.js';
import { safeFileName, writeRunFolder, type RunFileContent } from './runfolder.js';
import { buildSummary, profileTables, type Summary } from './summary.js';
import { selectTensors, tensorRows } from './tensors.js';
import { traceJsonChunks } from './trace.js';
import type { RunResult } from '../session.js';
import { exportRunModel } from '../onnx/export.js';
import { CHECKPOINTS } from './checkpoint.js';

export async function writeRun(dir: string, r: RunResult, workers: number): Promise<Summary> {
  const files = new Map<string, RunFileContent>();
  const outputs: Summary['outputs'] = {};
  const taken = new Set<string>();
  for (const [name, a] of r.anchors) {
    const file = `outputs/${safeFileName(name, taken)}.npy`;
    files.set(file, npyChunks(a.data, a.shape, a.dtype));
    outputs[name] = { shape: a.shape, dtype: a.dtype, file };
  }
  const view = programView(r.compiled.program, r.phases);
  const tables = profileTables(r, view);
  const summary = buildSummary(r, tables, outputs, workers);
  files.set('summary.json', JSON.stringify(summary, null, 2) + '\n');
  for (const [name, text] of profileCsvs(tables)) files.set(name, text);
  if (r.compiled.config.train?.saveModel) files.set('model.onnx', exportRunModel(r)); // the trained forward graph
  const liveness = livenessCurve(r.compiled.program);
  let peakStep = 0;
  liveness.forEach((l, i) => (l.bytes > liveness[peakStep].bytes ? (peakStep = i) : 0));
  const tensors = selectTensors(tensorRows(r.compiled.program, summary.memory.maxTile), peakStep);
  // `programStep`: a step of the batch program (a compute set, exchange or copy), not a training step.
  files.set('profile/liveness.csv', toCsv(liveness.map((l) => ({ programStep: l.step, name: l.name, bytes: l.bytes })), ['programStep', 'name', 'bytes']));
  files.set('profile/program.csv', toCsv(plainRows(view.rows), PROGRAM_COLUMNS));
  const programTiles = keepProgramTiles(view.rows, view.tiles);
  files.set('profile/program-tiles.csv', toCsv(plainRows(programTiles), PROGRAM_TILE_COLUMNS));
  files.set('profile/tensors.csv', toCsv(plainRows(tensors), TENSOR_COLUMNS));
  const report = r.compiled.config.report;
  const data: ReportData = { summary, tables, liveness, program: view.rows, programTiles, tensors };
  if (report.html) files.set('report.html', renderReport(data));
  if (report.trace) {
    const d = r.compiled.program.device;
    files.set(
      'trace.json',
      traceJsonChunks(r.phases, {
        clockHz: d.clockHz,
        tilesPerIpu: d.tilesPerIpu,
        ipus: d.ipus,
        traceTiles: report.traceTiles,
        deviceName: d.name,
        pipelined: r.compiled.config.model.pipelining === true,
        systemIpus: r.compiled.program.replication?.systemIpus,
      }),
    );
  }
  // Checkpoints written while the run went on stay in the folder (sim run --resume reads them).
  await writeRunFolder(dir, files, [CHECKPOINTS]);
  return summary;
}
