/**
 * The cycle model of a superstep (ipu-architecture.md §2, sim/cost.ts):
 * compute sets, worker list scheduling, exchanges and host stream copies.
 * Expected values are worked out by hand from the formulas.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodeletRegistry, type Codelet } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { busOf, computeSetCost, exchangeCost, scheduleWorkers, streamCopyCycles, type PhaseCost } from '../../sim/cost.js';
import type { ComputeSet, Exchange, ExchangeCopy, Vertex } from '../../sim/program.js';
import { tiny } from '../helpers.js';
import { copyTable, type CopyTable } from '../../sim/copies.js';
import type { DeviceSpec } from '../../sim/device.js';
import { vertexTable } from '../../sim/vertex-table.js';

/** Codelets whose estimate is the vertex's `c` param: 'Job' on one worker, 'Multi' on all of them. */
function fixedCost(name: string, kind: 'multi' | 'worker'): Codelet {
  return { name, kind, fields: {}, compute: () => {}, cycles: (v) => v.params.c };
}

function registry(): CodeletRegistry {
  const r = new CodeletRegistry();
  r.add(fixedCost('Job', 'worker'));
  r.add(fixedCost('Multi', 'multi'));
  registerBuiltinCodelets(r);
  return r;
}

const job = (tile: number, c: number): Vertex => ({ codelet: 'Job', tile, fields: {}, params: { c } });
const multi = (tile: number, c: number): Vertex => ({ codelet: 'Multi', tile, fields: {}, params: { c } });
const cs = (vertices: Vertex[]): ComputeSet => ({ id: 0, name: 'cs', op: 'Op', vertices: vertexTable(vertices) });
const ex = (copies: Omit<ExchangeCopy, 'srcOffset' | 'dstOffset'>[]): Exchange => ({
  id: 0,
  name: 'ex',
  op: 'Op',
  copies: copyTable(copies.map((c) => ({ ...c, srcOffset: 0, dstOffset: 0 }))),
});

describe('scheduleWorkers (longest processing time first)', () => {
  it('is 0 with no jobs and the longest job when there are fewer jobs than workers', () => {
    expect(scheduleWorkers([], 6)).toBe(0);
    expect(scheduleWorkers([4, 9, 1], 6)).toBe(9);
    expect(scheduleWorkers([5], 1)).toBe(5);
  });

  it('sums everything on one worker', () => {
    expect(scheduleWorkers([3, 1, 4, 1, 5], 1)).toBe(14);
  });

  it('[3, 3, 2, 2, 2] on 2 workers: LPT gives 7 (the optimum is 6)', () => {
    // 3 -> w0 (3), 3 -> w1 (3), 2 -> w0 (5), 2 -> w1 (5), 2 -> w0 (7)
    expect(scheduleWorkers([3, 3, 2, 2, 2], 2)).toBe(7);
    expect(scheduleWorkers([2, 2, 3, 2, 3], 2)).toBe(7); // input order does not matter
  });

  it("[5, 5, 4, 4, 3, 3, 3] on 3 workers: LPT's worst case, 11 (the optimum is 9)", () => {
    // 5, 5, 4 -> [5, 5, 4]; 4 -> w2 (8); 3 -> w0 (8); 3 -> w1 (8); 3 -> w0 (11)
    expect(scheduleWorkers([3, 4, 5, 3, 4, 3, 5], 3)).toBe(11);
  });

  it('seven 12s and a 6 on 6 workers: 24', () => {
    // six workers take a 12 each; the 7th 12 goes to w0 (24), the 6 to w1 (18)
    expect(scheduleWorkers([6, 12, 12, 12, 12, 12, 12, 12], 6)).toBe(24);
  });

  it('does not reorder the caller\'s array', () => {
    const jobs = [1, 5, 3];
    scheduleWorkers(jobs, 2);
    expect(jobs).toEqual([1, 5, 3]);
  });

  it('lies between the lower bounds and LPT\'s guarantee (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (jobs, w) => {
        const m = scheduleWorkers(jobs, w);
        const sum = jobs.reduce((a, b) => a + b, 0);
        const longest = jobs.length ? Math.max(...jobs) : 0;
        // Nothing beats the longest job or a perfect split; list scheduling is within one job of the split.
        expect(m).toBeGreaterThanOrEqual(Math.max(longest, Math.ceil(sum / w)));
        expect(m).toBeLessThanOrEqual(sum / w + longest);
      }),
      { numRuns: 300 },
    );
  });
});

