/**
 * summary.json (../shared/SPEC.md "Run folder") and the profile tables, from
 * a run's result. Everything but `host` is a function of the config alone,
 * so two runs of one config agree byte for byte outside `host`.
 */
import { totalTiles } from '../../sim/device.js';
import { addPhase, emptyTotals, type CycleTotals } from '../../sim/profile.js';
import { normDomain } from '../ir/opid.js';
import type { RunResult } from '../session.js';
import { DTYPE_BYTES, innerSteps, type ProgramStep } from '../../sim/program.js';
import { intervalElements } from '../../sim/intervals.js';
import { programView, type ProgramView } from './program-view.js';
import { ipuRows, type IpuRow } from './ipus.js';
import { isSharded } from '../shard/place.js';
import { collectiveRows, type CollectiveRow } from './collectives.js';
import { pipelineRunSummary, type PipelineSummary } from './pipeline.js';
import { linkSummary, type LinkSummary } from './links.js';
import type { OpRow, ProfileTables, StepRow, TileRow } from './types.js';

/** JSON has no NaN or Infinity (JSON.stringify writes null): a non-finite number is written as this string. */
export type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';

export function jsonNumber(x: number): JsonNumber {
  return Number.isFinite(x) ? x : Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
}

export interface Summary {
  schemaVersion: 1;
  name: string;
  device: Record<string, unknown>;
  cycles: CycleTotals;
  seconds: number;
  steps: { step: number; loss?: JsonNumber; cycles: number }[];
  ops: { name: string; type: string; domain: string; cycles: { compute: number; exchange: number; sync: number; streamingMemory?: number }; flops: number }[];
  memory: { tileCapacity: number; maxTileBytes: number; meanTileBytes: number; maxTile: number; totalBytes: number; tilesUsed: number };
  outputs: Record<string, { shape: number[]; dtype: string; file: string }>;
  /** On a multi-IPU device: each IPU's ops (when sharded), busy cycles and memory (report/ipus.ts). */
  ipus?: IpuRow[];
  /** Replicated (config replicas): the replicas, each on device.ipus IPUs (the device is one replica's), of a system of systemIpus. */
  replication?: { replicas: number; systemIpus: number };
  /** Replicated training: each all-reduce, with PopLibs' collectives figures (report/collectives.ts). */
  collectives?: CollectiveRow[];
  /** Pipelined (model.pipelining): the stages and the bubble fraction (report/pipeline.ts). */
  pipeline?: PipelineSummary;
  /** On a multi-IPU system: the bytes and utilisation of each IPU-Link and GW-Link group that carried any (report/links.ts). */
  links?: LinkSummary;
  /** resumedFrom: the steps a checkpoint had done (sim run --resume); cycles and ops then cover the steps run after it. */
  host: { wallSeconds: number; workers: number; resumedFrom?: number };
}

/** The op labels of the call steps of `steps`, in order. */
function callLabels(steps: readonly ProgramStep[]): string[] {
  const out: string[] = [];
  const walk = (list: readonly ProgramStep[]): void => {
    for (const s of list) {
      if (s.kind === 'call') out.push(s.op);
      else for (const inner of innerSteps(s)) walk(inner);
    }
  };
  walk(steps);
  return out;
}

