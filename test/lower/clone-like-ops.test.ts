/**
 * Ops lowered once and cloned for their likes (src/lower/lower.ts, on by
 * default): an op whose structure, inputs' layouts, in-place freedom and
 * outputs' categories equal those of an op lowered before gets a copy of
 * that lowering. The copy must be the program lowering it again would make:
 * every tensor, tile mapping, vertex, copy and byte of tile memory, hence the
 * same cycles and bits; only the notes say which ops were copies.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compile, Session } from '../../src/session.js';
import type { Compiled } from '../../src/session.js';
import { structureKey } from '../../src/lower/outline.js';

/** Q, K and V projections of one input (each a MatMul and a bias Add), summed, trained one SGD step. */
const yaml = `device: {preset: tiny}
model:
  graph:
    inputs: {x: {shape: [16, 64], dtype: float32}}
    initializers:
      wq: {shape: [64, 64], init: {normal: {std: 0.1, seed: 1}}}
      bq: {shape: [64], init: {normal: {std: 0.1, seed: 2}}}
      wk: {shape: [64, 64], init: {normal: {std: 0.1, seed: 3}}}
      bk: {shape: [64], init: {normal: {std: 0.1, seed: 4}}}
      wv: {shape: [64, 64], init: {normal: {std: 0.1, seed: 5}}}
      bv: {shape: [64], init: {normal: {std: 0.1, seed: 6}}}
    nodes:
      - {op: MatMul, inputs: [x, wq], outputs: [q0]}
      - {op: Add, inputs: [q0, bq], outputs: [q]}
      - {op: MatMul, inputs: [x, wk], outputs: [k0]}
      - {op: Add, inputs: [k0, bk], outputs: [k]}
      - {op: MatMul, inputs: [x, wv], outputs: [v0]}
      - {op: Add, inputs: [v0, bv], outputs: [v]}
      - {op: Mul, inputs: [q, k], outputs: [qk]}
      - {op: Add, inputs: [qk, v], outputs: [y]}
    outputs: [y]
inputs: {x: {random: {distribution: normal, seed: 9}}}
train:
  loss: {type: l1, input: y}
  optimizer: {type: sgd, lr: 0.1}
anchors: {y: final, Gradient___wk: final}
`;

async function build(cloneLikeOps: boolean): Promise<Compiled> {
  return compile(loadConfigText(yaml, 'qkv.yaml'), { cloneLikeOps });
}

/** The two programs are the same but for their notes (which say what was cloned). */
function expectSameProgram(cloned: Compiled, lowered: Compiled): void {
  const { notes: _a, ...rest } = cloned.program;
  const { notes: _b, ...restLowered } = lowered.program;
  expect(rest).toEqual(restLowered);
}

async function run(compiled: Compiled) {
  const session = await Session.create(compiled, { workers: 1, numerics: true });
  try {
    const r = await session.runStep();
    return { cycles: r.cycles, anchors: new Map([...r.anchors].map(([k, v]) => [k, Array.from(v.data as Float32Array)])), weights: session.readWeights() };
  } finally {
    await session.close();
  }
}

