/**
 * LSTM, GRU and RNN (src/ops/rnn.ts, composites unrolled over the sequence)
 * against onnxruntime-node, fp32 and fp16, and their gradients against
 * central finite differences (tolerance 2e-3 absolute, the harness default,
 * with step h = 1e-2: the outputs are smooth in every input).
 *
 * Tolerances: fp32 atol 1e-5, rtol 1e-4: a few steps of dot products of at
 * most I + H = 9 terms and transcendental functions; our Sigmoid and Tanh
 * are not onnxruntime's approximations (its MLAS tanh/logistic are
 * polynomial fits good to a few float32 ulps), and the error of each step
 * carries into the next through H and C. fp16 atol 2e-3, rtol 2e-3 (4 half
 * ulps at 1): every op of the unrolled step rounds its result to float16,
 * while onnxruntime computes in float32 and rounds once; the worst seen
 * over three bidirectional steps is 7.5e-4 (GRU), 4.9e-4 (RNN), 2.4e-4 (LSTM).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, OMITTED, runOrt, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };
const HALF_TOL = { atol: 2e-3, rtol: 2e-3 };
const wide = tiny({ tilesPerIpu: 16 });

type Kind = 'LSTM' | 'GRU' | 'RNN';
const GATES: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };

interface Opts {
  S?: number;
  B?: number;
  I?: number;
  H?: number;
  direction?: 'forward' | 'reverse' | 'bidirectional';
  layout?: 0 | 1;
  bias?: boolean;
  init?: boolean;
  peep?: boolean;
  lens?: number[];
  /** sequence_lens as a constant (an initializer) instead of a streamed input. */
  lensConstant?: boolean;
  attributes?: OpCase['attributes'];
  half?: boolean;
  seed?: number;
  /** Outputs to ask for ('' leaves one out). */
  outputs?: string[];
  opset?: number;
}

/** A recurrent case in layout 0: inputs in ONNX order with omitted ones in between (`layout` is for check()). */
function rnnCase(kind: Kind, o: Opts = {}): OpCase {
  const { S = 3, B = 2, I = 4, H = 3, direction = 'forward', seed = 1 } = o;
  const D = direction === 'bidirectional' ? 2 : 1;
  const G = GATES[kind];
  const h = (t: TensorSpec): TensorSpec => (o.half ? { ...t, dtype: 'float16' } : t);
  const state = [D, B, H];
  const inputs: Record<string, TensorSpec> = {
    x: h(f32([S, B, I], seed)),
    w: h(f32([D, G * H, I], seed + 1)),
    r: h(f32([D, G * H, H], seed + 2)),
    b: o.bias === false ? OMITTED : h(f32([D, 2 * G * H], seed + 3, 0, -0.5, 0.5)),
    lens: o.lens ? { shape: [B], data: Int32Array.from(o.lens), constant: o.lensConstant } : OMITTED,
    h0: o.init ? h(f32(state, seed + 4)) : OMITTED,
  };
  if (kind === 'LSTM') {
    inputs.c0 = o.init ? h(f32(state, seed + 5)) : OMITTED;
    inputs.p = o.peep ? h(f32([D, 3 * H], seed + 6)) : OMITTED;
  }
  // Trailing omitted inputs are dropped, as ONNX writes them.
  const keys = Object.keys(inputs);
  while (inputs[keys[keys.length - 1]].omitted) delete inputs[keys.pop()!];
  return {
    op: kind,
    opset: o.opset ?? 14,
    attributes: { hidden_size: H, direction, ...o.attributes },
    inputs,
    outputs: o.outputs ?? (kind === 'LSTM' ? ['y', 'y_h', 'y_c'] : ['y', 'y_h']),
    ...(o.half ? { ...HALF_TOL, outputDtype: 'float16' as const } : TOL),
  };
}

/** Row-major `data` of `shape` with its axes permuted: output axis k is input axis perm[k]. */
function transpose(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const out = new Float32Array(data.length);
  const oshape = perm.map((p) => shape[p]);
  const istride = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  const idx = oshape.map(() => 0);
  for (let o = 0; o < out.length; o++) {
    out[o] = data[idx.reduce((a, v, k) => a + v * istride[perm[k]], 0)];
    for (let k = oshape.length - 1; k >= 0 && ++idx[k] === oshape[k]; k--) idx[k] = 0;
  }
  return out;
}

/** The layout-1 (batch first) form of a layout-0 case: X [B, S, I], states [B, D, H]. */
function batchFirst(c: OpCase): OpCase {
  const t = (x: TensorSpec): TensorSpec => (x.omitted ? x : { ...x, shape: [x.shape[1], x.shape[0], x.shape[2]], data: transpose(x.data as Float32Array, x.shape, [1, 0, 2]) });
  const inputs: Record<string, TensorSpec> = { ...c.inputs, x: t(c.inputs.x) };
  for (const k of ['h0', 'c0']) if (inputs[k]) inputs[k] = t(inputs[k]);
  return { ...c, inputs, attributes: { ...c.attributes, layout: 1 } };
}

