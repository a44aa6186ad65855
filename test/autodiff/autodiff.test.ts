/** The autodiff transform's structure and its errors (PopART semantics plus our checks). */
import { describe, expect, it } from 'vitest';
import { autodiff } from '../../src/autodiff/autodiff.js';
import { UserError } from '../../src/errors.js';
import { Graph } from '../../src/ir/graph.js';
import { GradOp, GradOpInType, Op, type GradInOutMapper } from '../../src/ir/op.js';
import { AddOp } from '../../src/ops/add.js';
import { L1Op } from '../../src/ops/loss.js';
import { MatMulOp } from '../../src/ops/matmul.js';
import { MulOp } from '../../src/ops/mul.js';
import { SGDVarUpdateOp } from '../../src/ops/sgd.js';
import { variable } from '../helpers.js';

const ID = { domain: 'test.ops', type: 'Scale', version: 1 };

/** y = 2x, with a grad op whose maps the tests break on purpose. */
class ScaleOp extends Op {
  constructor(readonly grad: 'none' | 'badIn' | 'badOut' | 'badInfo' | 'ok') {
    super(ID, { name: 'scale' });
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
  override getGradOps(): GradOp[] {
    return this.grad === 'none' ? [] : [new ScaleGradOp(this, this.grad)];
  }
}

class ScaleGradOp extends GradOp {
  constructor(
    fwd: ScaleOp,
    readonly mode: string,
  ) {
    super({ ...ID, type: 'ScaleGrad' }, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.mode === 'badInfo' ? { dtype: 'float32', shape: [1] } : this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [{ gradOpInIndex: 0, fwdIndex: this.mode === 'badIn' ? 3 : 0, type: GradOpInType.GradOut }];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.mode === 'badOut' ? 2 : 0]]);
  }
}

function modelWith(scale: ScaleOp): Graph {
  const g = new Graph();
  variable(g, 'w', [3, 2], 1);
  g.addOp(scale, ['w'], ['s']);
  g.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'l1' }), ['s'], ['loss']);
  return g;
}

