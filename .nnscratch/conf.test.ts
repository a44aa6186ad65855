import { it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createRegistry } from '../src/model/modules.js';
import { runCase } from '../test/conformance/runner.js';
it('conf', async () => {
  const registry = await createRegistry([]);
  const root = '/work/shared/conformance/onnx-node';
  const re = /conv|pool|softmax|norm|gemm/i;
  const out: string[] = [];
  for (const d of readdirSync(root).filter((n) => re.test(n)).sort()) {
    const r = await runCase(path.join(root, d), registry);
    out.push(`${r.status.padEnd(12)} ${d} ${r.stage ?? ''} ${(r.reason ?? '').slice(0, 160)} ${r.worst ? JSON.stringify(r.worst) : ''}`);
  }
  const root2 = '/work/shared/conformance/onnx-pytorch-converted';
  for (const d of readdirSync(root2).filter((n) => n.startsWith('test_'))) {
    const r = await runCase(path.join(root2, d), registry);
    out.push(`${r.status.padEnd(12)} ${d} ${r.stage ?? ''} ${(r.reason ?? '').slice(0, 160)} ${r.worst ? JSON.stringify(r.worst) : ''}`);
  }
  console.log(out.join('\n'));
}, 300000);
