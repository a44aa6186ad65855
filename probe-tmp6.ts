import { readFileSync } from 'node:fs';
import { createRegistry } from './src/model/modules.js';
import { parseOnnx } from './src/onnx/import.js';
import { buildGraph } from './src/model/build.js';
import { lowerGraph } from './src/lower/lower.js';
import { loadCodeletRegistry } from './sim/modules.js';
import { loadDevicePreset } from './src/config/devices.js';
const registry = await createRegistry([]);
const codelets = await loadCodeletRegistry([]);
const times = new Map<string, number>();
for (const d of registry.list()) {
  if (!d.lower) continue;
  const f = d.lower;
  d.lower = (op, ctx) => { const t0 = performance.now(); try { f(op, ctx); } finally { times.set(d.id.type, (times.get(d.id.type) ?? 0) + performance.now() - t0); } };
}
setInterval(() => console.log([...times].map(([k, v]) => `${k}:${Math.round(v)}`).join(' ')), 20000).unref();
const m = process.argv[2];
const file = `../shared/conformance/onnx-light/light_${m}.onnx`;
const { graph: decl } = parseOnnx(readFileSync(file), { file });
const t0 = Date.now();
const g = buildGraph(decl, registry);
console.log('built', Date.now() - t0);
const { program } = lowerGraph({ graph: g, schedule: g.schedule(), registry, codelets, device: loadDevicePreset('mk2'), anchors: decl.outputs, codeletModules: [] });
console.log('lowered', Date.now() - t0, Math.max(...program.tileBytes));
console.log([...times].map(([k, v]) => `${k}:${Math.round(v)}`).join(' '));