describe('computeSetCost', () => {
  const dev = tiny(); // W = 6, supervisorOverheadCycles = 11

  it('adds supervisor overhead, MultiVertex estimates and W x the LPT makespan; the phase is the slowest tile', () => {
    const c = computeSetCost(
      cs([
        // tile 3: MultiVertices 100 + 40; worker jobs seven 12s and a 6 -> makespan 24
        multi(3, 100),
        ...Array.from({ length: 7 }, () => job(3, 12)),
        multi(3, 40),
        job(3, 6),
        // tile 0: one 8-cycle worker vertex
        job(0, 8),
        // tile 1: one 500-cycle MultiVertex
        multi(1, 500),
      ]),
      registry(),
      dev,
    );
    // tile 0: 11 + 0 + 6 x 8 = 59
    // tile 1: 11 + 500 + 6 x 0 = 511
    // tile 3: 11 + (100 + 40) + 6 x 24 = 295
    expect(c.tiles).toEqual([
      [0, 59],
      [1, 511],
      [3, 295],
    ]);
    expect(c.cycles).toBe(511);
  });

  it('the busiest worker decides, not the sum of worker vertices', () => {
    // six jobs of 10 on one tile run side by side: 11 + 6 x 10 = 71 (not 11 + 6 x 60)
    const c = computeSetCost(cs(Array.from({ length: 6 }, () => job(2, 10))), registry(), dev);
    expect(c).toEqual({ cycles: 71, tiles: [[2, 71]] });
  });

  it('takes W and the supervisor overhead from the preset', () => {
    const d = tiny({ workersPerTile: 4, supervisorOverheadCycles: 7 });
    // 4 workers: four 12s, then three more 12s on w0..w2 (24), the 6 on w3 (18) -> 24
    // 7 + 0 + 4 x 24 = 103
    const c = computeSetCost(cs([...Array.from({ length: 7 }, () => job(0, 12)), job(0, 6)]), registry(), d);
    expect(c).toEqual({ cycles: 103, tiles: [[0, 103]] });
  });

  it('is zero for an empty compute set', () => {
    expect(computeSetCost(cs([]), registry(), dev)).toEqual({ cycles: 0, tiles: [] });
  });

  it('costs the built-in Add from its field sizes', () => {
    const out = { offset: 0, count: 100, dtype: 'float32' as const };
    const v: Vertex = { codelet: 'Add', tile: 1, fields: { a: out, b: out, out }, params: { offset: 0 } };
    // a and out are the very same region: the in-place variant (BinaryOp1DInPlace, base 58).
    // BinaryOp1D float32, N = 100: 6 x (58 + ceil(17/2) x 3) + 11 = 521; + 11 supervisor = 532
    expect(computeSetCost(cs([v]), registry(), dev)).toEqual({ cycles: 532, tiles: [[1, 532]] });
  });

  it('names an unknown codelet', () => {
    expect(() => computeSetCost(cs([{ codelet: 'Nope', tile: 0, fields: {}, params: {} }]), registry(), dev)).toThrow(/no codelet 'Nope'/);
  });
});

