/**
 * The BSP engine on DevicePrograms written by hand: numerics, the phases it
 * records (syncs, compute, exchange, stream copies) and their cycles, host
 * scatter/gather over tile intervals, cycles-only runs and the worker pool.
 */
import { describe, expect, it } from 'vitest';
import type { ElemArray } from '../../sim/codelet.js';
import { Engine, type EngineOptions, type HostIO } from '../../sim/engine.js';
import type { DeviceProgram, DeviceTensor, Region, TileInterval } from '../../sim/program.js';
import { tensorIntervals } from '../../sim/intervals.js';
import type { Phase } from '../../sim/profile.js';
import { tiny } from '../helpers.js';
import { copyTable } from '../../sim/copies.js';
import { vertexAt, vertexTable } from '../../sim/vertex-table.js';
import { isShared } from '../../sim/shared-columns.js';
import { CHUNKS_PER_WORKER } from '../../sim/pool.js';
import { fileURLToPath } from 'node:url';

const f32 = (offset: number, count: number): Region => ({ offset, count, dtype: 'float32' });

/**
 * c = a + b over two tiles, then e = c[4:6] (brought to tile 0 by an exchange) + c[0:2].
 *
 *   tile 0: a[0:4] @0, b[0:4] @16, c[0:4] @32, d[0:2] @48, e[0:2] @56  (64 bytes)
 *   tile 1: a[4:6] @0, b[4:6] @8,  c[4:6] @16                           (24 bytes)
 */
function addProgram(): DeviceProgram {
  const tensor = (id: number, name: string, shape: number[], intervals: TileInterval[]): DeviceTensor => ({
    id,
    name,
    dtype: 'float32',
    shape,
    category: 'activation',
    intervals: tensorIntervals(intervals),
  });
  return {
    schemaVersion: 1,
    device: tiny(),
    tensors: [
      tensor(0, 'a', [6], [{ tile: 0, begin: 0, end: 4, offset: 0 }, { tile: 1, begin: 4, end: 6, offset: 0 }]),
      tensor(1, 'b', [2, 3], [{ tile: 0, begin: 0, end: 4, offset: 16 }, { tile: 1, begin: 4, end: 6, offset: 8 }]),
      tensor(2, 'c', [6], [{ tile: 0, begin: 0, end: 4, offset: 32 }, { tile: 1, begin: 4, end: 6, offset: 16 }]),
      tensor(3, 'd', [2], [{ tile: 0, begin: 0, end: 2, offset: 48 }]),
      tensor(4, 'e', [2], [{ tile: 0, begin: 0, end: 2, offset: 56 }]),
    ],
    computeSets: [
      {
        id: 0,
        name: 'add/cs',
        op: 'add',
        vertices: vertexTable([
          { codelet: 'Add', tile: 0, fields: { a: f32(0, 4), b: f32(16, 4), out: f32(32, 4) }, params: { offset: 0 } },
          { codelet: 'Add', tile: 1, fields: { a: f32(0, 2), b: f32(8, 2), out: f32(16, 2) }, params: { offset: 0 } },
        ]),
      },
      {
        id: 1,
        name: 'add2/cs',
        op: 'add2',
        vertices: vertexTable([{ codelet: 'Add', tile: 0, fields: { a: f32(48, 2), b: f32(32, 2), out: f32(56, 2) }, params: { offset: 0 } }]),
      },
    ],
    exchanges: [{ id: 0, name: 'add2/ex', op: 'add2', copies: copyTable([{ srcTile: 1, srcOffset: 16, dstTile: 0, dstOffset: 48, bytes: 8 }]) }],
    streams: [
      { id: 0, name: 'in_a', tensor: 0, direction: 'toDevice' },
      { id: 1, name: 'in_b', tensor: 1, direction: 'toDevice' },
      { id: 2, name: 'out_c', tensor: 2, direction: 'fromDevice' },
      { id: 3, name: 'out_e', tensor: 4, direction: 'fromDevice' },
    ],
    programs: {
      load: [
        { kind: 'streamCopy', stream: 0, op: 'load' },
        { kind: 'streamCopy', stream: 1, op: 'load' },
      ],
      step: [
        { kind: 'execute', computeSet: 0 },
        { kind: 'exchange', exchange: 0 },
        { kind: 'execute', computeSet: 1 },
        { kind: 'execute', computeSet: 1 },
      ],
      read: [
        { kind: 'streamCopy', stream: 2, op: 'read' },
        { kind: 'streamCopy', stream: 3, op: 'read' },
      ],
    },
    tileBytes: [64, 24],
    codeletModules: [],
  };
}

