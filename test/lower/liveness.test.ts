/**
 * Liveness (src/lower/liveness.ts) and the allocation built on it
 * (src/lower/memory.ts): lifetimes over the batch program, memory shared by
 * tensors that are never live together, code and vertex-state bytes, and the
 * out-of-memory error at a tile's peak. Offsets and byte counts are worked
 * out by hand in the comments.
 */
import { describe, expect, it } from 'vitest';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { Engine, type HostIO } from '../../sim/engine.js';
import type { ProgramStep, TensorCategory } from '../../sim/program.js';
import { RunError } from '../../src/errors.js';
import { DeviceGraph } from '../../src/lower/devicegraph.js';
import { computeLiveness, type Access, type LeafStep, type LivenessTensor } from '../../src/lower/liveness.js';
import { vertexStateBytes } from '../../src/lower/memory.js';
import { tiny } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

function codelets(): CodeletRegistry {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  return r;
}

describe('computeLiveness', () => {
  // Steps are compute sets 0, 1, 2, ...; compute set k's accesses are given per test.
  const T = (id: number, category: TensorCategory = 'activation', size = 4): LivenessTensor => ({ id, size, category });
  const run = (
    tensors: LivenessTensor[],
    sets: Access[][],
    batch: ProgramStep[] = sets.map((_, k) => ({ kind: 'execute', computeSet: k })),
    others: Record<string, ProgramStep[]> = {},
  ) => computeLiveness(tensors, { batch, ...others }, (s: LeafStep, visit: (a: Access) => void) => (s.kind === 'execute' ? sets[s.computeSet] : []).forEach(visit));
  const w = (tensor: number, begin = 0, end = 4): Access => ({ tensor, begin, end, read: false, write: true });
  const r = (tensor: number, begin = 0, end = 4): Access => ({ tensor, begin, end, read: true, write: false });

  it('a chain: each tensor from its first write to its last use; variables always', () => {
    // 0: t1 = f(v); 1: t2 = f(t1); 2: t3 = f(t2); 3: v = f(t3)
    const l = run([T(0, 'variable'), T(1), T(2), T(3, 'temporary')], [[r(0), w(1)], [r(1), w(2)], [r(2), w(3)], [r(3), w(0)]]);
    expect(l.lifetimes).toEqual(['always', { from: 0, to: 1 }, { from: 1, to: 2 }, { from: 2, to: 3 }]);
    expect(l.steps).toHaveLength(4);
  });

  it('constants, streams and exchange buffers: only the first two are always live', () => {
    const l = run([T(0, 'constant'), T(1, 'stream'), T(2, 'exchange'), T(3, 'gradient')], [[r(0), r(1), w(2)], [r(2), w(3)]]);
    expect(l.lifetimes).toEqual(['always', 'always', { from: 0, to: 1 }, { from: 1, to: 1 }]);
  });

  it('a tensor read before all of it is written is always live (it carries data between batches)', () => {
    // t0 read at 0, written at 1; t1 half written at 0, read whole at 1; t2 written in two halves, then read
    const l = run([T(0), T(1), T(2)], [[r(0), w(1, 0, 2), w(2, 0, 2)], [w(0), r(1), w(2, 2, 4)], [r(2)]]);
    expect(l.lifetimes).toEqual(['always', 'always', { from: 0, to: 2 }]);
  });

  it('writes out of element order: covered whole, or with a gap, or by a whole-tensor write', () => {
    // t0: [6,8) [0,3) [3,6) (overlapping [2,5)) cover 0..8; t1: [6,8) [0,3) [4,6) miss element 3; t2: [4,8) then all (end Infinity) after [0,2)
    const t = (id: number) => T(id, 'activation', 8);
    const l = run(
      [t(0), t(1), t(2)],
      [
        [w(0, 6, 8), w(0, 0, 3), w(0, 2, 5), w(0, 3, 6), w(1, 6, 8), w(1, 0, 3), w(1, 4, 6), w(2, 4, 8), w(2, 0, 2)],
        [w(2, 0, Infinity)],
        [r(0, 0, 8), r(1, 0, 8), r(2, 0, 8)],
      ],
    );
    expect(l.lifetimes).toEqual([{ from: 0, to: 2 }, 'always', { from: 0, to: 2 }]);
  });

  it('an in-place step (read and write at once) with nothing written before is always live', () => {
    const l = run([T(0)], [[{ tensor: 0, begin: 0, end: 4, read: true, write: true }], [r(0)]]);
    expect(l.lifetimes).toEqual(['always']);
  });

  it("a switch: its condition lives until the switch starts; its branches numbered one after the other", () => {
    // 0: c = f(); 1: d = f() (may not take c's memory: the switch reads c after it);
    // switch(c) { 2: t = f(d); 3: y = f(t) } else { 4: y = f(d) }; 5: read y
    const exe = (k: number): ProgramStep => ({ kind: 'execute', computeSet: k });
    const l = run(
      [T(0), T(1), T(2), T(3)],
      [[w(0)], [w(1)], [r(1), w(2)], [r(2), w(3)], [r(1), w(3)], [r(3)]],
      [exe(0), exe(1), { kind: 'switch', condition: 0, op: 'if', whenTrue: [exe(2), exe(3)], whenFalse: [exe(4)] }, exe(5)],
    );
    expect(l.lifetimes).toEqual([{ from: 0, to: 2 }, { from: 1, to: 4 }, { from: 2, to: 3 }, { from: 3, to: 5 }]);
    expect(l.steps).toHaveLength(6);
  });

  it('a tensor crossing a repeat is live through the whole body', () => {
    // flattened: 0 | repeat [1, 2, 3] | 4
    const batch: ProgramStep[] = [
      { kind: 'execute', computeSet: 0 },
      { kind: 'repeat', count: 3, body: [1, 2, 3].map((k) => ({ kind: 'execute' as const, computeSet: k })) },
      { kind: 'execute', computeSet: 4 },
    ];
    // t0: written before, read at 2 -> [0, 3]; t1: inside only, [1, 2]; t2: written at 2, read after -> [1, 4]
    const l = run([T(0), T(1), T(2)], [[w(0)], [w(1)], [r(0), r(1), w(2)], [], [r(2)]], batch);
    expect(l.lifetimes).toEqual([{ from: 0, to: 3 }, { from: 1, to: 2 }, { from: 1, to: 4 }]);
  });

  it('nested repeats: the inner body first, then the outer', () => {
    // 0 | repeat( 1 | repeat(2, 3) | 4 ) ; t0 written at 3 and read at 4 -> crosses the inner body [2, 3] -> [2, 4]
    const inner: ProgramStep = { kind: 'repeat', count: 2, body: [2, 3].map((k) => ({ kind: 'execute' as const, computeSet: k })) };
    const batch: ProgramStep[] = [
      { kind: 'execute', computeSet: 0 },
      { kind: 'repeat', count: 2, body: [{ kind: 'execute', computeSet: 1 }, inner, { kind: 'execute', computeSet: 4 }] },
    ];
    const l = run([T(0), T(1)], [[w(1)], [], [], [w(0)], [r(0), r(1)]], batch);
    // t1 written at 0 (outside the outer body [1, 4]) and read at 4: [0, 4]
    expect(l.lifetimes).toEqual([{ from: 2, to: 4 }, { from: 0, to: 4 }]);
  });

  it('tensors another program touches, tensors the batch never touches, and dropped tensors', () => {
    const others = { step: [{ kind: 'execute' as const, computeSet: 1 }] };
    const l = run([T(0), T(1), T(2), { ...T(3), dropped: true }], [[w(0), r(0)], [w(1)]], [{ kind: 'execute', computeSet: 0 }], others);
    // t0: read and written by step 0 with no earlier write (a read of unwritten data) -> always live;
    // t1: only the 'step' program touches it -> always; t2: never touched -> always; t3: dropped -> no memory
    expect(l.lifetimes).toEqual(['always', 'always', 'always', 'none']);
  });
});

