import { readFileSync } from 'node:fs';
import { createRegistry } from './src/model/modules.js';
import { parseOnnx, unsupportedNodes } from './src/onnx/import.js';
import { buildGraph } from './src/model/build.js';
import { lowerGraph } from './src/lower/lower.js';
import { loadCodeletRegistry } from './sim/modules.js';
import { loadDevicePreset } from './src/config/devices.js';
const registry = await createRegistry([]);
const codelets = await loadCodeletRegistry([]);
for (const m of process.argv.slice(2)) {
  const file = `../shared/conformance/onnx-light/light_${m}.onnx`;
  try {
    const { graph: decl } = parseOnnx(readFileSync(file), { file });
    const bad = unsupportedNodes(decl, registry);
    if (bad.length) { console.log(m, 'unsupported', [...new Set(bad.map((b) => b.op))].join(',')); continue; }
    const ops = new Map<string, number>();
    for (const n of decl.nodes) ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
    console.log(m, [...ops].map(([k, v]) => `${k}:${v}`).join(' '));
    const g = buildGraph(decl, registry);
    const t0 = Date.now();
    const { program } = lowerGraph({ graph: g, schedule: g.schedule(), registry, codelets, device: loadDevicePreset('mk2'), anchors: decl.outputs, codeletModules: [] });
    console.log(m, 'lowered in', Date.now() - t0, 'ms; max tile bytes', Math.max(...program.tileBytes));
    for (const n of program.notes ?? []) if (/rearrange|gather/.test(n.kind)) console.log('   ', n.op, n.text.slice(0, 160));
  } catch (e) { console.log(m, 'error', (e as Error).message.split('\n').slice(0, 2).join(' | ')); }
}