const A = new Float32Array([1, 2, 3, 4, 5, 6]);
const B = new Float32Array([10, 20, 30, 40, 50, 60]);

function host(): { io: HostIO; got: Record<string, number[]>; calls: string[]; buffers: Record<string, string> } {
  const got: Record<string, number[]> = {};
  const calls: string[] = [];
  /** The kind of buffer each stream's data arrived in. */
  const buffers: Record<string, string> = {};
  const io: HostIO = {
    toDevice: (s, t) => {
      calls.push(s.name);
      return t.name === 'a' ? A : B;
    },
    fromDevice: (s, t, data) => {
      calls.push(s.name);
      buffers[s.name] = data.buffer.constructor.name;
      got[t.name] = [...data];
    },
  };
  return { io, got, calls, buffers };
}

async function runAll(options: EngineOptions, program = addProgram()): Promise<{ engine: Engine; got: Record<string, number[]>; calls: string[]; buffers: Record<string, string> }> {
  const engine = await Engine.create(program, options);
  try {
    const { io, got, calls, buffers } = host();
    await engine.run('load', io, 0);
    await engine.run('step', io, 1);
    await engine.run('read', io, 2);
    return { engine, got, calls, buffers };
  } finally {
    await engine.destroy();
  }
}

const strip = (ps: Phase[]) => ps.map((p) => [p.kind, p.name, p.op, p.start, p.cycles]);

// Hand-computed costs on the tiny preset:
//  sync: 500.
//  Add of N = 4 or N = 2: per worker ceil(N/6) = 1 element, inner ceil(1/2) x 3 = 3,
//    6 x (29 + 3) + 11 = 203, plus 11 supervisor = 214 per tile; the phase is 214.
//  exchange: tile 1 sends 8 bytes, tile 0 receives 8: ceil(8/4) = 2.
//  stream copy of 24 (or 8) bytes: 24 / 32e9 x 1.33e9 = 0.9975 -> 1 cycle, + 2660 latency = 2661.
const SYNC = 500;
const ADD = 214;
const EX = 2;
const STREAM = 2661;

describe('Engine numerics', () => {
  it('adds over two tiles and through an exchange', async () => {
    const { got, calls } = await runAll({ workers: 1, numerics: true });
    expect(got.c).toEqual([11, 22, 33, 44, 55, 66]);
    // e = c[4:6] + c[0:2] = [55 + 11, 66 + 22]
    expect(got.e).toEqual([66, 88]);
    expect(calls).toEqual(['in_a', 'in_b', 'out_c', 'out_e']);
  });

  it('reads and writes tensors directly', async () => {
    const engine = await Engine.create(addProgram(), { workers: 1, numerics: true });
    engine.write(engine.tensorByName('a'), new Float32Array([1, 1, 1, 1, 1, 1]));
    engine.write(engine.tensorByName('b'), new Float32Array([0, 1, 2, 3, 4, 5]));
    await engine.run('step', host().io, 0);
    expect([...engine.read(engine.tensorByName('c'))]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...engine.read(engine.tensorByName('e'))]).toEqual([5 + 1, 6 + 2]);
    // the exchange wrote c[4:6] into d on tile 0
    expect([...engine.read(engine.tensorByName('d'))]).toEqual([5, 6]);
    await engine.destroy();
  });
});

