/**
 * sim/shared-columns.ts: a program's columns moved into SharedArrayBuffers
 * keep their values, and a worker given them (as the pool's workerData gives
 * them) maps the same memory rather than a copy.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { copyTable } from '../../sim/copies.js';
import { isShared, shareColumns } from '../../sim/shared-columns.js';
import { vertexList, vertexTable } from '../../sim/vertex-table.js';

const table = () =>
  vertexTable([
    { codelet: 'Add', tile: 0, fields: { a: { offset: 0, count: 3, dtype: 'float32' }, out: [{ offset: 12, count: 3, dtype: 'float16' }] }, params: { k: 0.5 } },
    { codelet: 'Scale', tile: 1, fields: { a: { offset: 4, count: 1, dtype: 'int32' } }, params: {}, arrays: { shape: [1, 2] } },
  ]);

describe('shareColumns', () => {
  it('moves every column into shared memory, values and other properties unchanged, once', () => {
    const t = table();
    const copies = copyTable([{ srcTile: 0, srcOffset: 0, dstTile: 1, dstOffset: 8, bytes: 4 }]);
    const before = vertexList(t);
    const moved = shareColumns([t, copies]);
    expect(moved).toBeGreaterThan(0);
    for (const x of [t, copies]) for (const v of Object.values(x)) if (ArrayBuffer.isView(v)) expect(isShared(v)).toBe(true);
    expect(vertexList(t)).toEqual(before);
    expect([...copies.dstOffset]).toEqual([8]);
    // Already shared: nothing moves again.
    expect(shareColumns([t, copies])).toBe(0);
  });

  it('packs columns into buffers of at most the chunk size (a longer column gets its own), 8-byte aligned', () => {
    const t = { a: new Int32Array([1, 2, 3]), b: new Float64Array([0.5, 1.5]), c: new Uint8Array(40).fill(7), d: new Int32Array([9]) };
    shareColumns([t], 32);
    expect(t.a.buffer).toBe(t.b.buffer);
    expect(t.b.byteOffset % 8).toBe(0);
    expect(t.c.buffer).not.toBe(t.b.buffer);
    expect(t.d.buffer).not.toBe(t.c.buffer);
    expect([...t.a, ...t.b, t.c[39], ...t.d]).toEqual([1, 2, 3, 0.5, 1.5, 7, 9]);
  });

  it('a worker given the tables as workerData reads and writes the main thread\'s memory', async () => {
    const t = table();
    shareColumns([t]);
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const v = workerData.vertices;
       parentPort.postMessage({ shared: v.tile.buffer instanceof SharedArrayBuffer, tiles: [...v.tile] });
       v.regionOffset[0] = 1234;`,
      { eval: true, workerData: { vertices: t } },
    );
    const seen = await new Promise<{ shared: boolean; tiles: number[] }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(seen).toEqual({ shared: true, tiles: [0, 1] });
    // The worker's write is in the main thread's table: one memory, not a copy.
    expect(t.regionOffset[0]).toBe(1234);
  });
});