/**
 * A batch-first run against onnxruntime, whose CPU kernels refuse layout 1:
 * ours on the layout-1 case, onnxruntime on the layout-0 one, its outputs
 * transposed (Y [S, D, B, H] to [B, S, D, H], Y_h and Y_c [D, B, H] to [B, D, H]).
 */
async function checkBatchFirst(c0: OpCase): Promise<void> {
  const c1 = batchFirst(c0);
  const [ours, ref] = await Promise.all([runOurs(c1), runOrt(c0)]);
  const [S, B] = c0.inputs.x.shape;
  const D = c0.inputs.w.shape[0];
  const H = c0.inputs.r.shape[2];
  const { atol = 0, rtol = 0 } = c0;
  c0.outputs!.forEach((name, k) => {
    if (!name) return;
    const want = k === 0 ? transpose(ref[name] as Float32Array, [S, D, B, H], [2, 0, 1, 3]) : transpose(ref[name] as Float32Array, [D, B, H], [1, 0, 2]);
    const got = ours.get(name)!;
    expect(got.length, `${name}: element count`).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= atol + rtol * Math.abs(want[i]))) expect.fail(`${c0.op} layout 1 output ${name}[${i}]: ours ${got[i]}, onnxruntime ${want[i]}`);
    }
  });
}

/** checkForward, or checkBatchFirst for layout 1. */
async function check(kind: Kind, o: Opts = {}): Promise<void> {
  const c = rnnCase(kind, o);
  await (o.layout === 1 ? checkBatchFirst(c) : checkForward(c));
}

const DIRECTIONS = ['forward', 'reverse', 'bidirectional'] as const;

describe('LSTM', () => {
  it('every direction, both layouts, with and without initial states, bias and peepholes', async () => {
    for (const direction of DIRECTIONS) {
      for (const layout of [0, 1] as const) {
        await check('LSTM', { direction, layout });
        await check('LSTM', { direction, layout, init: true, peep: true, seed: 7 });
      }
      await check('LSTM', { direction, bias: false, init: true, seed: 11 });
    }
  });

  it('opset 7 and 22, one step, on 16 tiles, fp16', async () => {
    await check('LSTM', { opset: 7, init: true, peep: true });
    await check('LSTM', { opset: 22, direction: 'bidirectional', S: 1 });
    await checkForward({ ...rnnCase('LSTM', { direction: 'bidirectional', S: 5, B: 3, I: 6, H: 5, init: true, peep: true }), device: wide });
    for (const layout of [0, 1] as const) await check('LSTM', { half: true, direction: 'bidirectional', layout, init: true, peep: true });
    await check('LSTM', { half: true, S: 4, B: 3, lens: [2, 4, 1], init: true });
  });

  it('clip, input_forget, activations with alpha and beta', async () => {
    // Large weights so clip 0.5 bounds most gate inputs.
    const c = rnnCase('LSTM', { direction: 'bidirectional', init: true, peep: true, attributes: { clip: 0.5 } });
    await checkForward(c);
    await check('LSTM', { init: true, attributes: { input_forget: 1 } });
    await checkForward(
      rnnCase('LSTM', {
        direction: 'bidirectional',
        attributes: { activations: ['HardSigmoid', 'LeakyRelu', 'Softsign', 'sigmoid', 'Tanh', 'Affine'], activation_alpha: [0.3, 0.2, 1.5], activation_beta: [0.4, 0.25] },
      }),
    );
  });

  it('sequence_lens: masked steps keep the state and write zeros (forward, reverse, bidirectional)', async () => {
    for (const direction of DIRECTIONS) await check('LSTM', { direction, S: 4, B: 3, lens: [4, 1, 2], init: true, peep: true });
    await check('LSTM', { S: 4, B: 2, lens: [4, 4], layout: 1 });
  });

  it('only Y_h, or only Y_c (with sequence_lens too)', async () => {
    await check('LSTM', { outputs: ['', 'y_h'] });
    await check('LSTM', { direction: 'bidirectional', layout: 1, outputs: ['', '', 'y_c'] });
    await check('LSTM', { direction: 'bidirectional', S: 4, B: 3, lens: [3, 4, 1], outputs: ['', 'y_h', 'y_c'] });
    await check('GRU', { direction: 'reverse', S: 4, B: 3, lens: [2, 4, 1], outputs: ['', 'y_h'] });
  });

  it('gradients to X, W, R, B, initial states and peepholes (bidirectional, both layouts)', async () => {
    await checkGrad(rnnCase('LSTM', { S: 2, B: 2, I: 2, H: 2, direction: 'bidirectional', init: true, peep: true }));
    await checkGrad(batchFirst(rnnCase('LSTM', { S: 3, B: 1, I: 2, H: 2, direction: 'reverse', init: true, attributes: { clip: 0.8 } })));
    // Masked steps (sequence_lens, constant): the gradient flows past them to the initial state.
    await checkGrad(rnnCase('LSTM', { S: 3, B: 2, I: 2, H: 2, direction: 'bidirectional', init: true, lens: [3, 1], lensConstant: true }));
  });
});

