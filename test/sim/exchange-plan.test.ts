/**
 * Exchange copy plans (sim/exchange.ts): copies grouped by the worker owning
 * their destination tile, each group in the exchange's order; a copy reading
 * bytes another group writes keeps the whole exchange in one group; and the
 * engine gives the same tile memory with 1, 2 and 3 workers, on the pool or
 * inline, with the kernels or without, as copying one by one in order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyTable } from '../../sim/copies.js';
import { Engine, type EngineOptions } from '../../sim/engine.js';
import { planExchange } from '../../sim/exchange.js';
import { TileMemory } from '../../sim/memory.js';
import type { DeviceProgram, Exchange, ExchangeCopy } from '../../sim/program.js';
import { kernelModule } from '../../sim/wasm/kernels.js';
import { tiny } from '../helpers.js';
import { tensorIntervals } from '../../sim/intervals.js';

const TILES = 4;
const BYTES = 256;

const ex = (copies: ExchangeCopy[]): Exchange => ({ id: 0, name: 'ex', op: 'op', copies: copyTable(copies) });

/** Records of a plan as [src, dst, bytes] lists, group by group. */
function groupsOf(m: TileMemory, plan: NonNullable<ReturnType<typeof planExchange>>): number[][][] {
  const out: number[][][] = [];
  for (let g = 0; g + 1 < plan.bounds.length; g++) {
    const recs: number[][] = [];
    for (let r = plan.at + plan.bounds[g]; r < plan.at + plan.bounds[g + 1]; r++) recs.push([...m.plans.subarray(3 * r, 3 * r + 3)]);
    out.push(recs);
  }
  return out;
}

describe('planExchange', () => {
  it('groups copies by destination tile range, each group in the exchange order', () => {
    const m = new TileMemory([64, 64, 64, 64], { planRecords: 8 });
    // work per copy is bytes + 64: tiles 0 and 1 take 2 x 72 + 72 = 216 of 432, tiles 2 and 3 the rest
    const e = ex([
      { srcTile: 3, srcOffset: 0, dstTile: 1, dstOffset: 8, bytes: 8 },
      { srcTile: 0, srcOffset: 0, dstTile: 0, dstOffset: 32, bytes: 8 },
      { srcTile: 1, srcOffset: 0, dstTile: 3, dstOffset: 32, bytes: 8 },
      { srcTile: 0, srcOffset: 16, dstTile: 1, dstOffset: 16, bytes: 8 },
      { srcTile: 0, srcOffset: 24, dstTile: 2, dstOffset: 16, bytes: 8 },
      { srcTile: 0, srcOffset: 24, dstTile: 3, dstOffset: 40, bytes: 8 },
    ]);
    const plan = planExchange(e, m, 2)!;
    expect([...plan.bounds]).toEqual([0, 3, 6]);
    expect(plan.work).toBe(6 * 72);
    expect(groupsOf(m, plan)).toEqual([
      [
        [192, 72, 8],
        [0, 32, 8],
        [16, 80, 8],
      ],
      [
        [64, 224, 8],
        [24, 144, 8],
        [24, 232, 8],
      ],
    ]);
  });

  it('keeps one group in order when a copy reads bytes another group writes', () => {
    const m = new TileMemory([64, 64, 64, 64], { planRecords: 4 });
    // copy 0 writes tile 3 [0, 8); copy 1 (into tile 0, another group) reads tile 3 [4, 12): order matters
    const e = ex([
      { srcTile: 1, srcOffset: 0, dstTile: 3, dstOffset: 0, bytes: 8 },
      { srcTile: 3, srcOffset: 4, dstTile: 0, dstOffset: 0, bytes: 8 },
    ]);
    const plan = planExchange(e, m, 2)!;
    expect([...plan.bounds]).toEqual([0, 2]);
    expect(groupsOf(m, plan)).toEqual([
      [
        [64, 192, 8],
        [196, 0, 8],
      ],
    ]);
    // reading right next to the written bytes is no hazard
    const m2 = new TileMemory([64, 64, 64, 64], { planRecords: 4 });
    const ok = ex([
      { srcTile: 1, srcOffset: 0, dstTile: 3, dstOffset: 0, bytes: 8 },
      { srcTile: 3, srcOffset: 8, dstTile: 0, dstOffset: 0, bytes: 8 },
    ]);
    expect(planExchange(ok, m2, 2)!.bounds.length).toBe(3);
  });

  it('bounds-checks every copy once, when planning', () => {
    const m = new TileMemory([64, 64], { planRecords: 1 });
    expect(() => planExchange(ex([{ srcTile: 0, srcOffset: 60, dstTile: 1, dstOffset: 0, bytes: 8 }]), m, 1)).toThrow(/out of bounds: tile 0, bytes \[60, 68\)/);
  });

  it('has no room without records reserved: the engine then copies one by one', () => {
    const m = new TileMemory([64, 64], { planRecords: 0 });
    const two = ex([
      { srcTile: 0, srcOffset: 0, dstTile: 1, dstOffset: 0, bytes: 8 },
      { srcTile: 1, srcOffset: 8, dstTile: 0, dstOffset: 8, bytes: 8 },
    ]);
    expect(planExchange(two, m, 1)).toBeUndefined();
  });
});

