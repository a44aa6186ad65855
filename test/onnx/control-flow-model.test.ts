/**
 * A realistic model with control flow, written as ONNX here and run end to
 * end as `sim run` runs a config (loadConfig, compile, run), against
 * onnxruntime-node on the same file and inputs:
 *
 * - a recurrent encoder as a Loop over the T frames of a feature sequence
 *   (the frame picked by Gather at the iteration number, h' = tanh(x W + h U
 *   + b)), the hidden state carried, every state a scan output;
 * - inside the body, a nested If on the iteration number (frames after the
 *   first two are scaled by a gain, the others pass through): a runtime
 *   predicate inside a repeat;
 * - after the loop, a runtime If on the input's energy choosing between a
 *   softmax classifier head and a sigmoid detector head, as keyword-spotting
 *   and voice-activity models do; both heads read outer weights.
 *
 * And it trains: gradients through the Loop (LoopGrad), the If nested in its
 * body and the head If (IfGrad) against finite differences, and a short sgd
 * run whose loss goes down.
 *
 * Tolerance: 1e-5 relative + 1e-6 absolute (float32 matmuls of 8 to 16
 * terms, tanh and exp, five recurrent steps: a few ulps of drift).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { compile, run } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { F, H, model, rounded, T } from './control-flow-models.js';
import { writeTemp } from './helpers.js';

const nested = (data: number[], rows: number) => JSON.stringify(Array.from({ length: rows }, (_, r) => data.slice((r * data.length) / rows, ((r + 1) * data.length) / rows)));

function configFile(feats: number[], h0: number[], extra = ''): string {
  const dir = writeTemp({});
  mkdirSync(path.join(dir, 'models'), { recursive: true });
  writeFileSync(path.join(dir, 'models/kws.onnx'), model());
  const yaml = `name: kws-control-flow\ndevice: tiny\nmodel:\n  onnx: models/kws.onnx\ninputs:\n  feats: {value: ${nested(feats, T)}}\n  h0: {value: ${nested(h0, 1)}}\n${extra}`;
  writeFileSync(path.join(dir, 'cfg.yaml'), yaml);
  return path.join(dir, 'cfg.yaml');
}

async function both(feats: number[], h0: number[]) {
  const bytes = model();
  const config = loadConfig(configFile(feats, h0));
  const r = await run(await compile(config), { workers: 1, numerics: true, steps: 1 });
  const s = await ort.InferenceSession.create(bytes);
  const want = await s.run({ feats: new ort.Tensor('float32', Float32Array.from(feats), [T, F]), h0: new ort.Tensor('float32', Float32Array.from(h0), [1, H]) });
  for (const o of ['scores', 'states', 'h_last']) {
    const ours = r.anchors.get(o)!.data as Float32Array;
    const theirs = want[o].data as Float32Array;
    expect(ours.length, o).toBe(theirs.length);
    for (let i = 0; i < theirs.length; i++) expect(Math.abs(ours[i] - theirs[i]), `${o}[${i}]: ours ${ours[i]}, onnxruntime ${theirs[i]}`).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(theirs[i]));
  }
  return r;
}

describe('a keyword-spotting model with Loop and If, through a config', () => {
  it('matches onnxruntime on a loud input (the classifier head)', async () => {
    const r = await both(rounded(T * F, 11, 1.5).map((v) => v + Math.sign(v)), rounded(H, 12, 0.5));
    const scores = r.anchors.get('scores')!.data as Float32Array;
    expect(scores.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5); // softmax: the classifier head ran
    // The frame gain is a switch inside the encoder's repeat; the head a switch after it.
    const batch = r.compiled.program.programs.batch;
    const loop = batch.find((s) => s.kind === 'repeat');
    expect(loop?.kind === 'repeat' && loop.count === T && loop.body.some((s) => s.kind === 'switch')).toBe(true);
    expect(batch.some((s) => s.kind === 'switch')).toBe(true);
  });

  it('matches onnxruntime on a quiet input (the detector head)', async () => {
    const r = await both(rounded(T * F, 13, 0.2), rounded(H, 14, 0.5));
    const scores = r.anchors.get('scores')!.data as Float32Array;
    expect(scores.reduce((a, b) => a + b, 0)).not.toBeCloseTo(1, 2); // sigmoids: the detector head ran
  });

  it('timing only: the repeat costs what the numerics run costs; the head switch charges the longer head', async () => {
    const config = loadConfig(configFile(rounded(T * F, 13, 0.2), rounded(H, 14, 0.5)));
    const compiled = await compile(config);
    const a = await run(compiled, { workers: 1, numerics: true, steps: 1 });
    const b = await run(compiled, { workers: 1, numerics: false, steps: 1 });
    // Without numerics each switch charges its longer branch (the gain's Mul in every pass, whichever head is
    // longer), so the ops outside both Ifs' branches must match phase for phase, and the total can only grow.
    const inIf = new Set(['head', 'frame_gain', ...[...compiled.graph.regions].filter(([, r]) => r.owner.opid.type === 'If').map(([op]) => op.name)]);
    const outside = (r: typeof a) => r.phases.filter((p) => !inIf.has(p.op)).map((p) => [p.kind, p.name, p.cycles]);
    expect(outside(a).length).toBeGreaterThan(50);
    expect(outside(b)).toEqual(outside(a));
    expect(b.steps[0].cycles).toBeGreaterThanOrEqual(a.steps[0].cycles);
  });

  it('sharded over two IPUs: a UserError naming a control-flow op (IpuCopies run outside branches and loop bodies)', async () => {
    const file = configFile(rounded(T * F, 13, 0.2), rounded(H, 14, 0.5));
    writeFileSync(file, readFileSync(file, 'utf8').replace('device: tiny\nmodel:\n', 'device: {preset: m2000, ipus: 2, tiles: 8}\nmodel:\n  virtualGraphMode: auto\n'));
    await expect(compile(loadConfig(file))).rejects.toThrow(/op '.*' \(ai\.onnx::(If|Loop):\d+\): sharding a model with If or Loop over several IPUs is not supported/);
  });

  /**
   * Against central finite differences (h = 1e-2) of the same simulated model, for a quiet input (the detector
   * head) and a loud one (the classifier head): gain (read by the If nested in the loop body), b (read by every
   * pass) and h0 (the initial carried state). tanh, sigmoid and softmax are smooth: truncation h^2/6 times a
   * third derivative of order 1, ~2e-5; the fp32 rounding of the loss (~6, ulp ~5e-7) over 2h, ~5e-5. The
   * gradients are ~0.003 to 0.13 here; tolerance 2e-4 (the worst seen is 2.3e-5).
   */
  it('gradients through the encoder Loop (and its nested If) and the head If match finite differences', async () => {
    const registry = await createRegistry([]);
    for (const scale of [0.2, 2]) {
      const { graph: decl } = parseOnnx(model());
      const data = { feats: Float32Array.from(rounded(T * F, 13, scale)), h0: Float32Array.from(rounded(H, 14, 0.5)) };
      decl.initializers.push(...decl.inputs.map((i) => ({ ...i, init: { kind: 'data' as const, data: data[i.name as keyof typeof data] }, trainable: i.name === 'h0' })));
      decl.inputs = [];
      const graph = buildGraph(decl, registry);
      const results = await gradcheck(graph, 'scores', ['gain', 'b', 'h0'], { registry, device: tiny() });
      for (const r of results) expect(r.maxAbsError, `scale ${scale}: d/d${r.tensor}: element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(2e-4);
    }
  });

  it('trains through the encoder Loop (LoopGrad, with the IfGrad of its nested If) and the head If (IfGrad): the loss goes down', async () => {
    const config = loadConfig(configFile(rounded(T * F, 13, 0.2), rounded(H, 14, 0.5), 'train:\n  loss: {type: l1, input: scores}\n  optimizer: {type: sgd, lr: 0.05}\n'));
    const compiled = await compile(config);
    const types = new Set(compiled.graph.ops.map((o) => o.opid.type));
    for (const t of ['LoopGrad', 'IfGrad', 'LoopStash', 'LoopRestore']) expect(types.has(t), t).toBe(true);
    const r = await run(compiled, { workers: 1, numerics: true, steps: 4 });
    const losses = r.steps.map((s) => s.loss!);
    for (let i = 1; i < losses.length; i++) expect(losses[i], `step ${i} of ${losses.join(', ')}`).toBeLessThan(losses[i - 1]);
  });
});
