/** Shared fixtures: the tiny device, registries with the seed's LeakyRelu, small graphs. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDevicePreset } from '../src/config/devices.js';
import { Graph } from '../src/ir/graph.js';
import type { OpRegistry } from '../src/ir/registry.js';
import { createRegistry } from '../src/model/modules.js';
import { Rng } from '../src/util/random.js';
import type { DeviceSpec } from '../sim/device.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const LEAKY_MODULE = path.join(ROOT, 'examples/custom-ops/leaky-relu.ts');
/** Its codelet module: what the pool workers load. */
export const LEAKY_CODELETS = path.join(ROOT, 'examples/custom-ops/leaky-relu.codelets.ts');
export const EXAMPLE_CONFIG = path.join(ROOT, 'configs/examples/leaky-relu-train.yaml');

export function tiny(overrides: Partial<DeviceSpec> = {}): DeviceSpec {
  return { ...loadDevicePreset('tiny'), ...overrides };
}

export async function registryWithLeaky(): Promise<OpRegistry> {
  return createRegistry([LEAKY_MODULE]);
}

/** Uniform values in [low, high) whose magnitude is at least `gap` (keeps finite differences off kinks). */
export function randomData(n: number, seed: number, low = -1, high = 1, gap = 0): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    do v = r.uniform(low, high);
    while (Math.abs(v) < gap);
    out[i] = v;
  }
  return out;
}

export function variable(g: Graph, name: string, shape: number[], seed: number, gap = 0): void {
  const n = shape.reduce((a, b) => a * b, 1);
  g.addTensor(name, { dtype: 'float32', shape }, 'variable', { data: randomData(n, seed, -1, 1, gap), trainable: true });
}
