/**
 * The embedding lookup (Gather with runtime indices) as PopLibs' multiSlice
 * and its gradient as multiUpdateAdd, on the plan of src/lower/slice-planner.ts:
 *   - random table shapes, index shapes and devices (the tiny device, a
 *     64-tile mk2; with a tiny availableMemoryProportion the planner takes
 *     its most split plan, so row and column splits are both exercised)
 *     agree with onnxruntime exactly;
 *   - the gradient agrees with central finite differences, repeated indices
 *     included, and dTable is mapped like the table (no exchange for SGD);
 *   - the table is created where the lookup reads it: no exchange copies
 *     table bytes, and on a full mk2 a [30522, 768] float16 lookup's memory
 *     per tile stays below table / tiles + a stated bound.
 */
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { loadConfigText } from '../../src/config/load.js';
import type { GraphDecl } from '../../src/config/types.js';
import { planSlice, planC } from '../../src/lower/slice-planner.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { compile } from '../../src/session.js';
import { copyList } from '../../sim/copies.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES, type DeviceProgram } from '../../sim/program.js';
import { ROOT, tiny } from '../helpers.js';
import { checkForward, f32, i32, type TensorSpec } from './harness.js';
import { intervalList } from '../../sim/intervals.js';

const EXACT = { atol: 0, rtol: 0 };
const mk64 = (over: Partial<DeviceSpec> = {}): DeviceSpec => ({ ...loadDevicePreset('mk2'), tilesPerIpu: 64, ...over });
/** availableMemoryProportion so small that no plan fits: the planner takes the one needing the fewest bytes per tile (the most split). */
const SPLIT = { availableMemoryProportion: 1e-4 };
const DEVICES: Record<string, () => DeviceSpec> = {
  tiny: () => tiny(),
  'tiny, most split': () => tiny(SPLIT),
  mk64: () => mk64(),
  'mk64, most split': () => mk64(SPLIT),
};

/** Byte ranges of tensor `name` on each tile. */
function bytesOf(p: DeviceProgram, name: string): Map<number, [number, number][]> {
  const t = p.tensors.find((x) => x.name === name)!;
  const out = new Map<number, [number, number][]>();
  for (const i of intervalList(t.intervals)) {
    const list = out.get(i.tile) ?? [];
    list.push([i.offset, i.offset + (i.end - i.begin) * DTYPE_BYTES[t.dtype]]);
    out.set(i.tile, list);
  }
  for (const list of out.values()) list.sort((a, b) => a[0] - b[0]);
  return out;
}

/** Exchange copies (of the ops matching `op`) that read bytes of tensor `name`. */
function copiesReading(p: DeviceProgram, name: string, op: RegExp): number {
  const at = bytesOf(p, name);
  let n = 0;
  for (const e of p.exchanges) {
    if (!op.test(e.op)) continue;
    for (const c of copyList(e.copies)) {
      const list = at.get(c.srcTile);
      if (!list) continue;
      // First range ending after the copy's start.
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid][1] <= c.srcOffset) lo = mid + 1;
        else hi = mid;
      }
      if (lo < list.length && list[lo][0] < c.srcOffset + c.bytes) n++;
    }
  }
  return n;
}

interface LookupCase {
  V: number;
  H: number;
  idxShape: number[];
  idx: number[];
  seed: number;
}

const lookupCase = fc
  .record({
    V: fc.integer({ min: 1, max: 90 }),
    H: fc.integer({ min: 1, max: 40 }),
    idxShape: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 2 }),
    seed: fc.integer({ min: 1, max: 1000 }),
  })
  .chain((c) => {
    const n = c.idxShape.reduce((a, b) => a * b, 1);
    return fc.array(fc.integer({ min: -c.V, max: c.V - 1 }), { minLength: n, maxLength: n }).map((idx): LookupCase => ({ ...c, idx }));
  });

