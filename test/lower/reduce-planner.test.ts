/**
 * The two-stage reduction (src/lower/reduce.ts) and its planner (src/lower/reduce-plan.ts): exact sums
 * for shapes spread over many tiles (integer data, so float32 sums are exact
 * and compared with ===), the plan's estimate equal to the cycles the engine
 * then counts, and the plan beating the naive one where it should (and
 * staying one stage where it should not).
 */
import { describe, expect, it } from 'vitest';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { Engine, type HostIO } from '../../sim/engine.js';
import type { DeviceSpec } from '../../sim/device.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { Op } from '../../src/ir/op.js';
import { LowerContext } from '../../src/lower/context.js';
import { DeviceGraph } from '../../src/lower/devicegraph.js';
import { engineCost, planReduction, reduceLeading, type ReduceOptions } from '../../src/lower/reduce.js';
import { chooseReduction } from '../../src/lower/reduce-plan.js';
import fc from 'fast-check';
import { tiny } from '../helpers.js';

const mk2x64: DeviceSpec = { ...loadDevicePreset('mk2'), tilesPerIpu: 64 };

class NopOp extends Op {
  constructor() {
    super({ domain: 'test', type: 'Reduce', version: 1 }, { name: 'reduce' });
  }
  setup(): void {}
}

function codelets(): CodeletRegistry {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  return r;
}

/** Integers in [-8, 8]: every partial and total sum is exact in float32. */
function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s % 17) - 8;
  }
  return out;
}

/** Reduce x = [rows, cols] (a variable mapped linearly) into out (an activation mapped linearly) and run it. */
async function reduceOnDevice(device: DeviceSpec, rows: number, cols: number, opts: ReduceOptions = {}) {
  const g = new DeviceGraph(device);
  const x = g.addTensor('x', 'float32', [rows, cols], 'variable');
  g.mapLinearly(x);
  const ctx = new LowerContext(g, new NopOp(), new Map(), () => 'activation');
  const out = ctx.addTensor('out', 'float32', [cols], 'activation');
  g.mapLinearly(out);
  reduceLeading(ctx, x, out, opts);
  const batch = g.program('batch');
  batch.push(...ctx.finish());
  batch.push({ kind: 'streamCopy', stream: g.addStream('out->host', out, 'fromDevice'), op: 'host' });
  const p = g.finalize(codelets(), []);
  const values = data(rows * cols, rows * 31 + cols);
  const engine = await Engine.create(p, { workers: 1, numerics: true });
  engine.write(engine.tensorByName('x'), values);
  let got: Float32Array | undefined;
  const io: HostIO = {
    toDevice: () => new Float32Array(),
    fromDevice: (_s, _t, d) => void (got = Float32Array.from(d as Float32Array)),
  };
  await engine.run('batch', io, 0);
  // The reduction's cycles: everything but the final sync and stream copy.
  const phases = engine.phases.slice(0, -2);
  await engine.destroy();
  const expected = new Float32Array(cols);
  for (let i = 0; i < values.length; i++) expected[i % cols] += opts.abs ? Math.abs(values[i]) : values[i];
  if (opts.scale !== undefined) for (let j = 0; j < cols; j++) expected[j] = Math.fround(expected[j] * opts.scale);
  return {
    got: got!,
    expected,
    cycles: phases.reduce((s, ph) => s + ph.cycles, 0),
    computeSets: p.computeSets.map((c) => c.name),
    notes: g.notes,
    xRanges: g.rangesOf(x),
    outRanges: g.rangesOf(out),
  };
}

const problem = (device: DeviceSpec, rows: number, cols: number) => {
  const g = new DeviceGraph(device);
  const x = g.addTensor('x', 'float32', [rows, cols], 'variable');
  g.mapLinearly(x);
  const out = g.addTensor('out', 'float32', [cols], 'activation');
  g.mapLinearly(out);
  return { x: g.rangesOf(x), xDType: 'float32' as const, cols, out: g.rangesOf(out), outDType: 'float32' as const, device, numTiles: g.numTiles };
};

describe('reduceLeading on 64 tiles: exact sums, estimate = engine cycles', () => {
  const shapes: [rows: number, cols: number, opts: ReduceOptions][] = [
    [512, 16, {}], // 8192 elements: 128 per tile, 8 rows each: full partials, 64 per column
    [3, 1000, {}], // 48 elements per tile: runs shorter than a row (partials of their columns only), some wrap
    [5000, 1, { abs: true, scale: 0.5 }], // a full reduction of |x|, halved
    [100, 37, {}], // odd width: runs start mid-row
    [64 * 64, 64, {}], // a bias gradient: 64 partials for each of 64 columns on 2 output tiles
  ];
  for (const [rows, cols, opts] of shapes) {
    it(`[${rows}, ${cols}] ${JSON.stringify(opts)}`, async () => {
      const r = await reduceOnDevice(mk2x64, rows, cols, opts);
      expect(new Set(r.xRanges.map((x) => x.tile)).size).toBeGreaterThan(30);
      expect([...r.got]).toEqual([...r.expected]);
      const plan = planReduction(problem(mk2x64, rows, cols)).chosen;
      expect(r.cycles).toBe(plan.cycles);
      expect(r.notes.find((n) => n.kind === 'plan')?.text).toContain(plan.name);
      // and the naive plan: the same sums, its own estimate exact too
      const naive = await reduceOnDevice(mk2x64, rows, cols, { ...opts, plan: 'naive' });
      expect([...naive.got]).toEqual([...r.expected]);
      expect(naive.cycles).toBe(planReduction(problem(mk2x64, rows, cols), 'naive').chosen.cycles);
    });
  }
});

