/**
 * A MobileNetV3-style detector, written as ONNX with onnx-proto, run end to
 * end through the config and session path (`model.onnx` in a YAML config,
 * compile, run: what `sim run` does) on a 16-tile device, against
 * onnxruntime-node on the same input:
 *
 *   stem      Conv 3x3/2 -> BatchNormalization -> HardSwish                     [1, 8, 16, 16]
 *   block     Conv 1x1 (expand) -> BN -> HardSwish -> depthwise Conv 3x3/2 -> BN
 *             -> squeeze-excite (GlobalAveragePool, Conv, Relu, Conv, HardSigmoid, Mul)
 *             -> Conv 1x1 (project) -> BN                                        [1, 16, 8, 8]
 *   block2    the same at stride 1 with a residual Add                           [1, 16, 8, 8]
 *   neck      ConvTranspose 2x2/2 and Resize x2 (nearest) of the block output,
 *             Concat with the stem                                               [1, 32, 16, 16]
 *   head      Conv 3x3 -> BN -> HardSwish, then Sigmoid(Conv 1x1) class scores [1, 3, 16, 16]
 *             and Conv 1x1 box offsets                                           [1, 4, 16, 16]
 *
 * Its Resize scales are an initializer: in an inference run every
 * initializer is a constant, to composites too.
 *
 * Tolerance |ours - ref| <= 1e-5 + 1e-4 |ref| (float32): eleven layers of
 * sums of up to 288 products, each rounded (AMP: products rounded before they
 * are summed) and summed in another order than onnxruntime's; the worst
 * error seen is 1.5e-7. A wrong pad, group, scale or resize rule moves
 * outputs by 1e-2 or more.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compile, run } from '../../src/session.js';
import { randomData } from '../helpers.js';
import { attr, f32, floatTensor, modelBytes, node, tempDir, type ModelSpec } from './helpers.js';

function detector(): Uint8Array {
  const inits: ReturnType<typeof floatTensor>[] = [];
  const nodes: ReturnType<typeof node>[] = [];
  let seed = 1;
  let k = 0;
  const w = (name: string, dims: number[], fanIn: number) => {
    const s = Math.sqrt(3 / fanIn);
    inits.push(floatTensor(name, dims, Array.from(randomData(dims.reduce((a, b) => a * b, 1), seed++, -s, s))));
    return name;
  };
  const vec = (name: string, n: number, low: number, high: number) => {
    inits.push(floatTensor(name, [n], Array.from(randomData(n, seed++, low, high))));
    return name;
  };
  const t = (base: string) => `${base}_${k++}`;
  const conv = (x: string, cin: number, cout: number, kernel: number, stride: number, group = 1, bias = false) => {
    const y = t('conv');
    const ws = w(`${y}_w`, [cout, cin / group, kernel, kernel], (cin / group) * kernel * kernel);
    const p = (kernel - 1) >> 1;
    nodes.push(node('Conv', bias ? [x, ws, vec(`${y}_b`, cout, -0.1, 0.1)] : [x, ws], [y], [attr.ints('strides', [stride, stride]), attr.ints('pads', [p, p, p, p]), attr.i('group', group)]));
    return y;
  };
  const bn = (x: string, c: number) => {
    const y = t('bn');
    nodes.push(node('BatchNormalization', [x, vec(`${y}_s`, c, 0.8, 1.2), vec(`${y}_b`, c, -0.1, 0.1), vec(`${y}_m`, c, -0.1, 0.1), vec(`${y}_v`, c, 0.5, 1.5)], [y]));
    return y;
  };
  const unary = (op: string, x: string, attrs: ReturnType<typeof attr.f>[] = []) => {
    const y = t(op.toLowerCase());
    nodes.push(node(op, [x], [y], attrs));
    return y;
  };
  const binary = (op: string, a: string, b: string) => {
    const y = t(op.toLowerCase());
    nodes.push(node(op, [a, b], [y]));
    return y;
  };
  const hardSigmoid = (x: string) => unary('HardSigmoid', x, [attr.f('alpha', 1 / 6), attr.f('beta', 0.5)]);
  const block = (x: string, c: number, expand: number, stride: number) => {
    let h = unary('HardSwish', bn(conv(x, c, expand, 1, 1), expand));
    h = bn(conv(h, expand, expand, 3, stride, expand), expand);
    const se = hardSigmoid(conv(unary('Relu', conv(unary('GlobalAveragePool', h), expand, 4, 1, 1, 1, true)), 4, expand, 1, 1, 1, true));
    h = binary('Mul', h, se);
    return bn(conv(h, expand, c === 8 ? 16 : c, 1, 1), 16);
  };

  const stem = unary('HardSwish', bn(conv('x', 3, 8, 3, 2), 8));
  const b1 = block(stem, 8, 16, 2);
  const b2 = binary('Add', b1, block(b1, 16, 32, 1));
  const up1 = t('convT');
  nodes.push(node('ConvTranspose', [b2, w(`${up1}_w`, [16, 8, 2, 2], 16), vec(`${up1}_b`, 8, -0.1, 0.1)], [up1], [attr.ints('strides', [2, 2])]));
  inits.push(floatTensor('scales', [4], [1, 1, 2, 2]));
  const up2 = t('resize');
  nodes.push(node('Resize', [b2, '', 'scales'], [up2], [attr.s('mode', 'nearest')]));
  const feat = t('concat');
  nodes.push(node('Concat', [stem, up1, up2], [feat], [attr.i('axis', 1)]));
  const head = unary('HardSwish', bn(conv(feat, 32, 16, 3, 1), 16));
  nodes.push(node('Sigmoid', [conv(head, 16, 3, 1, 1, 1, true)], ['cls']));
  nodes.push(node('Identity', [conv(head, 16, 4, 1, 1, 1, true)], ['box']));
  const spec: ModelSpec = { opset: 18, inputs: [f32('x', [1, 3, 32, 32])], outputs: [f32('cls', [1, 3, 16, 16]), f32('box', [1, 4, 16, 16])], initializers: inits, nodes };
  return modelBytes(spec);
}

describe('a MobileNetV3-style detector through the config and session path', () => {
  it('matches onnxruntime on a 16-tile device', async () => {
    const bytes = detector();
    const dir = tempDir();
    writeFileSync(path.join(dir, 'detector.onnx'), bytes);
    writeFileSync(
      path.join(dir, 'detector.yaml'),
      `name: detector
device: {preset: tiny, tiles: 16}
model:
  onnx: detector.onnx
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 11}}
anchors: {x: final, cls: final, box: final}
`,
    );
    const compiled = await compile(loadConfig(path.join(dir, 'detector.yaml')));
    // Every op of the detector runs on the device (nothing folded away but shapes).
    const types = new Set(compiled.graph.ops.map((o) => o.opid.type));
    for (const op of ['Conv', 'BatchNormalization', 'HardSwish', 'HardSigmoid', 'GlobalAveragePool', 'Mul', 'Gather', 'Concat']) expect(types, op).toContain(op);
    const r = await run(compiled, { workers: 1, numerics: true, steps: 1 });
    const x = r.anchors.get('x')!.data as Float32Array;
    const session = await ort.InferenceSession.create(bytes);
    const ref = await session.run({ x: new ort.Tensor('float32', x, [1, 3, 32, 32]) });
    await session.release();
    let worst = 0;
    for (const out of ['cls', 'box']) {
      const ours = r.anchors.get(out)!.data as Float32Array;
      const want = ref[out].data as Float32Array;
      expect(ours.length, out).toBe(want.length);
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(ours[i] - want[i]);
        worst = Math.max(worst, err);
        if (!(err <= 1e-5 + 1e-4 * Math.abs(want[i]))) expect.fail(`${out}[${i}]: ours ${ours[i]}, onnxruntime ${want[i]}`);
      }
      // The outputs are not degenerate: they vary across the image.
      expect(Math.max(...want) - Math.min(...want), `${out} range`).toBeGreaterThan(0.1);
    }
    console.log(`detector: worst |ours - onnxruntime| = ${worst.toExponential(2)}`);
  });
});
