import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createRegistry } from '../src/model/modules.js';
import { runCase } from '../test/conformance/runner.js';
const registry = await createRegistry([]);
const out: string[] = [];
for (const [root, re] of [['/work/shared/conformance/onnx-node', /conv|pool|softmax|norm|gemm/i], ['/work/shared/conformance/onnx-pytorch-converted', /^test_/]] as const) {
  for (const d of readdirSync(root).filter((n) => re.test(n)).sort()) {
    const r = await runCase(path.join(root, d), registry);
    out.push(`${r.status.padEnd(12)} ${d} ${r.stage ?? ''} ${(r.reason ?? '').slice(0, 200)} ${r.worst ? JSON.stringify(r.worst) : ''}`);
  }
}
console.log(out.join('\n'));
process.exit(0);