describe('ops lowered as clones of a like op', () => {
  it('make the very program lowering each op makes, with the same cycles and bits', async () => {
    const [cloned, lowered] = await Promise.all([build(true), build(false)]);
    const clones = (c: Compiled) => (c.program.notes ?? []).filter((n) => n.kind === 'clone');
    // V's projection is a copy of K's (Q's reads x where it laid x out for itself: not alike), and so are
    // bias Adds, a weight gradient and the updates; without cloning, nothing is.
    const copied = new Set(clones(cloned).map((n) => n.op));
    for (const op of ['MatMul_4', 'Add_3', 'Add_5', 'MatMulRhsGrad(MatMul_2)', 'SGDUpdate(wk)', 'SGDUpdate(bv)']) expect(copied, op).toContain(op);
    expect(copied).not.toContain('MatMul_0');
    expect(clones(lowered)).toEqual([]);
    // Everything but the notes is the same: tensors (names, mappings), vertices, copy tables, memory.
    expectSameProgram(cloned, lowered);
    // The clone carries its template's notes (its plan), naming its own tensors.
    const [a, b] = [cloned.program.notes, lowered.program.notes];
    const plain = (notes: typeof a) => (notes ?? []).filter((n) => n.kind !== 'clone' && n.kind !== 'clones');
    expect(plain(a)).toEqual(plain(b));
    expect(plain(a).some((n) => n.op === 'MatMul_4' && n.kind === 'plan')).toBe(true);
    const [r1, r2] = [await run(cloned), await run(lowered)];
    expect(r1.cycles).toBe(r2.cycles);
    expect(r1.anchors).toEqual(r2.anchors);
    expect(r1.weights).toEqual(r2.weights);
  });

  it('are never made of ops alike but for the values of a constant input (Gather indices), which lowerings read', async () => {
    // Two Gathers of one table by constant indices of one shape: the indices decide the copies.
    const text = `device: {preset: tiny}
model:
  graph:
    inputs: {x: {shape: [8, 16], dtype: float32}}
    initializers:
      i1: {shape: [3], dtype: int32, init: {value: [0, 2, 4]}, trainable: false}
      i2: {shape: [3], dtype: int32, init: {value: [7, 1, 1]}, trainable: false}
    nodes:
      - {op: Gather, inputs: [x, i1], outputs: [a], attributes: {axis: 0}}
      - {op: Gather, inputs: [x, i2], outputs: [b], attributes: {axis: 0}}
      - {op: Sub, inputs: [a, b], outputs: [y]}
    outputs: [y]
inputs: {x: {random: {distribution: normal, seed: 3}}}
anchors: {y: final, x: final}
`;
    const [cloned, lowered] = await Promise.all([true, false].map((cloneLikeOps) => compile(loadConfigText(text, 'gathers.yaml'), { cloneLikeOps })));
    expect((cloned.program.notes ?? []).filter((n) => n.kind === 'clone').map((n) => n.op)).not.toContain('Gather_1');
    expectSameProgram(cloned, lowered);
    const r = await run(cloned);
    const x = r.anchors.get('x')!;
    const y = r.anchors.get('y')!;
    const [i1, i2] = [[0, 2, 4], [7, 1, 1]];
    // y[r] = x[i1[r]] - x[i2[r]]: both fp32 values exact, so their difference is exactly fp32 rounded.
    const want = i1.flatMap((row, k) => Array.from({ length: 16 }, (_, c) => Math.fround(x[row * 16 + c] - x[i2[k] * 16 + c])));
    expect(y).toEqual(want);
  });

  it('are never made of ops whose attributes differ only in a non-finite value (JSON writes each as null)', async () => {
    // The config refuses non-finite attributes, an ONNX model need not: set them on the built ops.
    const text = `device: {preset: tiny}
model:
  graph:
    inputs: {x: {shape: [4, 8], dtype: float32}}
    nodes:
      - {op: LeakyRelu, inputs: [x], outputs: [a], attributes: {alpha: 0.5}}
      - {op: LeakyRelu, inputs: [x], outputs: [b], attributes: {alpha: 0.5}}
    outputs: [a, b]
inputs: {x: {random: {distribution: normal, seed: 5}}}
`;
    const c = await compile(loadConfigText(text, 'inf.yaml'));
    const [a, b] = c.schedule as unknown as { alpha: number }[];
    expect(structureKey(c.schedule[0], c.graph)).toBe(structureKey(c.schedule[1], c.graph));
    a.alpha = Infinity;
    b.alpha = -Infinity;
    expect(structureKey(c.schedule[0], c.graph)).not.toBe(structureKey(c.schedule[1], c.graph));
    b.alpha = NaN;
    expect(structureKey(c.schedule[0], c.graph)).not.toBe(structureKey(c.schedule[1], c.graph));
  });

  it('are never made of ops reading a sharded weight, whose all-gather the clone would leave out', async () => {
    // woff gets no gradient, so it is not sharded; won is (replicated tensor sharding over 2 replicas).
    // MatMul(r, won) is shaped and laid out like MatMul(r, woff) but needs won all-gathered first.
    const text = `device: {preset: m2000, ipus: 2, tiles: 16}
replicas: 2
model:
  graph:
    inputs: {x: {shape: [8, 12]}}
    initializers:
      woff: {shape: [12, 18], init: {normal: {std: 0.3, seed: 1}}}
      won: {shape: [12, 18], init: {normal: {std: 0.3, seed: 2}}}
    nodes:
      - {op: Relu, inputs: [x], outputs: [r]}
      - {op: MatMul, inputs: [r, woff], outputs: [m2]}
      - {op: Neg, inputs: [woff], outputs: [nw]}
      - {op: MatMul, inputs: [r, won], outputs: [m1]}
    outputs: [m1, m2, nw]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}}
train:
  loss: {type: l1, input: m1}
  optimizer: {type: sgd, lr: 0.1}
  weightTensorLocationSettings: {location: {storage: onChip, replicatedTensorSharding: true}, minElementsForOffChip: 0, minElementsForReplicatedTensorSharding: 0}
anchors: {m2: final, m1: final, nw: final}
`;
    const [cloned, lowered] = await Promise.all([true, false].map((cloneLikeOps) => compile(loadConfigText(text, 'rts.yaml'), { cloneLikeOps })));
    expect((cloned.program.notes ?? []).filter((n) => n.kind === 'clone').map((n) => n.op)).not.toContain('MatMul_3');
    expectSameProgram(cloned, lowered);
    const [r1, r2] = [await run(cloned), await run(lowered)];
    expect(r1.anchors.get('m1')!.some((v) => v !== 0)).toBe(true);
    expect(r1.anchors).toEqual(r2.anchors);
  });
});
