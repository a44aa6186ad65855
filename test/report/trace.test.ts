import { describe, expect, it } from 'vitest';
import type { Phase } from '../../sim/profile.js';
import { buildTrace, sampleTiles, traceJsonChunks, writeTraceJson, type TraceEvent, type TraceOptions } from '../../src/report/trace.js';

const opts = (o: Partial<TraceOptions> = {}): TraceOptions => ({
  clockHz: 1e9,
  tilesPerIpu: 8,
  ipus: 2,
  traceTiles: 'all',
  deviceName: 'test',
  ...o,
});

const phases: Phase[] = [
  { kind: 'streamCopy', name: 'in', op: '', start: 0, cycles: 50, step: 0 },
  { kind: 'compute', name: 'MatMul/cs0', op: 'MatMul', start: 50, cycles: 300, step: 0, tiles: [[0, 300], [3, 120], [9, 200], [15, 10]] },
  { kind: 'sync', name: 'sync', op: 'MatMul', start: 350, cycles: 20, step: 0 },
  { kind: 'exchange', name: 'MatMul/ex0', op: 'MatMul', start: 370, cycles: 40, step: 0, tiles: [[1, 40], [8, 16]] },
];

const slices = (events: TraceEvent[]): TraceEvent[] => events.filter((e) => e.ph === 'X');
const meta = (events: TraceEvent[], name: string): TraceEvent[] => events.filter((e) => e.ph === 'M' && e.name === name);

describe('sampleTiles', () => {
  it('returns every tile for all or n >= total', () => {
    expect(sampleTiles(5, 'all')).toEqual([0, 1, 2, 3, 4]);
    expect(sampleTiles(5, 9)).toEqual([0, 1, 2, 3, 4]);
  });

  it('gives exactly n distinct ascending tiles including the first and last', () => {
    for (const total of [2, 3, 10, 1216, 1472, 5888]) {
      for (const n of [2, 3, 7, 16, 100, total - 1]) {
        if (n > total || n < 2) continue;
        const s = sampleTiles(total, n);
        expect(s).toHaveLength(n);
        expect(s[0]).toBe(0);
        expect(s[n - 1]).toBe(total - 1);
        for (let i = 1; i < n; i++) expect(s[i]).toBeGreaterThan(s[i - 1]);
      }
    }
    expect(sampleTiles(1472, 5)).toEqual([0, 368, 736, 1103, 1471]);
  });

  it('rejects a bad count', () => {
    expect(() => sampleTiles(10, 0)).toThrow(/traceTiles/);
    expect(() => sampleTiles(10, 2.5)).toThrow(/traceTiles/);
  });
});

// Tile threads are tids 0..15; each IPU's phases track is 16 + 3 + ipu.
const tileSlices = (events: TraceEvent[]): TraceEvent[] => slices(events).filter((e) => e.pid < 2 && e.tid < 16);
const track = (events: TraceEvent[], tid: number): TraceEvent[] => slices(events).filter((e) => e.pid === 2 && e.tid === tid);
// The program process is pid = ipus (2); its tracks follow the 16 tile ids.
const STEPS = 16;
const OPS = 17;
const SUPERSTEPS = 18;

