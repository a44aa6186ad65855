/**
 * Outlining a sharded, pipelined model (src/lower/lower.ts, functions.ts):
 * the repeated layers on each IPU are lowered once there (or cloned from
 * another IPU's function, their tiles shifted) and called; no call spans two
 * IPUs or pipeline stages. The numbers are bit-identical to the same run
 * without outlining (a call copies values, it computes nothing; a clone has
 * the vertices lowering on its IPU would make, on the same local tiles), and
 * each op's compute cycles are attributed to it as without outlining.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compile, TrainingSession, type Compiled } from '../../src/session.js';
import type { CallStep, PipelineStep, ProgramStep } from '../../sim/program.js';
import { innerSteps } from '../../sim/program.js';
import { vertexList } from '../../sim/vertex-table.js';

const H = 16;
const LAYERS = 6;
/** Two layers per IPU, on 3 IPUs. */
const ipuOf = (l: number) => Math.floor(l / 2);

function config(opts: { outlining: boolean; recompute?: boolean }) {
  const init: string[] = [];
  const nodes: string[] = [];
  for (let l = 0; l < LAYERS; l++) {
    init.push(`      w${l}: {shape: [${H}, ${H}], init: {normal: {std: 0.3, seed: ${l + 1}}}}`);
    init.push(`      b${l}: {shape: [${H}], init: {normal: {std: 0.1, seed: ${l + 11}}}}`);
    const x = l === 0 ? 'x' : `h${l}`;
    const at = `ipu: ${ipuOf(l)}`;
    nodes.push(`      - {op: MatMul, inputs: [${x}, w${l}], outputs: [m${l}], ${at}}`);
    nodes.push(`      - {op: Add, inputs: [m${l}, b${l}], outputs: [a${l}], ${at}}`);
    nodes.push(`      - {op: Tanh, inputs: [a${l}], outputs: [t${l}], ${at}}`);
    nodes.push(`      - {op: Add, inputs: [t${l}, ${x}], outputs: [h${l + 1}], ${at}}`);
  }
  return loadConfigText(
    `name: outline-pipe
device: {preset: m2000, ipus: 3, tiles: 8}
model:
  pipelining: true
  graph:
    inputs: {x: {shape: [4, ${H}]}}
    initializers:
${init.join('\n')}
    nodes:
${nodes.join('\n')}
    outputs: [h${LAYERS}]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1, seed: 9}}}
compile: {outlining: ${opts.outlining}, outlineMinOps: 2}
train:
  loss: {type: l1, input: h${LAYERS}}
  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
  accumulationFactor: 6
${opts.recompute ? '  recompute: pipeline\n' : ''}anchors: {loss: all}
`,
    'outline-pipe.yaml',
  );
}

async function train(c: Compiled, steps: number) {
  const s = await TrainingSession.create(c, { workers: 1, numerics: true });
  const losses: number[] = [];
  try {
    for (let i = 0; i < steps; i++) losses.push((await s.runStep()).loss!);
    return { weights: new Map([...s.readWeights()].map(([k, v]) => [k, Array.from(v as Float32Array)])), losses, phases: s.phases };
  } finally {
    await s.close();
  }
}

function pipelineOf(c: Compiled): PipelineStep {
  const p = c.program.programs.batch.find((s) => s.kind === 'pipeline');
  if (!p || p.kind !== 'pipeline') throw new Error('no pipeline step');
  return p;
}

function callsIn(steps: ProgramStep[]): CallStep[] {
  const out: CallStep[] = [];
  for (const s of steps) {
    if (s.kind === 'call') out.push(s);
    else out.push(...innerSteps(s).flatMap(callsIn));
  }
  return out;
}

const outliningNotes = (c: Compiled) => (c.program.notes ?? []).filter((n) => n.kind === 'outlining').map((n) => n.text);

describe('outlining a sharded, pipelined model', () => {
  it('lowers layers once per IPU, clones them to another IPU, and keeps every call within its stage and IPU', async () => {
    const c = await compile(config({ outlining: true }));
    const notes = outliningNotes(c);
    expect(notes.some((t) => t.includes('skipped'))).toBe(false);
    expect(notes.some((t) => /lowered once as fn\d+ on IPU \d/.test(t))).toBe(true);
    // IPU 2's forward layers read their input as IPU 1's do (an IpuCopy's destination): a clone, not lowered again.
    expect(notes.some((t) => /a clone of fn\d+ moved from IPU 1 to IPU 2/.test(t))).toBe(true);
    // The updates of weights shaped and laid out alike are lowered once and cloned.
    expect((c.program.notes ?? []).some((n) => n.kind === 'clones' && /^\d+ ops outside the functions are clones of a like op/.test(n.text))).toBe(true);
    const per = c.program.device.tilesPerIpu;
    const ipuOfOp = new Map(c.schedule.map((op) => [op.name, op.settings.ipu ?? 0]));
    let calls = 0;
    for (const stage of pipelineOf(c).stages) {
      for (const call of callsIn(stage.steps)) {
        calls++;
        // Every op the call runs is on the stage's IPU, and so is every vertex of the function.
        for (const name of Object.values(call.ops)) expect(ipuOfOp.get(name), name).toBe(stage.ipu);
        for (const s of call.body) {
          if (s.kind !== 'execute') continue;
          for (const v of vertexList(c.program.computeSets[s.computeSet].vertices)) expect(Math.floor(v.tile / per)).toBe(stage.ipu);
        }
      }
    }
    expect(calls).toBeGreaterThanOrEqual(6);
  });

  for (const recompute of [false, true]) {
    it(`gives bit for bit the losses and weights of the run without outlining${recompute ? ' (recompute: pipeline)' : ''}; each op's compute cycles as without`, async () => {
      const plainC = await compile(config({ outlining: false, recompute }));
      const outlinedC = await compile(config({ outlining: true, recompute }));
      expect(outlinedC.program.computeSets.length).toBeLessThan(plainC.program.computeSets.length);
      const plain = await train(plainC, 2);
      const outlined = await train(outlinedC, 2);
      expect(outlined.losses).toEqual(plain.losses);
      expect([...outlined.weights.keys()].sort()).toEqual([...plain.weights.keys()].sort());
      for (const [name, w] of plain.weights) expect(outlined.weights.get(name), name).toEqual(w);
      // The same vertices on the same tiles, attributed to each call's own ops.
      const perOp = (phases: typeof plain.phases) => {
        const m = new Map<string, number>();
        for (const p of phases) if (p.kind === 'compute') m.set(p.op, (m.get(p.op) ?? 0) + p.cycles);
        return m;
      };
      expect(perOp(outlined.phases)).toEqual(perOp(plain.phases));
    });
  }
});
