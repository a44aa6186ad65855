/**
 * GatherND and ScatterND against onnxruntime-node, with the indices streamed
 * (computed at run time) on our side. onnxruntime takes only int64 indices,
 * which the harness gives it as a constant, so each case runs twice: ours
 * with streamed int32 indices (and once with constant ones), onnxruntime with
 * the same values as an int64 initializer. Index tuples of 1, 2 and all
 * axes, negative indices, batch_dims, float16 and int32 data, every
 * ScatterND reduction, on 1 tile and on 16. Moving values is exact (atol =
 * rtol = 0); scatter add and mul round once per update in onnxruntime and
 * once here: rtol 1e-6. Gradients against central finite differences
 * (2e-3 absolute, the harness default).
 */
import { describe, expect, it } from 'vitest';
import { checkGrad, f32, i32, runOrt, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const wide = tiny({ tilesPerIpu: 16 });
const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });

/** Ours with the indices streamed and constant, onnxruntime with them constant: every element within atol + rtol |ref|. */
async function check(c: OpCase, tol = { atol: 0, rtol: 0 }): Promise<void> {
  const constant: OpCase = { ...c, inputs: { ...c.inputs, i: { ...c.inputs.i, constant: true } } };
  const ref = (await runOrt(constant)).y;
  for (const ours of [await runOurs(c), await runOurs(constant)]) {
    const a = ours.get('y')!;
    expect(a.length).toBe(ref.length);
    for (let k = 0; k < a.length; k++) {
      const want = Number(ref[k]);
      if (a[k] !== want && !(Math.abs(a[k] - want) <= tol.atol + tol.rtol * Math.abs(want))) expect.fail(`${c.op} y[${k}]: ours ${a[k]}, onnxruntime ${want}`);
    }
  }
}

describe('GatherND', () => {
  it('tuples of 1, 2 and every axis, negative indices, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), wide]) {
      const x = f32([4, 5, 6], 1);
      await check({ op: 'GatherND', inputs: { x, i: i32([3, 1], [2, -1, 0]) }, device });
      await check({ op: 'GatherND', inputs: { x, i: i32([2, 2, 2], [0, 4, 3, -2, 1, 1, 2, 0]) }, device });
      await check({ op: 'GatherND', inputs: { x, i: i32([2, 3], [0, 4, 5, 3, -2, 1]) }, device });
    }
  });

  it('batch_dims 1, float16 and int32 data, opset 11', async () => {
    await check({ op: 'GatherND', opset: 13, attributes: { batch_dims: 1 }, inputs: { x: f32([3, 4, 5], 2), i: i32([3, 2, 1], [0, 3, 1, 1, 2, -1]) } });
    await check({ op: 'GatherND', inputs: { x: half(f32([4, 3], 3)), i: i32([2, 1], [3, 0]) }, outputDtype: 'float16' });
    await check({ op: 'GatherND', inputs: { x: i32([2, 2], [1, 2, 3, 4]), i: i32([2, 2], [1, 0, 0, 1]) }, outputDtype: 'int32' });
    await check({ op: 'GatherND', opset: 11, inputs: { x: f32([6, 2], 4), i: i32([4, 1], [5, 0, 5, 2]) } });
  });

  it('gradient (repeated tuples accumulate)', async () => {
    await checkGrad({ op: 'GatherND', inputs: { x: f32([4, 3, 2], 5), i: i32([3, 2], [1, 2, 3, 0, 1, 2], true) } });
  });
});

describe('ScatterND', () => {
  it('rows and single elements replaced, negative indices, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), wide]) {
      await check({ op: 'ScatterND', inputs: { x: f32([5, 4, 3], 6), i: i32([2, 1], [3, -5]), u: f32([2, 4, 3], 7) }, device });
      await check({ op: 'ScatterND', inputs: { x: f32([5, 4, 3], 8), i: i32([3, 3], [0, 0, 0, 4, 3, 2, -1, 1, 1]), u: f32([3], 9) }, device });
    }
  });

  it('reductions add, mul (16), max, min (18) with repeated tuples; float16', async () => {
    const i = i32([3, 1], [1, 3, 1]);
    for (const reduction of ['add', 'mul', 'max', 'min']) {
      await check({ op: 'ScatterND', opset: 18, attributes: { reduction }, inputs: { x: f32([4, 3], 10), i, u: f32([3, 3], 11) } }, { atol: 0, rtol: 1e-6 });
    }
    await check({ op: 'ScatterND', opset: 13, inputs: { x: half(f32([4, 2], 12)), i: i32([1, 1], [2]), u: half(f32([1, 2], 13)) }, outputDtype: 'float16' });
  });

  it('gradients to data and updates (reduction none)', async () => {
    await checkGrad({ op: 'ScatterND', inputs: { x: f32([4, 3], 14), i: i32([2, 1], [3, 0], true), u: f32([2, 3], 15) } });
  });
});