/** Gradient check with a streamed int32 index input (the harness's checkGrad only feeds constants). */
async function checkLookupGrad(table: TensorSpec, idxShape: number[], idx: number[], device: DeviceSpec, axis = 0) {
  const registry = await createRegistry([]);
  const loc = { file: '<lookup grad test>', line: 1, col: 1 };
  const decl = {
    inputs: [{ name: 'idx', shape: idxShape, dtype: 'int32', loc }],
    initializers: [{ name: 'table', shape: table.shape, dtype: 'float32', loc, init: { kind: 'data', data: table.data }, trainable: true }],
    nodes: [{ op: 'Gather', domain: '', name: 'Gather_0', inputs: ['table', 'idx'], outputs: ['y'], attributes: { axis }, loc }],
    outputs: ['y'],
    opset: 18,
  } as GraphDecl;
  const graph = buildGraph(decl, registry);
  graph.tensor('idx').data = Int32Array.from(idx);
  const [r] = await gradcheck(graph, 'y', ['table'], { registry, device });
  expect(r.maxAbsError, `worst element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(2e-3);
  return r;
}

describe('embedding lookup: multiSlice plan', () => {
  it('random tables, index shapes and devices agree with onnxruntime exactly (fast-check), row and column splits both exercised', async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(lookupCase, fc.constantFrom(...Object.keys(DEVICES)), async (c, dev) => {
        const device = DEVICES[dev]();
        const p = planSlice({ outer: 1, axisSize: c.V, inner: c.H, numIdx: c.idx.length, dtype: 'float32' }, device);
        seen.add(`${p.R > 1 ? 'rows' : ''}${planC(p) > 1 ? 'cols' : ''}`);
        await checkForward({ op: 'Gather', device, inputs: { table: f32([c.V, c.H], c.seed), idx: i32(c.idxShape, c.idx) }, ...EXACT });
      }),
      { numRuns: 16, seed: 8, examples: [[{ V: 60, H: 20, idxShape: [3, 4], idx: [0, 59, -1, 7, 7, 30, 31, 2, 58, -60, 12, 0], seed: 3 }, 'mk64, most split']] },
    );
    // Every kind of plan came up: unsplit, rows only, columns only, both.
    expect([...seen].sort()).toEqual(['', 'cols', 'rows', 'rowscols']);
  }, 120_000);

  it('float16 and int32 tables, and a gather along a middle axis (outer > 1) with row and column splits', async () => {
    const half = { ...f32([50, 12], 5, 0, -8, 8), dtype: 'float16' as const };
    await checkForward({ op: 'Gather', device: mk64(SPLIT), inputs: { table: half, idx: i32([6], [1, 49, 1, -3, 0, 20]) }, outputDtype: 'float16', ...EXACT });
    const ints = { shape: [30, 4], data: Int32Array.from({ length: 120 }, (_, i) => i * 7 - 300) };
    await checkForward({ op: 'Gather', device: tiny(SPLIT), inputs: { table: ints, idx: i32([5], [29, 0, -1, 3, 3]) }, outputDtype: 'int32', ...EXACT });
    for (const device of [tiny(SPLIT), mk64(SPLIT), mk64()]) {
      await checkForward({ op: 'Gather', device, attributes: { axis: 1 }, inputs: { x: f32([3, 7, 10], 9), idx: i32([2, 2], [6, 0, -2, 6]) }, ...EXACT });
      await checkForward({ op: 'Gather', device, attributes: { axis: 2 }, inputs: { x: f32([2, 3, 9], 10), idx: i32([4], [8, 0, 4, -9]) }, ...EXACT });
    }
  }, 60_000);

  it('the gradient adds dOut rows at their indices (repeats accumulate), against finite differences, on split plans', async () => {
    for (const device of [tiny(), tiny(SPLIT), mk64(SPLIT)]) {
      const r = await checkLookupGrad(f32([12, 6], 21), [2, 4], [3, 11, 3, 0, 3, -1, 5, 3], device);
      // Row 3 is gathered four times, row 7 never.
      expect(Math.max(...r.analytic.slice(3 * 6, 4 * 6).map(Math.abs))).toBeGreaterThan(1e-2);
      expect(r.analytic.slice(7 * 6, 8 * 6).every((v) => v === 0)).toBe(true);
    }
    await checkLookupGrad(f32([3, 5, 4], 22), [3], [4, 0, 4], mk64(SPLIT), 1);
  }, 120_000);

  it('a random gradient case (fast-check): random tables, repeated indices, most split plans', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 14 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 500 }),
        fc.boolean(),
        async (V, H, n, seed, big) => {
          const idx = Array.from({ length: n }, (_, i) => ((i * 5 + seed) % V) - (i % 2 ? V : 0));
          idx.push(idx[0]); // a repeat, always
          await checkLookupGrad(f32([V, H], seed), [idx.length], idx, big ? mk64(SPLIT) : tiny(SPLIT));
        },
      ),
      { numRuns: 4, seed: 9 },
    );
  }, 120_000);
});

describe('embedding lookup: the table lives where the plan reads it', () => {
  const config = (device: string, V: number, H: number, dtype: string, train: boolean) => `
name: lookup
device: ${device}
model:
  graph:
    inputs:
      ids: {shape: [128], dtype: int32}
    initializers:
      table: {shape: [${V}, ${H}], dtype: ${dtype}, init: {normal: {std: 0.02, seed: 1}}}
    nodes:
      - {op: Gather, inputs: [table, ids], outputs: [y]}
    outputs: [y]
inputs:
  ids: {random: {distribution: integers, low: 0, high: ${V}, seed: 2}}
${train ? 'train: {loss: {type: l1, input: y, scale: 1.0, reduction: mean}, optimizer: {type: sgd, lr: 0.01}, steps: 1}' : ''}
`;
  const load = (text: string) => loadConfigText(text, path.join(ROOT, 'test/ops/lookup.yaml'), { numerics: false });

  it('training on 64 tiles: the table, dTable and the SGD update share one mapping; no exchange copies table rows', async () => {
    const c = await compile(load(config('{preset: mk2, tiles: 64}', 3000, 96, 'float32', true)));
    const p = c.program;
    const table = p.tensors.find((t) => t.name === 'table')!;
    const grad = p.tensors.find((t) => (t.op ?? '').includes('GatherGrad') && t.shape.join() === '3000,96')!;
    expect(grad).toBeDefined();
    const tiles = (t: typeof table) => intervalList(t.intervals).map((i) => `${i.tile}:${i.begin}-${i.end}`).join();
    expect(tiles(grad)).toBe(tiles(table));
    expect(new Set(intervalList(table.intervals).map((i) => i.tile)).size).toBeGreaterThan(32);
    expect(p.notes!.some((n) => n.kind === 'layout' && /input 0 'table' is created where this op reads it/.test(n.text))).toBe(true);
    expect(copiesReading(p, 'table', /./)).toBe(0);
    // The SGD update of the table reads table and gradient in place.
    const updates = p.exchanges.filter((e) => /SGD|Sgd|sgd|VarUpdate/.test(e.op) && e.copies.count > 0);
    for (const e of updates) expect(copiesReading(p, table.name, new RegExp(e.op.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))).toBe(0);
    expect(copiesReading(p, grad.name, /SGD|Sgd|sgd|VarUpdate/)).toBe(0);
  }, 60_000);

  it('a [30522, 768] float16 table on a full mk2: memory per tile below table / tiles + a bound, no exchange of table rows', async () => {
    const V = 30522;
    const H = 768;
    const c = await compile(load(config('mk2', V, H, 'float16', false)));
    const p = c.program;
    const tiles = p.device.tilesPerIpu;
    const tableBytes = V * H * 2;
    const plan = planSlice({ outer: 1, axisSize: V, inner: H, numIdx: 128, dtype: 'float16' }, p.device);
    const cols = Math.max(...plan.colBounds.slice(1).map((b, i) => b - plan.colBounds[i]));
    // The bound, each term stated:
    //   indices: the ids stream's share and each tile's copy of all 128 (int32);
    //   output rows: the tile's partial (128 rows x its columns), the partials of its combine block
    //     from every row group, and its block of the output;
    //   vertex state: 8 bytes per table row of its block (one region each: tensors are flat, a
    //     column block is a region per row), 16 per row group (the combine's parts and their
    //     arrays), 256 for the rest; code: three codelets;
    //   rounding: blocks are whole rows and whole grains, so a block may exceed table / tiles by
    //     rowsPer x (widest columns) - table / tiles.
    const indices = 2 * 128 * 4;
    const partial = 128 * cols * 2;
    const combine = plan.R * plan.rowsPerBlock * cols * 2 + plan.rowsPerBlock * cols * 2;
    const vertexState = plan.rowsPer * 8 + plan.R * 16 + 256;
    const code = 3 * p.device.codeBytesPerCodelet;
    const rounding = Math.max(0, plan.rowsPer * cols * 2 - tableBytes / tiles);
    const bound = indices + partial + combine + vertexState + code + rounding;
    const worst = Math.max(...p.memory!.map((m) => m.total));
    expect(worst).toBeLessThanOrEqual(tableBytes / tiles + bound);
    // And the bound is a small fraction of a tile (the old lookup brought the whole 47 MB table to every output tile).
    expect(bound).toBeLessThan(p.device.bytesPerTile / 8);
    expect(copiesReading(p, 'table', /./)).toBe(0);
    // Report the numbers (the check), for the log.
    console.log(
      `lookup [${V}, ${H}] fp16 on ${tiles} tiles: plan ${plan.R} x ${planC(plan)}, table/tile ${Math.round(tableBytes / tiles)} B, ` +
        `bound ${bound} B, worst tile ${worst} B (${JSON.stringify(p.memory![p.memory!.findIndex((m) => m.total === worst)])})`,
    );
  }, 120_000);
});