describe('GRU', () => {
  it('every direction, both layouts, linear_before_reset 0 and 1, initial state, no bias', async () => {
    for (const direction of DIRECTIONS) {
      for (const layout of [0, 1] as const) {
        for (const lbr of [0, 1]) await check('GRU', { direction, layout, init: true, attributes: { linear_before_reset: lbr }, seed: 3 + lbr });
      }
      await check('GRU', { direction, bias: false, attributes: { linear_before_reset: 1 } });
    }
  });

  it('opset 7 and 22, clip, activations, sequence_lens, on 16 tiles, fp16', async () => {
    await check('GRU', { opset: 7, init: true });
    await check('GRU', { opset: 22, direction: 'bidirectional', attributes: { linear_before_reset: 1 } });
    await check('GRU', { direction: 'bidirectional', init: true, attributes: { clip: 0.4 } });
    await check('GRU', { attributes: { activations: ['HardSigmoid', 'Relu'], activation_alpha: [0.25], activation_beta: [0.45] } });
    for (const direction of DIRECTIONS) await check('GRU', { direction, S: 4, B: 3, lens: [2, 4, 3], init: true, attributes: { linear_before_reset: 1 } });
    await checkForward({ ...rnnCase('GRU', { direction: 'bidirectional', S: 5, B: 3, I: 6, H: 5 }), device: wide });
    for (const lbr of [0, 1]) await check('GRU', { half: true, direction: 'bidirectional', layout: 1, init: true, attributes: { linear_before_reset: lbr } });
  });

  it('gradients, linear_before_reset 0 and 1, sequence_lens', async () => {
    await checkGrad(rnnCase('GRU', { S: 2, B: 2, I: 2, H: 2, direction: 'bidirectional', init: true }));
    await checkGrad(rnnCase('GRU', { S: 3, B: 2, I: 2, H: 2, direction: 'reverse', init: true, lens: [2, 3], lensConstant: true, attributes: { linear_before_reset: 1 } }));
    await checkGrad(batchFirst(rnnCase('GRU', { S: 3, B: 1, I: 2, H: 2, init: true, attributes: { linear_before_reset: 1 } })));
  });
});

describe('RNN', () => {
  it('every direction, both layouts, initial state, no bias; activations, clip, sequence_lens, opset 7 and 22, on 16 tiles, fp16', async () => {
    for (const direction of DIRECTIONS) {
      for (const layout of [0, 1] as const) await check('RNN', { direction, layout, init: true });
      await check('RNN', { direction, bias: false, S: 4, B: 3, lens: [1, 3, 4] });
    }
    await check('RNN', { direction: 'bidirectional', attributes: { activations: ['Relu', 'Elu'], activation_alpha: [0.7] } });
    await check('RNN', { attributes: { activations: ['ScaledTanh'], activation_alpha: [1.5], activation_beta: [0.7], clip: 0.6 } });
    await check('RNN', { opset: 7, init: true });
    await check('RNN', { opset: 22, direction: 'reverse' });
    await checkForward({ ...rnnCase('RNN', { direction: 'bidirectional', S: 6, B: 3, I: 5, H: 7 }), device: wide });
    await check('RNN', { half: true, direction: 'bidirectional', init: true });
  });

  it('gradients, sequence_lens', async () => {
    await checkGrad(rnnCase('RNN', { S: 3, B: 2, I: 2, H: 2, direction: 'bidirectional', init: true }));
    await checkGrad(rnnCase('RNN', { S: 3, B: 2, I: 2, H: 2, init: true, lens: [1, 3], lensConstant: true }));
  });
});

describe('errors', () => {
  it('bad shapes, directions, activations and lengths are UserErrors naming the node', async () => {
    const c = rnnCase('LSTM');
    await expect(runOurs({ ...c, inputs: { ...c.inputs, w: f32([1, 9, 4], 1) } })).rejects.toThrow(/node 'LSTM_0' \(LSTM\): W must be float32\[1, 12, 4\], got float32\[1, 9, 4\]/);
    await expect(runOurs({ ...c, attributes: { ...c.attributes, direction: 'sideways' } })).rejects.toThrow(/direction 'sideways' must be forward, reverse or bidirectional/);
    await expect(runOurs({ ...c, attributes: { ...c.attributes, activations: ['Sigmoid', 'Tanh'] } })).rejects.toThrow(/must name 3 functions \(3 per direction/);
    await expect(runOurs({ ...c, attributes: { ...c.attributes, activations: ['Sigmoid', 'Tanh', 'Swish'] } })).rejects.toThrow(/activation 'Swish' is not one ONNX allows/);
    const l = rnnCase('GRU', { lens: [1, 1] });
    await expect(runOurs({ ...l, inputs: { ...l.inputs, lens: { shape: [2], data: Int32Array.of(0, 3), constant: true } } })).rejects.toThrow(/sequence_lens \[0, 3\] must lie in 1\.\.3/);
  });
});