describe('exchangeCost', () => {
  const dev = tiny(); // exchangeBytesPerCycle = 4

  it('charges each tile ceil(max(sent, received) / 4) and the phase the busiest tile', () => {
    const c = exchangeCost(
      ex([
        { srcTile: 0, dstTile: 1, bytes: 10 },
        { srcTile: 0, dstTile: 2, bytes: 7 },
        { srcTile: 3, dstTile: 1, bytes: 5 },
        { srcTile: 2, dstTile: 2, bytes: 1000 }, // on-tile: free
      ]),
      dev,
    );
    // tile 0 sends 17 -> ceil(17/4) = 5; tile 1 receives 15 -> 4; tile 2 receives 7 -> 2; tile 3 sends 5 -> 2
    expect(c.tiles).toEqual([
      [0, 5],
      [1, 4],
      [2, 2],
      [3, 2],
    ]);
    expect(c.cycles).toBe(5);
  });

  it('sends and receives on separate ports: max, not sum', () => {
    // each tile sends 8 and receives 8: ceil(8/4) = 2 cycles, not 4
    const c = exchangeCost(
      ex([
        { srcTile: 0, dstTile: 1, bytes: 8 },
        { srcTile: 1, dstTile: 0, bytes: 8 },
      ]),
      dev,
    );
    expect(c).toEqual({ cycles: 2, tiles: [[0, 2], [1, 2]] });
  });

  it('is free when every copy stays on its tile, and zero when empty', () => {
    expect(exchangeCost(ex([{ srcTile: 3, dstTile: 3, bytes: 4096 }]), dev)).toEqual({ cycles: 0, tiles: [] });
    expect(exchangeCost(ex([]), dev)).toEqual({ cycles: 0, tiles: [] });
  });

  it('uses the preset bandwidth', () => {
    // 17 bytes at 16 B/cycle: ceil(17/16) = 2
    const c = exchangeCost(ex([{ srcTile: 0, dstTile: 1, bytes: 17 }]), tiny({ exchangeBytesPerCycle: 16 }));
    expect(c.cycles).toBe(2);
  });
});

/**
 * The exchange model read straight off its statement (sim/cost.ts header), copy by copy, to check
 * exchangeCost's grouping (message tables, stride and fan columns, hashing per source tile) against:
 * each run of each row to each destination but its source tile is a copy; copies of the same data
 * (source tile, offset, bytes) are one message, sent once; a receiver is charged bytes / k where k of the
 * message's distinct receivers share its bus. Charges are counted in units of 1/L byte (L = lcm(1..bus
 * size)), integers, so the sums are exact in any order.
 */
function directExchangeCost(t: CopyTable, device: DeviceSpec): PhaseCost {
  const numTiles = device.ipus * device.tilesPerIpu;
  let L = 1;
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  for (let k = 2; k <= device.tilesPerSharedBus; k++) L = (L * k) / gcd(L, k);
  const messages = new Map<string, { src: number; bytes: number; to: number[] }>();
  for (let i = 0; i < t.count; i++) {
    const g = t.fan ? t.fan.group[i] : -1;
    const dests = g < 0 ? [t.dstTile[i]] : Array.from(t.fan!.tile.subarray(t.fan!.start[g], t.fan!.start[g + 1]));
    for (let k = 0; k < (t.runs ? t.runs[i] : 1); k++) {
      for (const d of dests) {
        if (t.bytes[i] === 0 || d === t.srcTile[i]) continue;
        const key = `${t.srcTile[i]}:${t.srcOffset[i] + k * (t.srcStride ? t.srcStride[i] : 0)}:${t.bytes[i]}`;
        if (!messages.has(key)) messages.set(key, { src: t.srcTile[i], bytes: t.bytes[i], to: [] });
        messages.get(key)!.to.push(d);
      }
    }
  }
  const sent = new Array<number>(numTiles).fill(0);
  const received = new Array<number>(numTiles).fill(0);
  const charge = new Array<number>(numTiles).fill(0);
  for (const m of messages.values()) {
    sent[m.src] += m.bytes;
    const sharing = new Map<number, number>();
    for (const d of new Set(m.to)) sharing.set(busOf(d, device), (sharing.get(busOf(d, device)) ?? 0) + 1);
    for (const d of m.to) {
      received[d] += m.bytes;
      charge[d] += (m.bytes * L) / sharing.get(busOf(d, device))!;
    }
  }
  const tiles: [number, number][] = [];
  for (let tile = 0; tile < numTiles; tile++) {
    if (sent[tile] === 0 && received[tile] === 0) continue;
    tiles.push([tile, Math.ceil(Math.max(sent[tile] * L, charge[tile]) / (device.exchangeBytesPerCycle * L))]);
  }
  return { cycles: Math.max(0, ...tiles.map(([, c]) => c)), tiles };
}

