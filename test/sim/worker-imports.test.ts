/**
 * A pool worker runs device code only (issue 11): it loads sim/ and the
 * codelet modules, never src/ (the host side) or an op module. The module
 * graph is recorded in a worker started as the pool starts its own (sim/worker.ts
 * through tsx), by a module hook logging every URL it loads, plus the
 * CommonJS require cache.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { FaultRecord } from '../../sim/faults.js';
import type { WorkerInit } from '../../sim/worker.js';
import { LEAKY_CODELETS, LEAKY_MODULE, ROOT } from '../helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-worker-imports-'));

/** Starts a worker, runs its 'load' task with these codelet modules; the files it loaded and its fault. */
async function probe(modules: string[], name: string): Promise<{ files: string[]; fault: FaultRecord | null }> {
  const log = path.join(tmp, `${name}.log`);
  writeFileSync(log, '');
  const init: WorkerInit = {
    replicas: [{ memory: new SharedArrayBuffer(1024), sharedPlans: undefined }],
    kernels: undefined,
    threads: 2,
    slots: new SharedArrayBuffer(4),
    tileBytes: [64],
    planRecords: 0,
    computeSets: [],
    modules,
    progress: new SharedArrayBuffer(4),
    claims: new SharedArrayBuffer(4),
  };
  const worker = new Worker(new URL('../fixtures/worker-probe/probe.mjs', import.meta.url), {
    workerData: { ...init, log, worker: pathToFileURL(path.join(ROOT, 'sim/worker.ts')).href },
  });
  try {
    const { fault, cjs } = await new Promise<{ fault: FaultRecord | null; cjs: string[] }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const esm = readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u.split('?')[0]));
    return { files: [...new Set([...esm, ...cjs.filter((k) => path.isAbsolute(k))])], fault };
  } finally {
    await worker.terminate();
  }
}

describe('a pool worker loads device code only', () => {
  it('the seed codelet module and sim/, nothing from src/ and not the op module', async () => {
    const { files, fault } = await probe([LEAKY_CODELETS], 'seed');
    expect(fault).toBeNull();
    const ours = files.filter((f) => f.startsWith(ROOT + path.sep) && !f.includes(`${path.sep}node_modules${path.sep}`)).map((f) => path.relative(ROOT, f));
    // The recording sees the graph: the worker, the codelet module and the device entry it imports.
    expect(ours).toEqual(expect.arrayContaining(['sim/worker.ts', 'sim/execute.ts', 'sim/device-api.ts', 'examples/custom-ops/leaky-relu.codelets.ts']));
    expect(ours.filter((f) => !f.startsWith(`sim${path.sep}`) && f !== 'examples/custom-ops/leaky-relu.codelets.ts')).toEqual([]);
    expect(files).not.toContain(LEAKY_MODULE);
  });

  it("a codelet module importing 'tilesim' (the host API) is refused, saying what it may import", async () => {
    const bad = path.join(tmp, 'bad.codelets.ts');
    writeFileSync(bad, "import { Op } from 'tilesim';\nexport default [Op];\n");
    const { files, fault } = await probe([bad], 'bad');
    expect(fault?.kind).toBe('import');
    expect(fault?.module).toBe(bad);
    expect(fault?.what).toContain(`${bad} imports 'tilesim' (the host API), but it runs in the pool workers as a codelet module: a codelet module may import only 'tilesim/device'`);
    expect(files.filter((f) => f.startsWith(path.join(ROOT, 'src') + path.sep))).toEqual([]);
  });
});
