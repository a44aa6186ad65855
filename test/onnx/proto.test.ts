/**
 * src/onnx/proto.ts keeps the ONNX enum codes the importer and exporter use,
 * so that onnx-proto is loaded only when a model is read or written: the
 * codes must be onnx-proto's own, and loading the config and compile
 * modules must not load it.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { AttributeType, DataLocation, DataType, onnxSchema } from '../../src/onnx/proto.js';

describe('the ONNX schema', () => {
  it("keeps the spec's enum codes, the same as onnx-proto's", () => {
    const onnx = onnxSchema();
    const named = (e: object) => Object.fromEntries(Object.entries(e).filter(([k]) => Number.isNaN(Number(k))));
    expect(DataType).toEqual(named(onnx.TensorProto.DataType));
    expect(AttributeType).toEqual(named(onnx.AttributeProto.AttributeType));
    expect(DataLocation).toEqual(named(onnx.TensorProto.DataLocation));
  });

  it('is not loaded by a YAML-graph compile, only when a model is read', () => {
    // A fresh Node over the built modules (dist/, as `sim` runs): which packages did it load?
    const script = `
      import { createRequire } from 'node:module';
      const { loadConfig } = await import('./dist/src/config/load.js');
      const { compile } = await import('./dist/src/session.js');
      await compile(loadConfig('configs/examples/leaky-relu-infer.yaml'));
      const loaded = (p) => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/' + p + '/'));
      const before = loaded('onnx-proto');
      await compile(loadConfig('configs/examples/mlp-onnx.yaml'));
      console.log(JSON.stringify({ before, after: loaded('onnx-proto') }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: createRequire(import.meta.url).resolve('../../package.json').replace(/package\.json$/, ''), encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ before: false, after: true });
  });
});