describe('Engine phases and cycles', () => {
  it('syncs before an exchange and before a compute set not straight after an exchange', async () => {
    const engine = await Engine.create(addProgram(), { workers: 1, numerics: true });
    await engine.run('step', host().io, 7);
    // sync | add | sync | exchange | add2 (no sync: the exchange was entered through one) | sync | add2
    expect(strip(engine.phases)).toEqual([
      ['sync', 'sync', 'add', 0, SYNC],
      ['compute', 'add/cs', 'add', 500, ADD],
      ['sync', 'sync', 'add2', 714, SYNC],
      ['exchange', 'add2/ex', 'add2', 1214, EX],
      ['compute', 'add2/cs', 'add2', 1216, ADD],
      ['sync', 'sync', 'add2', 1430, SYNC],
      ['compute', 'add2/cs', 'add2', 1930, ADD],
    ]);
    expect(engine.cycles).toBe(3 * SYNC + 3 * ADD + EX); // 2144
    expect(engine.phases.every((p) => p.step === 7)).toBe(true);
    // per-tile cycles: both tiles run an Add; the exchange busies tiles 0 and 1 for 2 cycles each
    expect(engine.phases[1].tiles).toEqual([
      [0, ADD],
      [1, ADD],
    ]);
    expect(engine.phases[3].tiles).toEqual([
      [0, EX],
      [1, EX],
    ]);
    expect(engine.phases[4].tiles).toEqual([[0, ADD]]);
    expect(engine.phases[0].tiles).toBeUndefined();
    await engine.destroy();
  });

  it('accumulates the clock across runs and syncs before every stream copy', async () => {
    const { engine } = await runAll({ workers: 1, numerics: true });
    const kinds = engine.phases.map((p) => p.kind);
    expect(kinds).toEqual([
      'sync', 'streamCopy', 'sync', 'streamCopy', // load
      'sync', 'compute', 'sync', 'exchange', 'compute', 'sync', 'compute', // step
      'sync', 'streamCopy', 'sync', 'streamCopy', // read
    ]);
    expect(engine.phases.filter((p) => p.kind === 'streamCopy').map((p) => p.cycles)).toEqual([STREAM, STREAM, STREAM, STREAM]);
    const load = 2 * (SYNC + STREAM); // 6322
    const step = 3 * SYNC + 3 * ADD + EX; // 2144
    expect(engine.phases[4].start).toBe(load);
    expect(engine.phases[11].start).toBe(load + step);
    expect(engine.cycles).toBe(2 * load + step); // 14788
    // phases tile the timeline with no gaps
    for (let i = 1; i < engine.phases.length; i++) {
      expect(engine.phases[i].start).toBe(engine.phases[i - 1].start + engine.phases[i - 1].cycles);
    }
    expect(engine.phases.map((p) => p.step)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('runs repeat bodies, with a sync before a compute set after a stream copy', async () => {
    const program = addProgram();
    program.programs.rep = [
      { kind: 'exchange', exchange: 0 },
      { kind: 'repeat', count: 3, body: [{ kind: 'execute', computeSet: 1 }] },
      { kind: 'streamCopy', stream: 3, op: 'read' },
      { kind: 'execute', computeSet: 1 },
    ];
    const engine = await Engine.create(program, { workers: 1, numerics: false });
    await engine.run('rep', host().io, 0);
    expect(engine.phases.map((p) => p.kind)).toEqual([
      'sync', 'exchange', 'compute', 'sync', 'compute', 'sync', 'compute', 'sync', 'streamCopy', 'sync', 'compute',
    ]);
    // 5 syncs + exchange + 4 Adds + one stream copy
    expect(engine.cycles).toBe(5 * SYNC + EX + 4 * ADD + STREAM);
    await engine.destroy();
  });

  it('cycles-only (numerics: false) leaves memory and the host untouched but gives the same phases', async () => {
    const withData = await runAll({ workers: 1, numerics: true });
    const counting = await runAll({ workers: 1, numerics: false });
    expect(counting.calls).toEqual([]);
    expect(counting.got).toEqual({});
    expect(new Uint8Array(counting.engine.memory.buffer).every((b) => b === 0)).toBe(true);
    expect(counting.engine.phases).toEqual(withData.engine.phases);
    expect(counting.engine.cycles).toBe(withData.engine.cycles);
  });

  it('rejects an unknown codelet when created and an unknown control program when run', async () => {
    const bad = addProgram();
    bad.computeSets[1].vertices = vertexTable([{ ...vertexAt(bad.computeSets[1].vertices, 0), codelet: 'NoSuchCodelet' }]);
    await expect(Engine.create(bad, { workers: 1, numerics: true })).rejects.toThrow(/no codelet 'NoSuchCodelet'/);
    const engine = await Engine.create(addProgram(), { workers: 1, numerics: true });
    await expect(engine.run('nope', host().io, 0)).rejects.toThrow(/no control program 'nope'/);
    expect(() => engine.tensorByName('zz')).toThrow(/'zz'/);
  });
});

describe('Engine host scatter/gather', () => {
  /** x: float32[7] over three tiles, out of tile order; h: float16[5] over two. */
  function scatterProgram(): DeviceProgram {
    return {
      schemaVersion: 1,
      device: tiny(),
      tensors: [
        {
          id: 0,
          name: 'x',
          dtype: 'float32',
          shape: [7],
          category: 'variable',
          intervals: tensorIntervals([
            { tile: 2, begin: 0, end: 3, offset: 8 },
            { tile: 0, begin: 3, end: 5, offset: 0 },
            { tile: 1, begin: 5, end: 7, offset: 4 },
          ]),
        },
        {
          id: 1,
          name: 'h',
          dtype: 'float16',
          shape: [5],
          category: 'variable',
          intervals: tensorIntervals([
            { tile: 2, begin: 0, end: 2, offset: 0 },
            { tile: 0, begin: 2, end: 5, offset: 8 },
          ]),
        },
      ],
      computeSets: [],
      exchanges: [],
      streams: [],
      programs: {},
      tileBytes: [14, 12, 20],
      codeletModules: [],
    };
  }

  it('writes each interval at its tile and offset, and reads them back in element order', async () => {
    const engine = await Engine.create(scatterProgram(), { workers: 1, numerics: true });
    const x = engine.tensorByName('x');
    const h = engine.tensorByName('h');
    engine.write(x, new Float32Array([1, 2, 3, 4, 5, 6, 7]));
    engine.write(h, new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400, 0x4500]));
    const m = engine.memory;
    expect([...m.view(2, f32(8, 3))]).toEqual([1, 2, 3]);
    expect([...m.view(0, f32(0, 2))]).toEqual([4, 5]);
    expect([...m.view(1, f32(4, 2))]).toEqual([6, 7]);
    expect([...m.view(1, f32(0, 1))]).toEqual([0]); // the gap before x's interval is untouched
    expect([...m.view(2, { offset: 0, count: 2, dtype: 'float16' })]).toEqual([0x3c00, 0x4000]);
    expect([...m.view(0, { offset: 8, count: 3, dtype: 'float16' })]).toEqual([0x4200, 0x4400, 0x4500]);

    const rx = engine.read(x);
    expect(rx).toBeInstanceOf(Float32Array);
    expect([...rx]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const rh: ElemArray = engine.read(h);
    expect(rh).toBeInstanceOf(Uint16Array);
    expect([...rh]).toEqual([0x3c00, 0x4000, 0x4200, 0x4400, 0x4500]);
    // read returns a copy, not a view of tile memory
    (rx as Float32Array)[0] = 99;
    expect([...engine.read(x)][0]).toBe(1);
    await engine.destroy();
  });

  it('writes from a subarray view (non-zero byteOffset)', async () => {
    const engine = await Engine.create(scatterProgram(), { workers: 1, numerics: true });
    const big = new Float32Array([-1, -2, 10, 20, 30, 40, 50, 60, 70]);
    engine.write(engine.tensorByName('x'), big.subarray(2));
    expect([...engine.read(engine.tensorByName('x'))]).toEqual([10, 20, 30, 40, 50, 60, 70]);
    await engine.destroy();
  });
});

describe('Engine worker pool', () => {
  it('workers: 2 and 3 with inlineBelow: 0 give the same memory and phases as one thread', async () => {
    const one = await runAll({ workers: 1, numerics: true });
    for (const workers of [2, 3]) {
      const many = await runAll({ workers, numerics: true, inlineBelow: 0 });
      expect(many.got).toEqual(one.got);
      // inlineBelow 0 sends the streams to the host to the workers too (readToHost): into shared memory.
      expect(many.buffers.out_c).toBe('SharedArrayBuffer');
      expect(one.buffers.out_c).toBe('ArrayBuffer');
      expect(Buffer.from(many.engine.memory.tileData())).toEqual(Buffer.from(one.engine.memory.tileData()));
      expect(many.engine.phases).toEqual(one.engine.phases);
    }
  });

  it("the workers map the main thread's vertex tables (shared memory, sim/shared-columns.ts), not copies of them", async () => {
    const program = addProgram();
    const engine = await Engine.create(program, { workers: 2, numerics: true, inlineBelow: 0 });
    try {
      for (const cs of program.computeSets) for (const v of Object.values(cs.vertices)) if (ArrayBuffer.isView(v)) expect(isShared(v)).toBe(true);
      // After the workers started, the main thread moves tile 0's Add output from c (@32) onto d and e (@48):
      // the workers run it there only if they read this memory.
      const cs0 = program.computeSets[0].vertices;
      const out = cs0.regionStart[cs0.fieldStart[0] + 2];
      expect(cs0.regionOffset[out]).toBe(32);
      cs0.regionOffset[out] = 48;
      const { io, got } = host();
      await engine.run('load', io, 0);
      await engine.run('step', io, 1);
      await engine.run('read', io, 2);
      // c[0:4] never written; the exchange puts c[4:6] = 55, 66 on d; e = d + c[0:2] = d.
      expect(got.c).toEqual([0, 0, 0, 0, 55, 66]);
      expect(got.e).toEqual([55, 66]);
    } finally {
      await engine.destroy();
    }
  });
});

describe('chunk claiming on the pool (TilePool.chunksOf)', () => {
  it("a stalled worker holds up one chunk, not a static share: the other takes every other chunk", async () => {
    // 64 tiles, one ThreadStamp vertex each; tile 0's blocks its thread for 1.5 s. With a static half
    // each, tiles 1-31 would wait behind it on the same thread; claimed chunk by chunk, the other
    // thread runs them all meanwhile. Custom codelets always run on the pool.
    const tiles = 64;
    const program: DeviceProgram = {
      schemaVersion: 1,
      device: tiny({ tilesPerIpu: tiles }),
      tensors: [{ id: 0, name: 'who', dtype: 'float32', shape: [tiles], category: 'activation', intervals: tensorIntervals(Array.from({ length: tiles }, (_, t) => ({ tile: t, begin: t, end: t + 1, offset: 0 }))) }],
      computeSets: [
        {
          id: 0,
          name: 'stamp/cs',
          op: 'stamp',
          vertices: vertexTable(Array.from({ length: tiles }, (_, t) => ({ codelet: 'test.ops::ThreadStamp', tile: t, fields: { out: f32(0, 1) }, params: (t === 0 ? { stallMs: 1500 } : {}) as Record<string, number> }))),
        },
      ],
      exchanges: [],
      streams: [{ id: 0, name: 'out_who', tensor: 0, direction: 'fromDevice' }],
      programs: { step: [{ kind: 'execute', computeSet: 0 }], read: [{ kind: 'streamCopy', stream: 0, op: 'read' }] },
      tileBytes: Array.from({ length: tiles }, () => 4),
      codeletModules: [fileURLToPath(new URL('../fixtures/ops/stall.codelets.ts', import.meta.url))],
    };
    const engine = await Engine.create(program, { workers: 2, numerics: true });
    try {
      const { io, got } = host();
      await engine.run('step', io, 0);
      await engine.run('read', io, 1);
      const who = got.who;
      expect(new Set(who).size).toBe(2);
      // Tile 0's chunk (tiles 0 .. 3 of 16 chunks) ran on the stalled thread; every later tile on the other.
      const stalled = who[0];
      const firstChunk = tiles / (2 * CHUNKS_PER_WORKER);
      expect(firstChunk).toBeLessThan(tiles / 2);
      expect(who.slice(firstChunk).every((w) => w !== stalled)).toBe(true);
    } finally {
      await engine.destroy();
    }
  });
});

describe('an exchange fused with the compute set after it (sim/fused.ts)', () => {
  /**
   * tile 0: x[0:2] @0; tile 1: y @0, z @8. The exchange copies x to y, then
   * the compute set doubles x in place (tile 0) and sets z = y + y (tile 1).
   * Run tile by tile, tile 0's vertex would double x before tile 1's copy
   * read it: fusing must be refused, and z is twice the old x.
   */
  function hazardProgram(): DeviceProgram {
    const p = addProgram();
    return {
      ...p,
      tensors: [
        { id: 0, name: 'x', dtype: 'float32', shape: [2], category: 'activation', intervals: tensorIntervals([{ tile: 0, begin: 0, end: 2, offset: 0 }]) },
        { id: 1, name: 'z', dtype: 'float32', shape: [2], category: 'activation', intervals: tensorIntervals([{ tile: 1, begin: 0, end: 2, offset: 8 }]) },
      ],
      computeSets: [
        {
          id: 0,
          name: 'double/cs',
          op: 'double',
          vertices: vertexTable([
            { codelet: 'Add', tile: 0, fields: { a: f32(0, 2), b: f32(0, 2), out: f32(0, 2) }, params: { offset: 0 } },
            { codelet: 'Add', tile: 1, fields: { a: f32(0, 2), b: f32(0, 2), out: f32(8, 2) }, params: { offset: 0 } },
          ]),
        },
      ],
      exchanges: [{ id: 0, name: 'double/ex', op: 'double', copies: copyTable([{ srcTile: 0, srcOffset: 0, dstTile: 1, dstOffset: 0, bytes: 8 }]) }],
      streams: [
        { id: 0, name: 'in_x', tensor: 0, direction: 'toDevice' },
        { id: 1, name: 'out_z', tensor: 1, direction: 'fromDevice' },
        { id: 2, name: 'out_x', tensor: 0, direction: 'fromDevice' },
      ],
      programs: {
        load: [{ kind: 'streamCopy', stream: 0, op: 'load' }],
        step: [
          { kind: 'exchange', exchange: 0 },
          { kind: 'execute', computeSet: 0 },
        ],
        read: [
          { kind: 'streamCopy', stream: 1, op: 'read' },
          { kind: 'streamCopy', stream: 2, op: 'read' },
        ],
      },
      tileBytes: [8, 16],
    };
  }

  it('gives the bytes and phases of the exchange then the compute set, on 1, 2 and 3 threads', async () => {
    const apart = await runAll({ workers: 1, numerics: true, inlineBelow: 0, fuse: false });
    // inlineBelow 0: fuse this tiny exchange too (by default only exchanges of INLINE_COPY_WORK or more are).
    for (const workers of [1, 2, 3]) {
      const fused = await runAll({ workers, numerics: true, inlineBelow: 0 });
      // Fused, the exchange's copies ran inside the compute set's run: no host time of their own.
      expect(fused.engine.hostTime.exchange).toBe(0);
      expect(fused.got).toEqual(apart.got);
      expect(Buffer.from(fused.engine.memory.tileData())).toEqual(Buffer.from(apart.engine.memory.tileData()));
      expect(fused.engine.phases).toEqual(apart.engine.phases);
    }
  });

  it('is refused when a vertex writes bytes a copy reads (the copies all run first)', async () => {
    for (const workers of [1, 2, 3]) {
      const engine = await Engine.create(hazardProgram(), { workers, numerics: true, inlineBelow: 0 });
      try {
        const got: Record<string, number[]> = {};
        const io: HostIO = { toDevice: () => new Float32Array([1.5, -3]), fromDevice: (s, _t, data) => void (got[s.name] = [...data]) };
        await engine.run('load', io, 0);
        await engine.run('step', io, 1);
        await engine.run('read', io, 2);
        expect(got).toEqual({ out_z: [3, -6], out_x: [3, -6] });
      } finally {
        await engine.destroy();
      }
    }
  });
});
