import path from 'node:path';
import { createRegistry } from '../src/model/modules.js';
import { readOnnxFile, unsupportedNodes } from '../src/onnx/import.js';
import { buildGraph } from '../src/model/build.js';
import { lowerGraph } from '../src/lower/lower.js';
import { loadCodeletRegistry } from '../sim/modules.js';
import { loadDevicePreset } from '../src/config/devices.js';
const registry = await createRegistry([]);
const codelets = await loadCodeletRegistry([]);
const device = loadDevicePreset('mk2');
for (const name of process.argv.slice(2)) {
  const t0 = Date.now();
  const { graph } = readOnnxFile(path.join('/work/shared/conformance/onnx-light', `${name}.onnx`));
  const bad = unsupportedNodes(graph, registry);
  if (bad.length) { console.log(name, 'missing', [...new Set(bad.map((b) => b.op))].join(',')); continue; }
  const g = buildGraph(graph, registry);
  const t1 = Date.now();
  try {
    const { program } = lowerGraph({ graph: g, schedule: g.schedule(), registry, codelets, device, anchors: graph.outputs, codeletModules: [] });
    const max = Math.max(...program.tileBytes);
    console.log(name, `build ${t1 - t0} ms, lower ${Date.now() - t1} ms, max tile bytes ${max}, compute sets ${program.computeSets.length}`);
  } catch (e) {
    console.log(name, `build ${t1 - t0} ms, lower failed after ${Date.now() - t1} ms:`, (e as Error).message.split('\n').slice(0, 4).join(' | '));
  }
}
process.exit(0);