describe('autodiff', () => {
  it('names gradients Gradient___<tensor>, seeds the loss and sums edge gradients', () => {
    const g = new Graph();
    variable(g, 'x', [4, 3], 1);
    variable(g, 'w', [3, 3], 2);
    g.addOp(new MatMulOp({ name: 'mm' }), ['x', 'w'], ['h']);
    g.addOp(new MulOp({ name: 'sq' }), ['h', 'h'], ['h2']);
    g.addOp(new AddOp({ name: 'add' }), ['h2', 'h'], ['y']);
    g.addOp(new L1Op({ scale: 1, reduction: 'mean' }, { name: 'l1' }), ['y'], ['loss']);
    const { gradOf } = autodiff(g, 'loss');
    expect(gradOf.get('w')).toBe('Gradient___w');
    expect(gradOf.get('x')).toBe('Gradient___x');
    expect(gradOf.get('loss')).toBe('Gradient___loss');
    expect(g.tensor('Gradient___loss').kind).toBe('constant');
    // h feeds the Mul twice and the Add once: three edge gradients summed.
    const sum = g.tensor('Gradient___h').producer!;
    expect(sum.opid.type).toBe('Sum');
    expect(sum.inputs).toHaveLength(3);
    expect(g.tensor('Gradient___w').info.shape).toEqual([3, 3]);
  });

  it('grows an op only after all its outputs on the path have gradients', () => {
    const g = new Graph();
    variable(g, 'x', [2, 2], 1);
    g.addOp(new MulOp({ name: 'sq' }), ['x', 'x'], ['x2']);
    g.addOp(new AddOp({ name: 'add' }), ['x2', 'x'], ['y']);
    g.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'l1' }), ['y'], ['loss']);
    autodiff(g, 'loss');
    const order = g.schedule().map((o) => o.name);
    // The GradSum for x runs after both Mul grads and the Add grad that feed it.
    const sum = order.indexOf('GradSum(x)');
    expect(sum).toBeGreaterThan(order.findIndex((n) => n.startsWith('MulArg0Grad')));
    expect(sum).toBeGreaterThan(order.findIndex((n) => n.startsWith('MulArg1Grad')));
  });

  it('reports a trainable variable on the loss path that gets no gradient, naming the op', () => {
    const g = modelWith(new ScaleOp('none'));
    expect(() => autodiff(g, 'loss')).toThrow(UserError);
    expect(() => autodiff(modelWith(new ScaleOp('none')), 'loss')).toThrow(/trainable variable 'w' .*op 'scale' \(test\.ops::Scale:1\) has no grad ops/);
  });

  it('checks gradInputInfo indices are in range', () => {
    expect(() => autodiff(modelWith(new ScaleOp('badIn')), 'loss')).toThrow(/grad op 'ScaleGrad\(scale\)'.*gradInputInfo\(\) maps input 0 to forward GradOut index 3, but the forward op has 1 outputs/);
  });

  it('checks gradOutToNonGradIn indices are in range', () => {
    expect(() => autodiff(modelWith(new ScaleOp('badOut')), 'loss')).toThrow(/gradOutToNonGradIn\(\) maps output 0 to forward input 2, but the forward op has 1 inputs/);
  });

  it("checks a grad op's output info matches the forward input it is the gradient of", () => {
    expect(() => autodiff(modelWith(new ScaleOp('badInfo')), 'loss')).toThrow(/output 0 is float32\[1\] but it is the gradient of forward input 0 'w', which is float32\[3, 2\]/);
  });

  it('accepts a correct custom grad op', () => {
    const g = modelWith(new ScaleOp('ok'));
    expect(autodiff(g, 'loss').gradOf.get('w')).toBe('Gradient___w');
  });

  it('rejects a loss that is not a scalar', () => {
    const g = new Graph();
    variable(g, 'w', [3], 1);
    expect(() => autodiff(g, 'w')).toThrow(/must be a scalar/);
  });

  it('schedules an in-place variable update after every reader of the variable', () => {
    const g = new Graph();
    variable(g, 'x', [2, 3], 1);
    variable(g, 'w', [3, 2], 2);
    g.addOp(new MatMulOp({ name: 'mm' }), ['x', 'w'], ['y']);
    g.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'l1' }), ['y'], ['loss']);
    const { gradOf } = autodiff(g, 'loss');
    const params = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };
    // Added before the grad ops' consumers would naturally run: the scheduler must still order it last among w's readers.
    g.addOp(new SGDVarUpdateOp(params, { name: 'update w' }), ['w', gradOf.get('w')!], []);
    const order = g.schedule().map((o) => o.name);
    const update = order.indexOf('update w');
    for (const c of g.tensor('w').consumers) if (c.op.name !== 'update w') expect(order.indexOf(c.op.name)).toBeLessThan(update);
  });
});

describe('autodiff pruning', () => {
  it('drops grad ops whose outputs nobody needs (the gradient of an unanchored input)', () => {
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape: [2, 3] }, 'stream');
    variable(g, 'w', [3, 2], 2);
    g.addOp(new MatMulOp({ name: 'mm' }), ['x', 'w'], ['y']);
    g.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'l1' }), ['y'], ['loss']);
    autodiff(g, 'loss');
    expect(g.ops.map((o) => o.opid.type)).not.toContain('MatMulLhsGrad');
    expect(g.ops.map((o) => o.opid.type)).toContain('MatMulRhsGrad');
  });

  it('keeps the gradient of an input when it is asked for', () => {
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape: [2, 3] }, 'stream');
    variable(g, 'w', [3, 2], 2);
    g.addOp(new MatMulOp({ name: 'mm' }), ['x', 'w'], ['y']);
    g.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'l1' }), ['y'], ['loss']);
    expect(autodiff(g, 'loss', ['x']).gradOf.get('x')).toBe('Gradient___x');
  });
});
