/**
 * `sim gradcheck`: for custom-op authors, one op's grad ops against central
 * finite differences, both run through the simulator (src/autodiff/gradcheck.ts).
 */
import { gradcheck, type GradcheckResult } from '../autodiff/gradcheck.js';
import { UserError } from '../errors.js';
import { Graph } from '../ir/graph.js';
import type { AttributeValue } from '../ir/op.js';
import { checkAttributes } from '../ir/registry.js';
import { createRegistry } from '../model/modules.js';
import { Rng } from '../util/random.js';
import type { DeviceSpec } from '../../sim/device.js';

export interface GradcheckCommand {
  modules: string[];
  /** domain::type, e.g. custom.ops::LeakyRelu */
  op: string;
  /** One shape per input, e.g. ["4x3", "3"]. */
  shapes: string[];
  attributes: Record<string, AttributeValue>;
  device: DeviceSpec;
  seed: number;
  tolerance: number;
  h: number;
}

export function parseShape(s: string): number[] {
  if (s === '' || s === 'scalar') return [];
  const dims = s.split(/[x,]/).map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new UserError(`--shapes: '${s}' is not a shape; write dimensions like 4x3 (or 'scalar')`);
  return dims;
}

export function parseAttribute(kv: string): [string, AttributeValue] {
  const at = kv.indexOf('=');
  if (at < 1) throw new UserError(`--attr: '${kv}' should be name=value (e.g. alpha=0.2, axes=0,1)`);
  const name = kv.slice(0, at);
  const raw = kv.slice(at + 1);
  const nums = raw.split(',').map(Number);
  if (nums.every((n) => Number.isFinite(n))) return [name, raw.includes(',') ? nums : nums[0]];
  return [name, raw];
}

export async function runGradcheck(c: GradcheckCommand): Promise<{ text: string; ok: boolean; results: GradcheckResult[] }> {
  const sep = c.op.lastIndexOf('::');
  if (sep < 0) throw new UserError(`--op: '${c.op}' should be domain::type, e.g. custom.ops::LeakyRelu`);
  const domain = c.op.slice(0, sep);
  const type = c.op.slice(sep + 2);
  const registry = await createRegistry(c.modules);
  const def = registry.resolve(domain, type, Number.MAX_SAFE_INTEGER);
  if (!def.create) throw new UserError(`${c.op} is a grad op; check the forward op it belongs to`);
  const shapes = c.shapes.map(parseShape);
  const graph = new Graph();
  const rng = new Rng(c.seed);
  const inputs = shapes.map((shape, i) => {
    const name = def.inputs?.[i]?.name ?? `in${i}`;
    const n = shape.reduce((a, b) => a * b, 1);
    // Values in +-[0.1, 1]: away from the kinks at 0 that piecewise ops (Relu-like, Abs) have.
    const data = new Float32Array(n).map(() => (rng.next() < 0.5 ? -1 : 1) * rng.uniform(0.1, 1));
    graph.addTensor(name, { dtype: 'float32', shape }, 'variable', { data, trainable: true });
    return name;
  });
  const attributes = checkAttributes(def, c.attributes, type);
  const op = def.create({ attributes, settings: { name: type } });
  const outputs = (def.outputs ?? [{ name: 'y' }]).map((o, i) => (i === 0 ? 'y' : `${o.name}_${i}`));
  graph.addOp(op, inputs, outputs);
  const results = await gradcheck(graph, 'y', inputs, { registry, device: c.device, h: c.h, seed: c.seed });
  const lines = [`gradcheck ${c.op} on ${c.device.name}: inputs ${inputs.map((n, i) => `${n}[${shapes[i].join('x')}]`).join(', ')}, h = ${c.h}, tolerance ${c.tolerance}`];
  let ok = true;
  for (const r of results) {
    const pass = r.maxAbsError <= c.tolerance;
    ok &&= pass;
    lines.push(
      `  ${pass ? 'ok  ' : 'FAIL'} d loss / d ${r.tensor}: max |analytic - numeric| = ${r.maxAbsError.toExponential(3)} ` +
        `at element ${r.worst.index} (analytic ${r.worst.analytic.toPrecision(6)}, numeric ${r.worst.numeric.toPrecision(6)}) over ${r.elements} elements`,
    );
  }
  lines.push(ok ? 'all grad ops agree with finite differences' : 'some grad ops disagree with finite differences');
  return { text: lines.join('\n'), ok, results };
}