describe('exchangeCost against the model stated copy by copy (property)', () => {
  it('agrees on random tables: strided rows, fanned-out rows, repeated data, on-tile and empty copies', () => {
    // Few tiles, offsets and lengths, so that data repeats, runs of one row recur in another, and buses are shared.
    const device = tiny({ tilesPerIpu: 8, tilesPerSharedBus: 4 });
    const row = fc.record({
      srcTile: fc.nat(7),
      dstTile: fc.nat(7),
      srcOffset: fc.nat(6).map((x) => 4 * x),
      bytes: fc.constantFrom(0, 4, 8),
      runs: fc.integer({ min: 1, max: 3 }),
      srcStride: fc.constantFrom(4, 8, 12),
      fan: fc.option(fc.uniqueArray(fc.nat(7), { minLength: 1, maxLength: 4 }), { freq: 3 }),
    });
    let strided = 0;
    let fanned = 0;
    fc.assert(
      fc.property(fc.array(row, { maxLength: 24 }), fc.boolean(), fc.boolean(), (rows, withStride, withFan) => {
        const n = rows.length;
        const col = (f: (r: (typeof rows)[number]) => number) => Int32Array.from(rows, f);
        const t: CopyTable = { count: n, srcTile: col((r) => r.srcTile), srcOffset: col((r) => r.srcOffset), dstTile: col((r) => r.dstTile), dstOffset: new Int32Array(n), bytes: col((r) => r.bytes) };
        if (withStride) {
          t.runs = col((r) => r.runs);
          t.srcStride = col((r) => r.srcStride);
          t.dstStride = col((r) => r.bytes);
          if (rows.some((r) => r.runs > 1)) strided++;
        }
        if (withFan && rows.some((r) => r.fan)) {
          const group = new Int32Array(n).fill(-1);
          const start = [0];
          const tile: number[] = [];
          rows.forEach((r, i) => {
            if (!r.fan) return;
            group[i] = start.length - 1;
            tile.push(...r.fan);
            start.push(tile.length);
          });
          t.fan = { group, start: Int32Array.from(start), tile: Int32Array.from(tile), delta: new Int32Array(tile.length) };
          fanned++;
        }
        const e: Exchange = { id: 0, name: 'ex', op: 'Op', copies: t };
        expect(exchangeCost(e, device)).toEqual(directExchangeCost(t, device));
      }),
      { numRuns: 500 },
    );
    // The property met both kinds of rows the grouping treats apart.
    expect(strided).toBeGreaterThan(100);
    expect(fanned).toBeGreaterThan(50);
  });
});

describe('streamCopyCycles: latency + ceil(bytes / link rate x clock)', () => {
  it('on the tiny preset', () => {
    // 1000 B / 32e9 B/s x 1.33e9 Hz = 41.5625 -> 42; + 2660 latency = 2702
    expect(streamCopyCycles(1000, tiny())).toBe(2702);
    expect(streamCopyCycles(0, tiny())).toBe(2660);
  });

  it('with an exact link rate (powers of two keep the arithmetic exact)', () => {
    const d = tiny({ hostLinkBytesPerSecond: 2 ** 30, clockHz: 2 ** 31, hostCopyLatencyCycles: 100 });
    // two cycles per byte: 100 + 2000
    expect(streamCopyCycles(1000, d)).toBe(2100);
    // half a cycle per byte: 1 byte -> ceil(0.5) = 1
    expect(streamCopyCycles(1, { ...d, clockHz: 2 ** 29 })).toBe(101);
  });
});
