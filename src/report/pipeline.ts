/**
 * The pipeline of a pipelined program (model.pipelining; sim/program.ts
 * PipelineStep) for summary.json and `sim compile`: its stages, and its
 * bubble fraction, PopART's measure of the fill and flush: of the
 * (G + P - 1) x P stage-cycles of a weight update, each stage is busy in G,
 * so (P - 1) / (G + P - 1) of them are idle.
 */
import type { Phase } from '../../sim/profile.js';
import type { DeviceProgram, PipelineStep } from '../../sim/program.js';

export interface PipelineSummary {
  /** Pipeline stages (P): 2F - 1 in training. */
  stages: number;
  /** Micro-batches per weight update (G, train.accumulationFactor). */
  microBatches: number;
  /** Pipeline cycles per weight update: G + P - 1 (fill, main, flush). */
  cycles: number;
  /** Idle stage-cycles over all stage-cycles: (P - 1) / (G + P - 1). */
  bubbleFraction: number;
  stageList: PipelineStageRow[];
}

export interface PipelineStageRow {
  stage: number;
  ipu: number;
  pass: string;
  ops: number;
  stashDepth: number;
  stashBytes: number;
  /**
   * In a run's summary: the stage's own cycles over the run (its phases in
   * every pipeline cycle, overlapped or not), by kind. The busiest stage sets
   * each cycle's length: balancing the stages' busy cycles shortens the step.
   */
  busy?: { compute: number; exchange: number; sync: number; total: number };
}

export function findPipeline(p: DeviceProgram): PipelineStep | undefined {
  for (const s of p.programs.batch ?? []) if (s.kind === 'pipeline') return s;
  return undefined;
}

export function pipelineSummary(p: DeviceProgram): PipelineSummary | undefined {
  const pipe = findPipeline(p);
  if (!pipe) return undefined;
  const P = pipe.stages.length;
  const G = pipe.microBatches;
  return {
    stages: P,
    microBatches: G,
    cycles: G + P - 1,
    bubbleFraction: (P - 1) / (G + P - 1),
    stageList: pipe.stages.map((s) => ({ stage: s.stage, ipu: s.ipu, pass: s.pass, ops: s.ops, stashDepth: s.stashDepth, stashBytes: s.stashBytes })),
  };
}

/** The summary with each stage's busy cycles from a run's phases (Phase.stage). */
export function pipelineRunSummary(p: DeviceProgram, phases: readonly Phase[]): PipelineSummary | undefined {
  const s = pipelineSummary(p);
  if (!s) return undefined;
  const busy = s.stageList.map(() => ({ compute: 0, exchange: 0, sync: 0, total: 0 }));
  for (const ph of phases) {
    if (ph.stage === undefined || !busy[ph.stage]) continue;
    const b = busy[ph.stage];
    if (ph.kind === 'compute' || ph.kind === 'exchange' || ph.kind === 'sync') b[ph.kind] += ph.cycles;
    b.total += ph.cycles;
  }
  return { ...s, stageList: s.stageList.map((row, i) => ({ ...row, busy: busy[i] })) };
}

/** `sim compile`'s lines for a pipelined program. */
export function pipelineReport(p: DeviceProgram): string[] {
  const s = pipelineSummary(p);
  if (!s) return [];
  const lines = [
    `pipeline: ${s.stages} stages, ${s.microBatches} micro-batches, ${s.cycles} pipeline cycles per weight update, bubble ${(s.bubbleFraction * 100).toFixed(1)}%`,
    `  stage  IPU  pass              ${'ops'.padStart(5)} ${'stash'.padStart(6)} ${'stash bytes'.padStart(12)}`,
  ];
  for (const st of s.stageList) {
    lines.push(`  ${String(st.stage).padEnd(6)} ${String(st.ipu).padEnd(4)} ${st.pass.padEnd(17)} ${String(st.ops).padStart(5)} ${String(st.stashDepth).padStart(6)} ${`${st.stashBytes} B`.padStart(12)}`);
  }
  return lines;
}
