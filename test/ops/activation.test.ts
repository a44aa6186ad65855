/**
 * The activations and elementwise math of issue 15 (src/ops/unary.ts specs,
 * sim/codelets/unary.ts): Elu, Selu, Celu, HardSigmoid, HardSwish, Softplus,
 * Softsign, ThresholdedRelu, Mish, Reciprocal, Sin, Cos, Sinh, Cosh, Tan,
 * Atan, Asin, Acos, Asinh, Acosh, Atanh, Shrink and the
 * non-differentiable Floor, Ceil, Round, Sign. Forward against
 * onnxruntime-node, grads against central finite differences.
 *
 * Forward tolerances (|ours - ref| <= atol + rtol |ref|):
 * - exact (0, 0) for ops that are correctly rounded fp32 operations or a
 *   select on both sides: ThresholdedRelu, Floor, Ceil, Round, Sign,
 *   Reciprocal (one IEEE divide), HardSigmoid (fp32 mul then add, clamped);
 * - TRANSCENDENTAL (atol 1e-7, rtol 1e-6, ~8 fp32 ulp) for the rest: we
 *   evaluate in double and round once; onnxruntime's fp32 kernels (Eigen /
 *   MLAS exp, log, tanh, sin) are a few ulp off the correctly rounded value,
 *   and the absolute term covers results near 0 (Sin near pi, Elu near 0);
 * - float16: one float16 ulp (rtol 2^-10, atol 1e-6 for results near 0), as
 *   in unary.test.ts (both sides round a more precise value to half).
 *
 * Grad tolerance: checkGrad's default 2e-3 absolute, h = 1e-2; inputs kept at
 * least 0.05 from the kinks (0 for Elu/Celu; +-3 and the clamp points for the
 * hard ops; alpha for ThresholdedRelu) so the central difference never
 * straddles one, and |x| <= 2 so h^2/6 |f'''| stays below 1e-4.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { createRegistry } from '../../src/model/modules.js';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { checkForward, checkGrad, f32, runOurs, type OpCase, type TensorSpec } from './harness.js';

const EXACT = { atol: 0, rtol: 0 };
const TRANSCENDENTAL = { atol: 1e-7, rtol: 1e-6 };
const WIDE = [7, 33];
const shapes = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 });

interface Case {
  op: string;
  low: number;
  high: number;
  tol: { atol: number; rtol: number };
  attributes?: OpCase['attributes'];
  opset?: number;
  /** No grad op (not differentiable). */
  noGrad?: boolean;
  /** Gradcheck inputs: [low, high], kept `gap` from 0. */
  grad?: [number, number, number?];
}