describe('allocation with liveness', () => {
  /**
   * Tile 0: variables v (16 float32, 64 B) and w (8 float32, 32 B); temporaries
   * t1, t2 (16 float32) and t3 (8 float32). Batch: cs0 t1 = v; cs1 t2 = t1;
   * cs2 t3 = t2[0:8]; cs3 w = t3 (all Copy vertices).
   */
  function chain(overrides = {}) {
    const g = new DeviceGraph(tiny(overrides));
    const v = g.addTensor('v', 'float32', [16], 'variable');
    const w = g.addTensor('w', 'float32', [8], 'variable');
    const t1 = g.addTensor('t1', 'float32', [16], 'activation', 'A');
    const t2 = g.addTensor('t2', 'float32', [16], 'activation', 'B');
    const t3 = g.addTensor('t3', 'float32', [8], 'temporary', 'C');
    for (const t of [v, w, t1, t2, t3]) g.mapToTile(t, 0);
    const s = (t: { id: number; size: number }, begin = 0, end = t.size) => ({ tensor: t.id, begin, end });
    const steps: [string, ReturnType<typeof s>, ReturnType<typeof s>][] = [
      ['cs0', s(v), s(t1)],
      ['cs1', s(t1), s(t2)],
      ['cs2', s(t2, 0, 8), s(t3)],
      ['cs3', s(t3), s(w)],
    ];
    for (const [name, i, o] of steps) {
      const cs = g.addComputeSet(name, 'op');
      g.addVertex(cs, 'Copy', 0, { in: i, out: o });
      g.program('batch').push({ kind: 'execute', computeSet: cs });
    }
    return g;
  }

  it('shares memory between tensors never live together, and counts code and vertex state', async () => {
    const p = chain().finalize(codelets(), []);
    const off = (name: string) => p.tensors.find((t) => t.name === name)!.intervals.offset[0];
    // always live first: v [0, 64), w [64, 96).
    // t1 [0, 1] at 96; t2 [1, 2] overlaps t1 in time -> 160; t3 [2, 3]: t1 is dead, fits at 96 below t2.
    expect(['v', 'w', 't1', 't2', 't3'].map(off)).toEqual([0, 64, 96, 160, 96]);
    expect(p.tensors.map((t) => t.live)).toEqual([undefined, undefined, { from: 0, to: 1 }, { from: 1, to: 2 }, { from: 2, to: 3 }]);
    // data peak 224; 4 Copy vertices x (1 + 2 + 2 words) x 4 B = 80 B of vertex state; one codelet: 1024 B of code
    expect(p.memory![0]).toEqual({ alwaysLive: 96, temporaries: 128, code: 1024, vertexState: 80, total: 1328 });
    expect(p.memory![1]).toEqual({ alwaysLive: 0, temporaries: 0, code: 0, vertexState: 0, total: 0 });
    expect(p.tileBytes).toEqual([1328, 0, 0, 0]);

    // The shared bytes hold the right data at the right time: w = v[0:8].
    const engine = await Engine.create(p, { workers: 1, numerics: true });
    engine.write(engine.tensorByName('v'), Float32Array.from({ length: 16 }, (_, i) => i + 1));
    const io: HostIO = { toDevice: () => new Float32Array(), fromDevice: () => {} };
    await engine.run('batch', io, 0);
    expect([...engine.read(engine.tensorByName('w'))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await engine.destroy();
  });

  it('without a batch program every tensor is always live, laid out in order', () => {
    const g = chain();
    g.programs.step = g.programs.batch;
    delete g.programs.batch;
    const p = g.finalize(codelets(), []);
    // v 0, w 64, t1 96, t2 160, t3 224 -> 256 of data
    expect(p.tensors.map((t) => intervalList(t.intervals)[0].offset)).toEqual([0, 64, 96, 160, 224]);
    expect(p.memory![0]).toEqual({ alwaysLive: 256, temporaries: 0, code: 1024, vertexState: 80, total: 1360 });
  });

  it('out of memory: names the peak and the tensors live there, code and vertex state included', () => {
    let err: unknown;
    try {
      chain({ bytesPerTile: 1300 }).finalize(codelets(), []);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RunError);
    const msg = (err as RunError).message;
    expect(msg.split('\n')[0]).toBe("Out of memory on tile 0: 1328 bytes used but tiles only have 1300 bytes of memory (device 'tiny').");
    // live temporaries per step: 64, 128, 96, 32 -> the peak is step 1 (cs1): t1 and t2 with v and w
    expect(msg).toContain(
      'Tile 0 holds 96 bytes always live, 128 bytes of temporaries at their peak, 1024 bytes of code and 80 bytes of vertex state; ' +
        "its peak is at step 1 of the batch program (compute set 'cs1').",
    );
    const list = msg.slice(msg.indexOf('Largest tensors on tile 0:\n')).split('\n').slice(1, 5);
    expect(list).toEqual([
      '  v (variable, float32[16]): 64 bytes, always live',
      '  t1 (activation, op A, float32[16]): 64 bytes, live at steps 0-1',
      '  t2 (activation, op B, float32[16]): 64 bytes, live at steps 1-2',
      '  w (variable, float32[8]): 32 bytes, always live',
    ]);
    expect(msg).not.toContain('t3 (');
  });

  it('code counts each distinct codelet of a tile once', () => {
    const g = new DeviceGraph(tiny({ codeBytesPerCodelet: 500 }));
    const a = g.addTensor('a', 'float32', [4], 'variable');
    g.setTileMapping(a, [
      { tile: 0, begin: 0, end: 2 },
      { tile: 1, begin: 2, end: 4 },
    ]);
    const s = (b: number, e: number) => ({ tensor: a.id, begin: b, end: e });
    const cs = g.addComputeSet('cs', 'op');
    g.addVertex(cs, 'Copy', 0, { in: s(0, 1), out: s(1, 2) });
    g.addVertex(cs, 'Copy', 0, { in: s(1, 2), out: s(0, 1) });
    g.addVertex(cs, 'Add', 0, { a: s(0, 1), b: s(0, 1), out: s(1, 2) }, { offset: 0 });
    g.addVertex(cs, 'Copy', 1, { in: s(2, 3), out: s(3, 4) });
    const p = g.finalize(codelets(), []);
    // tile 0: Copy and Add -> 1000 B; tile 1: Copy -> 500 B
    expect(p.memory!.map((m) => m.code)).toEqual([1000, 500, 0, 0]);
    // tile 0 vertex state: Copy 5 words x 2, Add: 1 + a (2) + b, the same region as a (0) + out (2) + offset (1) = 6 words -> 64 B;
    // tile 1: one Copy, 5 words = 20 B, aligned to 8 -> 24 B
    expect(p.memory!.map((m) => m.vertexState)).toEqual([64, 24, 0, 0]);
  });
});

describe('vertexStateBytes', () => {
  it('a pointer and a count per field, list fields by region, params and vector params by word', () => {
    const r = (tensor: number, begin: number, end: number) => ({ tensor, begin, end });
    // 1 (vertex) + list of 3: 2 + 3 x 2 + out 2 + 2 params + array of 4: 2 + 4 = 19 words = 76 B
    expect(vertexStateBytes({ fields: { partials: [r(0, 0, 2), r(1, 0, 2), r(2, 0, 2)], out: r(3, 0, 2) }, params: { scale: 1, offset: 0 }, arrays: { shape: [1, 2, 3, 4] } })).toBe(76);
    // in place: a and out the same region count once: 1 + 2 + 2 (b) + 1 param = 6 words
    expect(vertexStateBytes({ fields: { a: r(0, 0, 8), b: r(1, 0, 8), out: r(0, 0, 8) }, params: { offset: 0 } })).toBe(24);
  });
});
