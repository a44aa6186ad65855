/**
 * The seed's LeakyRelu forward, run through the simulator on the tiny device
 * (so tensors span several tiles), against onnxruntime-node's LeakyRelu.
 * Tolerance: none. Both compute fp32(alpha) x x correctly rounded to fp32
 * (the product of two fp32 numbers is exact in a double), so the results
 * must be bitwise equal.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/ir/graph.js';
import { runGraph } from '../../src/session.js';
import { LeakyReluOp } from '../../examples/custom-ops/leaky-relu.js';
import { randomData, registryWithLeaky, tiny } from '../helpers.js';
import { runOrt } from './ort.js';

describe('LeakyRelu forward vs onnxruntime', () => {
  it('agrees bitwise over random shapes, alphas and data', async () => {
    const registry = await registryWithLeaky();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }),
        fc.float({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 1e6 }),
        async (shape, alpha, seed) => {
          const n = shape.reduce((a, b) => a * b, 1);
          const x = randomData(n, seed, -5, 5);
          const g = new Graph();
          g.addTensor('x', { dtype: 'float32', shape }, 'stream');
          g.addOp(new LeakyReluOp({ alpha }, { name: 'leaky' }), ['x'], ['y']);
          const ours = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
          const ref = await runOrt({ opType: 'LeakyRelu', attributes: { alpha }, inputs: { x: { shape, data: x } }, outputs: ['y'], opset: 16 });
          expect(Array.from(ours.outputs.get('y')!)).toEqual(Array.from(ref.y));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('spreads a large tensor over every tile of the device and still agrees', async () => {
    const registry = await registryWithLeaky();
    const shape = [64, 100];
    const x = randomData(6400, 3, -2, 2);
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape }, 'stream');
    g.addOp(new LeakyReluOp({ alpha: 0.01 }, { name: 'leaky' }), ['x'], ['y']);
    const ours = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    const tiles = new Set(ours.program.tensors.find((t) => t.name === 'y')!.intervals.tile);
    expect(tiles.size).toBe(4);
    const ref = await runOrt({ opType: 'LeakyRelu', attributes: { alpha: 0.01 }, inputs: { x: { shape, data: x } }, outputs: ['y'], opset: 16 });
    expect(Array.from(ours.outputs.get('y')!)).toEqual(Array.from(ref.y));
  });
});