describe('buildTrace', () => {
  it('has a program process, one process per IPU and one thread per tile', () => {
    const t = buildTrace(phases, opts());
    expect(t.displayTimeUnit).toBe('ns');
    const procs = meta(t.traceEvents, 'process_name');
    expect(procs.map((e) => [e.pid, e.args?.name])).toEqual([
      [2, 'program'],
      [0, 'IPU 0'],
      [1, 'IPU 1'],
    ]);
    const threads = meta(t.traceEvents, 'thread_name').filter((e) => e.pid < 2 && e.tid < 16);
    expect(threads).toHaveLength(16);
    expect(new Set(threads.map((e) => e.tid)).size).toBe(16);
    const t9 = threads.find((e) => e.tid === 9);
    expect(t9?.pid).toBe(1);
    expect(t9?.args?.name).toBe('tile 9');
    expect(meta(t.traceEvents, 'thread_name').filter((e) => e.pid === 2).map((e) => e.tid)).toEqual([STEPS, OPS, SUPERSTEPS]);
  });

  it('gives a compute slice the duration of its own tile', () => {
    const t = buildTrace(phases, opts({ clockHz: 2e9 }));
    const cs = tileSlices(t.traceEvents).filter((e) => e.cat === 'compute');
    expect(cs.map((e) => e.tid)).toEqual([0, 3, 9, 15]);
    const s3 = cs.find((e) => e.tid === 3);
    expect(s3).toMatchObject({ name: 'MatMul/cs0', cat: 'compute', ph: 'X', pid: 0, args: { op: 'MatMul', cycles: 120 } });
    expect(s3?.ts).toBeCloseTo((50 / 2e9) * 1e6, 4);
    expect(s3?.dur).toBeCloseTo((120 / 2e9) * 1e6, 4);
    const s9 = cs.find((e) => e.tid === 9);
    expect(s9?.pid).toBe(1);
    expect(s9?.dur).toBeCloseTo(0.1, 4);
  });

  it('draws sync and host copies once, on the supersteps track, not per tile', () => {
    const t = buildTrace(phases, opts());
    expect(tileSlices(t.traceEvents).filter((e) => e.cat === 'sync' || e.cat === 'streamCopy')).toEqual([]);
    const ss = track(t.traceEvents, SUPERSTEPS);
    expect(ss.map((e) => [e.cat, e.name])).toEqual([
      ['streamCopy', 'in'],
      ['compute', 'MatMul/cs0'],
      ['sync', 'sync'],
      ['exchange', 'MatMul/ex0'],
    ]);
    const sync = ss.find((e) => e.cat === 'sync')!;
    expect(sync.dur).toBeCloseTo(0.02, 4);
    expect(sync.ts).toBeCloseTo(0.35, 4);
    const ex = tileSlices(t.traceEvents).filter((e) => e.cat === 'exchange');
    expect(ex.map((e) => [e.tid, e.args?.cycles])).toEqual([
      [1, 40],
      [8, 16],
    ]);
  });

  it('has an op track (a slice per run of one op) and a step track', () => {
    const two: Phase[] = [...phases, ...phases.map((p) => ({ ...p, start: p.start + 410, step: 1 }))];
    const t = buildTrace(two, opts({ clockHz: 1e6 })); // 1 cycle = 1 us
    expect(track(t.traceEvents, OPS).map((e) => [e.name, e.ts, e.dur])).toEqual([
      ['host', 0, 50],
      ['MatMul', 50, 360],
      ['host', 410, 50],
      ['MatMul', 460, 360],
    ]);
    expect(track(t.traceEvents, STEPS).map((e) => [e.name, e.ts, e.dur, e.args?.step])).toEqual([
      ['step 0', 0, 410, 0],
      ['step 1', 410, 410, 1],
    ]);
  });

  it('samples tiles: one thread per traced tile, slices only on traced tiles, the sample in the metadata', () => {
    const t = buildTrace(phases, opts({ traceTiles: 4 }));
    const traced = sampleTiles(16, 4);
    expect(traced).toEqual([0, 5, 10, 15]);
    expect(meta(t.traceEvents, 'thread_name').filter((e) => e.pid < 2 && e.tid < 16).map((e) => e.tid)).toEqual(traced);
    for (const e of tileSlices(t.traceEvents)) expect(traced).toContain(e.tid);
    expect(tileSlices(t.traceEvents).filter((e) => e.cat === 'compute').map((e) => e.tid)).toEqual([0, 15]);
    expect(tileSlices(t.traceEvents).filter((e) => e.cat === 'exchange')).toHaveLength(0);
    expect(t.otherData.tracedTiles).toEqual(traced);
    expect(t.otherData.traceTiles).toMatch(/^4 of 16 tiles/);
    expect(meta(t.traceEvents, 'process_labels').map((e) => e.args?.labels)).toEqual(['test, 2 of 8 tiles sampled', 'test, 2 of 8 tiles sampled']);
    expect(buildTrace(phases, opts()).otherData.traceTiles).toBe('all');
  });

  it("'auto' traces every tile of a small device and 64 of a big one", () => {
    expect(sampleTiles(16, 'auto')).toHaveLength(16);
    expect(sampleTiles(1472, 'auto')).toEqual(sampleTiles(1472, 64));
  });

  it("gives each IPU a phases track: its busiest tile's cycles, and an exchange's bytes over its IPU-Links", () => {
    // 1000 B leave IPU 0 over its pair group (id 0), 24 B leave IPU 1 up the rail (id 3 x 1 + 1).
    const linked: Phase[] = phases.map((p) => (p.kind === 'exchange' ? { ...p, links: [[0, 1000], [4, 24]] } : p));
    const t = buildTrace(linked, opts({ traceTiles: 4 }));
    const names = meta(t.traceEvents, 'thread_name').filter((e) => e.tid >= 19).map((e) => [e.pid, e.tid, e.args?.name]);
    expect(names).toEqual([
      [0, 19, 'IPU 0 phases (busiest tile)'],
      [1, 20, 'IPU 1 phases (busiest tile)'],
    ]);
    const ipuTrack = (ipu: number) => slices(t.traceEvents).filter((e) => e.pid === ipu && e.tid === 19 + ipu).map((e) => [e.name, e.args?.cycles, e.args?.linkBytes]);
    // Every tile counts, sampled or not: IPU 0's busiest compute tile is 0 (300), IPU 1's is 9 (200), though tile 9 is not traced.
    expect(ipuTrack(0)).toEqual([
      ['MatMul/cs0', 300, undefined],
      ['MatMul/ex0', 40, 1000],
    ]);
    expect(ipuTrack(1)).toEqual([
      ['MatMul/cs0', 200, undefined],
      ['MatMul/ex0', 16, 24],
    ]);
    // One IPU: no phases track (the supersteps track is the same).
    expect(meta(buildTrace(phases, opts({ ipus: 1, tilesPerIpu: 16 })).traceEvents, 'thread_name').map((e) => e.args?.name)).not.toContain('IPU 0 phases (busiest tile)');
  });

  it('leaves out an IPU with no traced tile', () => {
    const t = buildTrace(phases, opts({ traceTiles: 1 }));
    expect(meta(t.traceEvents, 'process_name').map((e) => e.pid)).toEqual([2, 0]);
  });
});

describe('writeTraceJson', () => {
  it('is the JSON of buildTrace, also when built in small chunks', () => {
    const o = opts({ traceTiles: 6 });
    const text = writeTraceJson(phases, o);
    expect(JSON.parse(text)).toEqual(buildTrace(phases, o));
    const chunks = [...traceJsonChunks(phases, o, 64)];
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.join('')).toBe(text);
    expect(text).toBe(JSON.stringify(buildTrace(phases, o)));
  });

  it('is valid JSON with no phases', () => {
    // Program process: name, sort index, 3 x (thread name, sort index); per IPU 3 and its phases track's 2; per tile 2.
    expect(JSON.parse(writeTraceJson([], opts())).traceEvents).toHaveLength(2 + 6 + 2 * (3 + 2) + 16 * 2);
  });
});