describe('planReduction', () => {
  it('a bias gradient [4096, 64] on 64 tiles: an intermediate stage beats sending 63 partials to each output tile', () => {
    const { chosen, candidates } = planReduction(problem(mk2x64, 64 * 64, 64));
    const naive = candidates.find((c) => c.name.startsWith('naive'))!;
    // naive: each of the 2 output tiles receives 63 x 32 x 4 = 8064 B (2016 cycles) and reduces 64 x 32 floats:
    // 7 + 26 + 6 x (26 + ceil(1024/6) x 8) = 8397, + 11 supervisor; + 500 sync
    expect(naive.stageCycles[1]).toBe(500 + 2016 + 8397 + 11);
    expect(chosen.stages.length).toBeGreaterThanOrEqual(2);
    // Stage 1 (every tile reducing its 64 rows) is the same for both; the rest at least halves.
    expect(chosen.stageCycles[0]).toBe(naive.stageCycles[0]);
    expect(chosen.cycles - chosen.stageCycles[0]).toBeLessThan((naive.cycles - naive.stageCycles[0]) / 2);
  });

  it('[512, 16] on 64 tiles: two stages of fan-in 8 instead of 64 partials into tile 0', () => {
    const { chosen, candidates } = planReduction(problem(mk2x64, 512, 16));
    const naive = candidates.find((c) => c.name.startsWith('naive'))!;
    // naive stage 2: tile 0 receives 63 x 64 B = 4032 B (1008 cycles), reduces 1024 floats:
    // 33 + 6 x (26 + ceil(512/6) x 8) = 4317, + 11 + 500 sync = 5836.
    // fan-in 8: 8 tiles each receive 7 x 64 B (112 cycles) and reduce 128 floats: 33 + 6 x (26 + 11 x 8) = 717,
    // + 11 + 500 = 1340; then tile 0 the same from the 8 intermediates: 1340.
    expect(naive.stageCycles[1]).toBe(5836);
    expect(chosen.name).toBe('2 stages, fan-in 8');
    expect(chosen.stageCycles.slice(1)).toEqual([1340, 1340]);
  });

  it('short runs [3, 1000]: partials of only their columns send far less than full-width ones', () => {
    const { chosen, candidates } = planReduction(problem(mk2x64, 3, 1000));
    const naive = candidates.find((c) => c.name.startsWith('naive'))!;
    // every column has at most 2 partials (3 rows of 1000 over 48-element runs); naive sends 1000 floats from each tile
    expect(Math.max(...chosen.stages.at(-1)!.map((t) => t.inputs.length))).toBeLessThanOrEqual(3);
    expect(chosen.stage1.reduce((s, p) => s + chosen.values[p.value].colEnd - chosen.values[p.value].colBegin, 0)).toBe(3000);
    expect(chosen.cycles).toBeLessThan(naive.cycles / 4);
  });

  it('a full reduction over 1472 tiles (mk2): a tree of stages', () => {
    const { chosen, candidates } = planReduction(problem(loadDevicePreset('mk2'), 1472 * 64, 1));
    const naive = candidates.find((c) => c.name.startsWith('naive'))!;
    // naive: tile 0 receives 1471 x 4 B (1471 cycles) and reduces 1472 one-float partials
    expect(chosen.stages.length).toBeGreaterThanOrEqual(2);
    expect(chosen.cycles).toBeLessThan(naive.cycles / 2);
  });

  it('stays one stage where more stages cannot pay for their syncs', () => {
    // the example's bias gradient: 4 partials of 8 columns on tiny; a full reduction of 63 partials into one
    // tile (63 x 4 B is cheap to receive); an output of 4096 already spread over all 64 tiles
    for (const [d, rows, cols] of [[tiny(), 16, 8], [mk2x64, 5000, 1], [mk2x64, 256, 4096]] as const) {
      const { chosen, candidates } = planReduction(problem(d, rows, cols));
      expect(chosen.stages).toHaveLength(1);
      for (const c of candidates) expect(chosen.cycles).toBeLessThanOrEqual(c.cycles);
    }
  });

  it('plans a chunked tree only where it cuts some segment: none repeats another candidate', () => {
    // A [128, 3072] bias gradient spread over the chip (no chunks fit) and a small one (chunks do).
    for (const [d, rows, cols] of [[loadDevicePreset('mk2'), 128, 3072], [mk2x64, 64 * 64, 64], [mk2x64, 100, 37]] as [DeviceSpec, number, number][]) {
      const { candidates } = planReduction(problem(d, rows, cols));
      const plans = candidates.map((c) => JSON.stringify([c.stages, c.values]));
      candidates.forEach((c, i) => {
        if (c.name.includes('column chunks')) expect(plans.indexOf(plans[i]), `${rows} x ${cols}: ${c.name}`).toBe(i);
      });
    }
    // The small one still has its chunked trees.
    expect(planReduction(problem(mk2x64, 64 * 64, 64)).candidates.some((c) => c.name.includes('column chunks'))).toBe(true);
  });

  it('is deterministic', () => {
    const a = planReduction(problem(mk2x64, 64 * 64, 64));
    const b = planReduction(problem(mk2x64, 64 * 64, 64));
    expect(JSON.stringify(a.chosen)).toBe(JSON.stringify(b.chosen));
  });

  it("counts each candidate's cycles as the engine's cost model does (without building its vertices and copies)", () => {
    // Linear mappings, runs shorter than a row, a wrap past the last column, an fp16 input, the whole chip, an
    // odd tile count; each candidate (every fan-in, with and without column chunks, naive) recosted by the engine.
    const cases: [DeviceSpec, number, number][] = [
      [mk2x64, 64 * 64, 64],
      [mk2x64, 3, 1000],
      [mk2x64, 100, 37],
      [mk2x64, 5000, 1],
      [{ ...mk2x64, tilesPerIpu: 45 }, 777, 13],
      [loadDevicePreset('mk2'), 128, 768],
      [loadDevicePreset('mk2'), 1472 * 64, 1],
      [tiny(), 16, 8],
    ];
    for (const [d, rows, cols] of cases) {
      for (const xDType of ['float32', 'float16'] as const) {
        const { candidates } = planReduction({ ...problem(d, rows, cols), xDType, outDType: xDType });
        expect(candidates.length).toBeGreaterThan(1);
        for (const c of candidates) {
          const e = engineCost({ ...problem(d, rows, cols), xDType, outDType: xDType }, c);
          expect(c.stageCycles).toEqual(e.stageCycles);
        }
      }
    }
  });

  it('makes only the chosen plan into objects: the one planReduction chooses, the others named with their cycles', () => {
    const devices: DeviceSpec[] = [mk2x64, { ...mk2x64, tilesPerIpu: 45 }, { ...mk2x64, ipus: 2, tilesPerIpu: 32 }, tiny()];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: devices.length - 1 }), fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 700 }), fc.boolean(), (d, rows, cols, half) => {
        const p = { ...problem(devices[d], rows, cols), outDType: half ? ('float16' as const) : ('float32' as const) };
        for (const mode of ['auto', 'naive'] as const) {
          const all = planReduction(p, mode);
          const one = chooseReduction(p, mode);
          expect(JSON.stringify(one.chosen)).toBe(JSON.stringify(all.chosen));
          expect(one.others).toEqual(all.candidates.filter((c) => c !== all.chosen).map((c) => `${c.name} ${c.cycles}`));
        }
      }),
      { numRuns: 40, seed: 7 },
    );
  });

  it("reads each value's columns at most once, in ranges that never overlap (what emit's onTileOnce relies on)", () => {
    // x mapped in random pieces over random tiles (runs shorter and longer than a row, wrapping), every candidate.
    const devices: DeviceSpec[] = [mk2x64, { ...mk2x64, tilesPerIpu: 45 }, { ...mk2x64, ipus: 2, tilesPerIpu: 32 }];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: devices.length - 1 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 200 }), fc.array(fc.integer({ min: 8, max: 400 }), { minLength: 1, maxLength: 60 }), fc.nat(), (d, rows, cols, cuts, seed) => {
        const device = devices[d];
        const n = rows * cols;
        const x: { tile: number; begin: number; end: number }[] = [];
        let at = 0;
        let s = seed;
        for (let k = 0; at < n; k++) {
          const len = Math.min(n - at, cuts[k % cuts.length]);
          s = (s * 1103515245 + 12345) % 2147483648;
          x.push({ tile: s % (device.ipus * device.tilesPerIpu), begin: at, end: at + len });
          at += len;
        }
        const p = { ...problem(device, rows, cols), x };
        for (const c of planReduction(p).candidates) {
          const reads = new Map<number, [number, number][]>();
          for (const stage of c.stages)
            for (const t of stage)
              for (const v of t.inputs) {
                expect(t.colBegin).toBeLessThan(t.colEnd);
                expect(c.values[v].colBegin <= t.colBegin && t.colEnd <= c.values[v].colEnd).toBe(true);
                const list = reads.get(v) ?? [];
                for (const [b, e] of list) expect(t.colEnd <= b || e <= t.colBegin, `${c.name}: value ${v} read twice over [${t.colBegin}, ${t.colEnd})`).toBe(true);
                list.push([t.colBegin, t.colEnd]);
                reads.set(v, list);
              }
        }
      }),
      { numRuns: 30, seed: 5 },
    );
  });
});