export function profileTables(r: RunResult, view: ProgramView = programView(r.compiled.program, r.phases)): ProfileTables {
  const stepTotals = new Map<number, CycleTotals>();
  const opTotals = new Map<string, OpRow>();
  const ops = r.compiled.schedule;
  // A resumed run's phases cover only the steps run after its checkpoint: so do the op and step tables.
  const steps = r.steps.length - (r.resumedFrom ?? 0);
  const batches = steps * (r.compiled.config.train?.batchesPerStep ?? 1);
  // With accumulation, all but the outer fragment's ops run once per micro-batch; and every replica runs each op.
  const micro = r.compiled.config.train?.accumulationFactor ?? 1;
  const replicas = r.compiled.program.replication?.replicas ?? 1;
  for (const op of ops) {
    const runs = batches * (op.settings.executionContext === 'outerFragment' ? 1 : micro) * replicas;
    opTotals.set(op.name, { name: op.name, type: op.opid.type, domain: normDomain(op.opid.domain), compute: 0, exchange: 0, sync: 0, flops: op.flops() * runs, memoryBytes: 0 });
  }
  // An outlined function's calls (PopART's CallOps): a row each for its copies in and out; the function's own phases are its ops'.
  for (const label of callLabels(r.compiled.program.programs.batch ?? [])) {
    opTotals.set(label, { name: label, type: 'Call', domain: 'ai.graphcore', compute: 0, exchange: 0, sync: 0, flops: 0, memoryBytes: 0 });
  }
  for (const t of r.compiled.program.tensors) {
    const row = t.op === undefined ? undefined : opTotals.get(t.op);
    if (row) row.memoryBytes += intervalElements(t.intervals) * DTYPE_BYTES[t.dtype];
  }
  const tileCompute = new Map<number, number>();
  const tileExchange = new Map<number, number>();
  for (const p of r.phases) {
    if (!stepTotals.has(p.step)) stepTotals.set(p.step, emptyTotals());
    addPhase(stepTotals.get(p.step)!, p);
    const row = opTotals.get(p.op);
    // As the other kinds, an op's own cycles count even where a pipeline overlapped them with another IPU's.
    if (row && p.kind === 'streamingMemory') row.streamingMemory = (row.streamingMemory ?? 0) + p.cycles;
    else if (row && p.kind !== 'streamCopy') row[p.kind] += p.cycles;
    if (p.kind === 'compute') for (const [t, c] of p.tiles ?? []) tileCompute.set(t, (tileCompute.get(t) ?? 0) + c);
    if (p.kind === 'exchange') for (const [t, c] of p.tiles ?? []) tileExchange.set(t, (tileExchange.get(t) ?? 0) + c * r.compiled.program.device.exchangeBytesPerCycle);
  }
  const stepRows: StepRow[] = r.steps.slice(r.resumedFrom ?? 0).map((s) => {
    const t = stepTotals.get(s.step)!;
    return {
      step: s.step,
      ...(s.loss !== undefined ? { loss: s.loss } : {}),
      cycles: s.cycles,
      compute: t.compute,
      exchange: t.exchange,
      sync: t.sync,
      streamCopy: t.streamCopy,
      ...(t.streamingMemory !== undefined ? { streamingMemory: t.streamingMemory } : {}),
    };
  });
  const memory = r.compiled.program.memory;
  const tiles: TileRow[] = r.compiled.program.tileBytes.map((bytes, tile) => ({
    tile,
    bytes,
    computeCycles: tileCompute.get(tile) ?? 0,
    exchangeBytes: tileExchange.get(tile) ?? 0,
    alwaysLive: memory?.[tile]?.alwaysLive ?? 0,
    temporaries: memory?.[tile]?.temporaries ?? 0,
    code: memory?.[tile]?.code ?? 0,
    vertexState: memory?.[tile]?.vertexState ?? 0,
    sentBytes: view.sent[tile] ?? 0,
    receivedBytes: view.received[tile] ?? 0,
  }));
  return { steps: stepRows, ops: [...opTotals.values()], tiles };
}

export function buildSummary(r: RunResult, tables: ProfileTables, outputs: Summary['outputs'], workers: number): Summary {
  const d = r.compiled.program.device;
  const cycles = emptyTotals();
  for (const p of r.phases) addPhase(cycles, p);
  const bytes = r.compiled.program.tileBytes;
  let maxTile = 0;
  for (let t = 1; t < bytes.length; t++) if (bytes[t] > bytes[maxTile]) maxTile = t;
  const totalBytes = bytes.reduce((a, b) => a + b, 0);
  return {
    schemaVersion: 1,
    name: r.compiled.config.name,
    device: { ...d, tiles: totalTiles(d) },
    cycles,
    seconds: cycles.total / d.clockHz,
    steps: r.steps.map((s) => ({ step: s.step, ...(s.loss !== undefined ? { loss: jsonNumber(s.loss) } : {}), cycles: s.cycles })),
    ops: tables.ops.map((o) => ({ name: o.name, type: o.type, domain: o.domain, cycles: { compute: o.compute, exchange: o.exchange, sync: o.sync, ...(o.streamingMemory !== undefined ? { streamingMemory: o.streamingMemory } : {}) }, flops: o.flops })),
    memory: {
      tileCapacity: d.bytesPerTile,
      maxTileBytes: bytes[maxTile] ?? 0,
      meanTileBytes: totalBytes / Math.max(1, bytes.length),
      maxTile,
      totalBytes,
      tilesUsed: bytes.filter((b) => b > 0).length,
    },
    outputs,
    ...(d.ipus > 1 ? { ipus: ipuRows(r.compiled.program, r.compiled.schedule, isSharded(r.compiled.config), r.phases) } : {}),
    ...(r.compiled.program.replication
      ? {
          replication: { replicas: r.compiled.program.replication.replicas, systemIpus: r.compiled.program.replication.systemIpus },
          collectives: collectiveRows(r.compiled.program, r.phases),
        }
      : {}),
    ...(findPipelineSummary(r) ?? {}),
    ...linksOf(r, cycles.total),
    host: { wallSeconds: r.wallSeconds, workers, ...(r.resumedFrom !== undefined ? { resumedFrom: r.resumedFrom } : {}) },
  };
}

function findPipelineSummary(r: RunResult): { pipeline: PipelineSummary } | undefined {
  const pipeline = pipelineRunSummary(r.compiled.program, r.phases);
  return pipeline ? { pipeline } : undefined;
}

function linksOf(r: RunResult, total: number): { links?: LinkSummary } {
  const p = r.compiled.program;
  const links = linkSummary(p.device, p.replication?.systemIpus ?? p.device.ipus, r.phases, r.steps.map((s) => s.step), total);
  return links ? { links } : {};
}