const CASES: Case[] = [
  { op: 'Elu', low: -4, high: 4, tol: TRANSCENDENTAL, grad: [-2, 2, 0.05] },
  { op: 'Elu', low: -4, high: 4, tol: TRANSCENDENTAL, attributes: { alpha: 0.7 }, grad: [-2, 2, 0.05] },
  { op: 'Selu', low: -4, high: 4, tol: TRANSCENDENTAL, grad: [-2, 2, 0.05] },
  { op: 'Selu', low: -4, high: 4, tol: TRANSCENDENTAL, attributes: { alpha: 2, gamma: 3 }, grad: [-2, 2, 0.05] },
  { op: 'Celu', low: -4, high: 4, tol: TRANSCENDENTAL, grad: [-2, 2, 0.05] },
  { op: 'Celu', low: -4, high: 4, tol: TRANSCENDENTAL, attributes: { alpha: 2.5 }, grad: [-2, 2, 0.05] },
  { op: 'HardSigmoid', low: -4, high: 4, tol: EXACT },
  { op: 'HardSigmoid', low: -4, high: 4, tol: EXACT, attributes: { alpha: 0.3, beta: 0.4 } },
  { op: 'HardSwish', low: -5, high: 5, tol: TRANSCENDENTAL },
  { op: 'Softplus', low: -10, high: 10, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Softsign', low: -5, high: 5, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'ThresholdedRelu', low: -3, high: 3, tol: EXACT },
  { op: 'ThresholdedRelu', low: -3, high: 3, tol: EXACT, attributes: { alpha: 0.5 } },
  { op: 'Mish', low: -6, high: 6, tol: TRANSCENDENTAL, opset: 18, grad: [-2, 2] },
  { op: 'Reciprocal', low: -4, high: 4, tol: EXACT, grad: [0.5, 2] },
  { op: 'Sin', low: -6, high: 6, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Cos', low: -6, high: 6, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Sinh', low: -4, high: 4, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Cosh', low: -4, high: 4, tol: TRANSCENDENTAL, grad: [-2, 2] },
  // Inputs inside each domain (and off Tan's poles); grads kept off the ends, where 1 / sqrt(1 - x^2) grows.
  { op: 'Tan', low: -1.4, high: 1.4, tol: TRANSCENDENTAL, grad: [-1, 1] },
  { op: 'Atan', low: -6, high: 6, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Asin', low: -0.99, high: 0.99, tol: TRANSCENDENTAL, grad: [-0.8, 0.8] },
  { op: 'Acos', low: -0.99, high: 0.99, tol: TRANSCENDENTAL, grad: [-0.8, 0.8] },
  { op: 'Asinh', low: -6, high: 6, tol: TRANSCENDENTAL, grad: [-2, 2] },
  { op: 'Acosh', low: 1.01, high: 6, tol: TRANSCENDENTAL, grad: [1.3, 3] },
  { op: 'Atanh', low: -0.99, high: 0.99, tol: TRANSCENDENTAL, grad: [-0.8, 0.8] },
  // Shrink: exact (compares, one fp32 add or subtract); grads kept 0.05 off the band's edges +-lambd.
  { op: 'Shrink', low: -2, high: 2, tol: EXACT },
  { op: 'Shrink', low: -2, high: 2, tol: EXACT, attributes: { lambd: 0.7, bias: 0.25 } },
  { op: 'Floor', low: -4, high: 4, tol: EXACT, noGrad: true },
  { op: 'Ceil', low: -4, high: 4, tol: EXACT, noGrad: true },
  { op: 'Round', low: -4, high: 4, tol: EXACT, noGrad: true },
  { op: 'Sign', low: -4, high: 4, tol: EXACT, noGrad: true },
];

const label = (c: Case) => `${c.op}${c.attributes ? ` ${JSON.stringify(c.attributes)}` : ''}`;

describe('forward vs onnxruntime', () => {
  for (const c of CASES) {
    it(`${label(c)} over random shapes and one spanning 4 tiles`, async () => {
      const run = (shape: number[], seed: number) => checkForward({ op: c.op, opset: c.opset, attributes: c.attributes, inputs: { x: f32(shape, seed, 0, c.low, c.high) }, ...c.tol });
      await fc.assert(fc.asyncProperty(shapes, fc.integer({ min: 1, max: 1000 }), run), { numRuns: 3, seed: 42 });
      await run(WIDE, 7);
    });
  }

  it('Round takes halves to even, Sign gives 0 at 0, as onnxruntime', async () => {
    const x: TensorSpec = { shape: [10], data: Float32Array.from([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0, -0, 3.4999998, -7.5]) };
    await checkForward({ op: 'Round', inputs: { x }, ...EXACT });
    await checkForward({ op: 'Sign', inputs: { x }, ...EXACT });
    await checkForward({ op: 'Floor', inputs: { x }, ...EXACT });
    await checkForward({ op: 'Ceil', inputs: { x }, ...EXACT });
  });

  it('Softplus does not overflow for large |x|', async () => {
    const x: TensorSpec = { shape: [6], data: Float32Array.from([-100, -30, 0, 30, 88, 100]) };
    await checkForward({ op: 'Softplus', inputs: { x }, ...TRANSCENDENTAL });
  });

  it('in float16 every op agrees with onnxruntime to one float16 ulp', async () => {
    // Celu is float-only in ONNX (onnxruntime refuses the model), so it is checked in float32 only.
    for (const c of CASES.filter((c) => c.op !== 'Celu')) {
      const x = { ...f32(WIDE, 12, 0, Math.max(c.low, -4), Math.min(c.high, 4)), dtype: 'float16' as const };
      await checkForward({ op: c.op, opset: c.opset, attributes: c.attributes, inputs: { x }, outputDtype: 'float16', atol: 1e-6, rtol: 9.8e-4 });
    }
  });
});

describe('gradients vs finite differences', () => {
  for (const [i, c] of CASES.filter((c) => c.grad).entries()) {
    it(label(c), async () => {
      const [low, high, gap] = c.grad!;
      await checkGrad({ op: c.op, opset: c.opset, attributes: c.attributes, inputs: { x: f32([3, 4], 30 + i, gap ?? 0, low, high) } });
    });
  }

  it('Shrink away from the edges of its band', async () => {
    const x: TensorSpec = { shape: [2, 4], data: Float32Array.from([-1.5, -0.8, -0.6, -0.2, 0.1, 0.65, 0.9, 1.7]) };
    await checkGrad({ op: 'Shrink', attributes: { lambd: 0.7, bias: 0.25 }, inputs: { x } });
    await checkGrad({ op: 'Shrink', inputs: { x } });
  });

  it('HardSigmoid, HardSwish and ThresholdedRelu away from their kinks', async () => {
    // HardSigmoid 0.2 x + 0.5 clamps at x = -2.5 and 2.5; HardSwish at -3 and 3; ThresholdedRelu alpha 1.
    const pick = (vals: number[]): TensorSpec => ({ shape: [2, 4], data: Float32Array.from(vals) });
    await checkGrad({ op: 'HardSigmoid', inputs: { x: pick([-3, -2.4, -1, -0.2, 0.3, 1.7, 2.4, 3.1]) } });
    await checkGrad({ op: 'HardSwish', inputs: { x: pick([-4, -2.9, -1.5, -0.3, 0.4, 2.2, 2.9, 3.5]) } });
    await checkGrad({ op: 'ThresholdedRelu', inputs: { x: pick([-1, 0.2, 0.9, 1.1, 1.5, 2, -0.5, 3]) } });
  });

  it('Floor, Ceil, Round and Sign have no grad op', async () => {
    const registry = await createRegistry([]);
    for (const c of CASES.filter((c) => c.noGrad)) expect(registry.resolve('', c.op, 18).grad, c.op).toBe(false);
    await expect(checkGrad({ op: 'Floor', inputs: { x: f32([3], 1) } })).rejects.toThrow(/has no grad ops/);
  });
});

describe('registry and estimates', () => {
  it('each op resolves from opset 11 (or its first version) to 22', async () => {
    const registry = await createRegistry([]);
    const first: Record<string, number> = { Celu: 12, HardSwish: 14, Mish: 18 };
    for (const c of CASES) {
      for (let opset = first[c.op] ?? 11; opset <= 22; opset++) expect(() => registry.resolve('', c.op, opset), `${c.op} at ${opset}`).not.toThrow();
    }
  });

  it('every codelet names a PopLibs estimator family and scales with N', () => {
    const codelets = new CodeletRegistry();
    registerBuiltinCodelets(codelets);
    const mk2 = loadDevicePreset('mk2');
    const names = [...new Set(CASES.map((c) => c.op))].flatMap((op) => [op, `${op}Grad`]).filter((n) => codelets.has(n));
    expect(names.length).toBe(48); // 26 ops' codelets and the grad codelets of the 22 differentiable ones (not Floor, Ceil, Round, Sign)
    for (const name of names) {
      const c = codelets.get(name);
      expect(c.estimateSource, name).toMatch(/PopLibs (Unary|Binary)Op1D MultiVertex/);
      const est = (n: number) => c.cycles({ fields: Object.fromEntries(Object.keys(c.fields).map((f) => [f, { offset: 0, count: n, dtype: 'float32' as const }])), params: { alpha: 1, beta: 0.5, gamma: 1 } }, mk2);
      expect(est(2000), name).toBeGreaterThan(est(100));
    }
  });
});

// Also reachable from a one-op graph through runOurs (what `sim` runs).
it('Elu runs through runOurs with its default alpha', async () => {
  const y = (await runOurs({ op: 'Elu', inputs: { x: { shape: [2], data: Float32Array.from([-1, 1]) } } })).get('y')!;
  expect(y[0]).toBeCloseTo(Math.expm1(-1), 6);
  expect(y[1]).toBe(1);
});
