/**
 * Every grad op of the spine against central finite differences of its
 * forward, both through the simulator (src/autodiff/gradcheck.ts).
 *
 * Tolerance: 2e-3 absolute. With h = 1e-2 the truncation error is zero for
 * the ops here (each is piecewise linear or bilinear in any one element, and
 * inputs stay at least 0.05 from LeakyRelu's and L1's kinks), so the error is
 * the fp32 rounding of the loss. gradcheck keeps the loss near the element
 * count (C_i = |y_i R_i| + 1), at most ~100 here: rounding <= 100 x 2^-24
 * = 6e-6, over 2h: <= 3e-4, so 2e-3 leaves a margin of ~6x. Gradients are
 * required to reach 10x the tolerance, so a wrong rule (a missing alpha, a
 * transpose, a lost broadcast sum) misses by far more.
 */
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { Graph } from '../../src/ir/graph.js';
import type { Op } from '../../src/ir/op.js';
import { createRegistry } from '../../src/model/modules.js';
import { AddOp } from '../../src/ops/add.js';
import { L1Op } from '../../src/ops/loss.js';
import { MatMulOp } from '../../src/ops/matmul.js';
import { MulOp } from '../../src/ops/mul.js';
import { SumOp } from '../../src/ops/sum.js';
import path from 'node:path';
import { checkAttributes } from '../../src/ir/registry.js';
import { LEAKY_MODULE, ROOT, registryWithLeaky, tiny, variable } from '../helpers.js';

const TOL = 2e-3;

async function check(build: (g: Graph) => { output: string; wrt: string[] }, custom = false) {
  const g = new Graph();
  const { output, wrt } = build(g);
  const registry = custom ? await registryWithLeaky() : await createRegistry([]);
  const results = await gradcheck(g, output, wrt, { registry, device: tiny() });
  for (const r of results) {
    expect(r.maxAbsError, `${r.tensor}: worst element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(TOL);
    // The check has teeth only if some gradient is well above the tolerance.
    expect(Math.max(...r.analytic.map(Math.abs))).toBeGreaterThan(10 * TOL);
  }
  return results;
}

function add(g: Graph, op: Op, ins: string[], out: string): string {
  g.addOp(op, ins, [out]);
  return out;
}

describe('grad ops agree with central finite differences', () => {
  it('LeakyReluGradOp (the seed custom op), alpha = 0.2', async () => {
    const { LeakyReluOp } = await import('../../examples/custom-ops/leaky-relu.js');
    await check((g) => {
      variable(g, 'x', [6, 5], 1, 0.05);
      add(g, new LeakyReluOp({ alpha: 0.2 }, { name: 'leaky' }), ['x'], 'y');
      return { output: 'y', wrt: ['x'] };
    }, true);
  });

  it('the short form of the seed op (defineUnaryOp, docs/custom-ops.md) gives the long form\'s gradients bit for bit', async () => {
    const { LeakyReluOp } = await import('../../examples/custom-ops/leaky-relu.js');
    const registry = await createRegistry([LEAKY_MODULE, path.join(ROOT, 'examples/custom-ops/leaky-relu-short.ts')]);
    const def = registry.resolve('custom.short', 'LeakyRelu', 1);
    const short = def.create!({ attributes: checkAttributes(def, { alpha: 0.2 }, 'leaky'), settings: { name: 'leaky' } });
    const run = async (op: Op) => {
      const g = new Graph();
      variable(g, 'x', [6, 5], 1, 0.05);
      add(g, op, ['x'], 'y');
      const [r] = await gradcheck(g, 'y', ['x'], { registry, device: tiny() });
      return r;
    };
    const long = await run(new LeakyReluOp({ alpha: 0.2 }, { name: 'leaky' }));
    const s = await run(short);
    expect(s.maxAbsError).toBeLessThan(TOL);
    // The numeric gradient comes from forward runs: equal bits there mean equal forward outputs too.
    expect(Array.from(s.analytic)).toEqual(Array.from(long.analytic));
    expect(Array.from(s.numeric)).toEqual(Array.from(long.numeric));
    expect(Math.max(...s.analytic.map(Math.abs))).toBeGreaterThan(10 * TOL);
  });

  it('MatMulLhsGradOp and MatMulRhsGradOp', async () => {
    await check((g) => {
      variable(g, 'a', [5, 7], 2);
      variable(g, 'b', [7, 3], 3);
      add(g, new MatMulOp({ name: 'mm' }), ['a', 'b'], 'c');
      return { output: 'c', wrt: ['a', 'b'] };
    });
  });

  it('AddArg0GradOp and AddArg1GradOp with a bias broadcast over rows', async () => {
    await check((g) => {
      variable(g, 'x', [6, 4], 4);
      variable(g, 'bias', [4], 5);
      add(g, new AddOp({ name: 'add' }), ['x', 'bias'], 'y');
      return { output: 'y', wrt: ['x', 'bias'] };
    });
  });

  it('Add grads with the broadcast operand first', async () => {
    await check((g) => {
      variable(g, 'bias', [3], 6);
      variable(g, 'x', [2, 5, 3], 7);
      add(g, new AddOp({ name: 'add' }), ['bias', 'x'], 'y');
      return { output: 'y', wrt: ['bias', 'x'] };
    });
  });

  it('MulArg0GradOp and MulArg1GradOp, broadcast', async () => {
    await check((g) => {
      variable(g, 'x', [5, 4], 8);
      variable(g, 's', [4], 9);
      add(g, new MulOp({ name: 'mul' }), ['x', 's'], 'y');
      return { output: 'y', wrt: ['x', 's'] };
    });
  });

  it('Sum grads over three inputs', async () => {
    await check((g) => {
      for (const [i, n] of ['p', 'q', 'r'].entries()) variable(g, n, [3, 3], 10 + i);
      add(g, new SumOp({ name: 'sum' }), ['p', 'q', 'r'], 'y');
      return { output: 'y', wrt: ['p', 'q', 'r'] };
    });
  });

  it('GradSum of a tensor with several consumers (y = x*x + x)', async () => {
    await check((g) => {
      variable(g, 'x', [4, 3], 13, 0.05);
      add(g, new MulOp({ name: 'sq' }), ['x', 'x'], 'x2');
      add(g, new AddOp({ name: 'add' }), ['x2', 'x'], 'y');
      return { output: 'y', wrt: ['x'] };
    });
  });

  it('L1GradOp, mean and sum reductions', async () => {
    for (const reduction of ['mean', 'sum'] as const) {
      await check((g) => {
        variable(g, 'x', [4, 4], 14, 0.05);
        add(g, new L1Op({ scale: 0.7, reduction }, { name: 'l1' }), ['x'], 'l');
        return { output: 'l', wrt: ['x'] };
      });
    }
  });

  it('a chain: MatMul -> Add -> LeakyRelu (the example model)', async () => {
    const { LeakyReluOp } = await import('../../examples/custom-ops/leaky-relu.js');
    await check((g) => {
      variable(g, 'x', [4, 6], 15);
      variable(g, 'w', [6, 3], 16);
      variable(g, 'b', [3], 17);
      add(g, new MatMulOp({ name: 'mm' }), ['x', 'w'], 'h');
      add(g, new AddOp({ name: 'add' }), ['h', 'b'], 'hb');
      add(g, new LeakyReluOp({ alpha: 0.1 }, { name: 'leaky' }), ['hb'], 'y');
      return { output: 'y', wrt: ['x', 'w', 'b'] };
    }, true);
  });
});