/** One exchange of `copies` over 4 tiles of BYTES each, every tile's bytes streamed in first and all read after. */
function program(copies: ExchangeCopy[]): DeviceProgram {
  return {
    schemaVersion: 1,
    device: tiny(),
    tensors: [
      {
        id: 0,
        name: 'all',
        dtype: 'uint8',
        shape: [TILES * BYTES],
        category: 'variable',
        intervals: tensorIntervals(Array.from({ length: TILES }, (_, t) => ({ tile: t, begin: t * BYTES, end: (t + 1) * BYTES, offset: 0 }))),
      },
    ],
    computeSets: [],
    exchanges: [ex(copies)],
    streams: [],
    programs: { step: [{ kind: 'exchange', exchange: 0 }] },
    tileBytes: Array(TILES).fill(BYTES),
    codeletModules: [],
  };
}

/** The exchange's meaning: copies in order, one at a time. */
function reference(init: Uint8Array, copies: ExchangeCopy[]): number[] {
  const m = new Uint8Array(init);
  for (const c of copies) m.copyWithin(c.dstTile * BYTES + c.dstOffset, c.srcTile * BYTES + c.srcOffset, c.srcTile * BYTES + c.srcOffset + c.bytes);
  return [...m];
}

async function runExchange(copies: ExchangeCopy[], init: Uint8Array, options: EngineOptions): Promise<number[]> {
  const p = program(copies);
  const engine = await Engine.create(p, options);
  try {
    engine.write(p.tensors[0], init);
    await engine.run('step', { toDevice: () => new Uint8Array(0), fromDevice: () => {} }, 0);
    return [...engine.read(p.tensors[0])];
  } finally {
    await engine.destroy();
  }
}

const copyArb = fc
  .record({ srcTile: fc.nat(TILES - 1), dstTile: fc.nat(TILES - 1), bytes: fc.nat(48), srcOffset: fc.nat(BYTES), dstOffset: fc.nat(BYTES) })
  .map((c) => ({ ...c, srcOffset: Math.min(c.srcOffset, BYTES - c.bytes), dstOffset: Math.min(c.dstOffset, BYTES - c.bytes) }));

describe('exchanges in the engine', () => {
  it('1, 2 and 3 workers, pool or inline, give the copies-in-order result (overlaps and hazards included)', async () => {
    await kernelModule();
    const init = Uint8Array.from({ length: TILES * BYTES }, (_, i) => (i * 37 + 11) & 255);
    // a few fixed cases that stress the grouping, then random ones (a thread pool per case: keep them few)
    const cases: ExchangeCopy[][] = [
      // a chain across tiles: 3 <- 0, then 0 <- 3 reads what was just written
      [
        { srcTile: 0, srcOffset: 0, dstTile: 3, dstOffset: 0, bytes: 32 },
        { srcTile: 3, srcOffset: 16, dstTile: 0, dstOffset: 100, bytes: 32 },
      ],
      // many disjoint copies into every tile
      Array.from({ length: 40 }, (_, i) => ({ srcTile: i % TILES, srcOffset: 4 * i, dstTile: (i * 3 + 1) % TILES, dstOffset: 160 + (i % 24) * 4, bytes: 4 })),
      ...fc.sample(fc.array(copyArb, { minLength: 1, maxLength: 24 }), { numRuns: 3, seed: 9 }),
    ];
    for (const copies of cases) {
      const want = reference(init, copies);
      expect(await runExchange(copies, init, { workers: 1, numerics: true })).toEqual(want);
      for (const workers of [2, 3]) expect(await runExchange(copies, init, { workers, numerics: true, inlineBelow: 0 })).toEqual(want);
    }
  });
});
