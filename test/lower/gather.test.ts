/** LowerContext.gather: several runs of a tensor read back to back on one tile. */
import { describe, expect, it } from 'vitest';
import { Op } from '../../src/ir/op.js';
import { LowerContext } from '../../src/lower/context.js';
import { DeviceGraph } from '../../src/lower/devicegraph.js';
import { RunList } from '../../src/lower/layout.js';
import { tiny } from '../helpers.js';

class NopOp extends Op {
  constructor() {
    super({ domain: 'test', type: 'Nop', version: 1 }, { name: 'op' });
  }
  setup(): void {}
}

function setup() {
  const g = new DeviceGraph(tiny());
  const x = g.addTensor('x', 'float32', [16], 'activation');
  g.setTileMapping(x, [
    { tile: 0, begin: 0, end: 8 },
    { tile: 1, begin: 8, end: 16 },
  ]);
  const ctx = new LowerContext(g, new NopOp(), new Map(), () => 'activation');
  ctx.computeSet('cs');
  return { g, x, ctx };
}

describe('LowerContext.gather', () => {
  it('returns the runs themselves when they are all on the tile', () => {
    const { g, x, ctx } = setup();
    expect(ctx.gather(x, [[0, 2], [4, 6]], 0)).toEqual([
      { tensor: x.id, begin: 0, end: 2 },
      { tensor: x.id, begin: 4, end: 6 },
    ]);
    expect(g.tensors).toHaveLength(1);
    expect(g.exchanges).toHaveLength(0);
  });

  it('fills one tensor on the tile when several runs must travel, one copy per run, in order', () => {
    const { g, x, ctx } = setup();
    const s = ctx.gather(x, [[1, 3], [5, 6], [10, 12]], 1);
    expect(s).toHaveLength(1);
    expect(s[0].end - s[0].begin).toBe(5);
    const t = g.tensors[s[0].tensor];
    ctx.finish(); // closing the compute set sizes and maps the tile's exchange buffer
    expect(t.size).toBe(5);
    expect(t.mapping!.toArray()).toEqual([{ tile: 1, begin: 0, end: 5 }]);
    expect(g.exchanges[0].copies.list().map((c) => [c.src.begin, c.src.end, c.dst.begin, c.dst.end])).toEqual([
      [1, 3, 0, 2],
      [5, 6, 2, 3],
      [10, 12, 3, 5],
    ]);
    // Asked again within the op: the same tensor, no new copies.
    ctx.computeSet('again');
    expect(ctx.gather(x, [[1, 3], [5, 6], [10, 12]], 1)).toEqual(s);
    expect(g.exchanges[0].copies).toHaveLength(3);
  });

  it('copies run by run when only one run is remote', () => {
    const { g, x, ctx } = setup();
    const s = ctx.gather(x, [[2, 4], [9, 11]], 0);
    expect(s[0]).toEqual({ tensor: x.id, begin: 2, end: 4 });
    expect(s[1].end - s[1].begin).toBe(2);
    expect(g.tensors[s[1].tensor].category).toBe('exchange');
  });
});

describe('LowerContext.onTileOnce', () => {
  // Ranges asked for once each, none overlapping another on its tile: some here, some remote, several from one source tile.
  const asks: [number, number, number][] = [
    [0, 4, 0],
    [2, 6, 1],
    [8, 12, 0],
    [12, 16, 1],
    [12, 16, 0],
    [4, 8, 1],
  ];
  const repeats = (g: DeviceGraph) => {
    const c = g.exchanges[0].copies;
    return Array.from({ length: c.length }, (_, i) => c.repeatOf(i));
  };

  it('gives the slices, copies and buffers onTile gives for ranges asked for once', () => {
    const once = setup();
    const plain = setup();
    const a = asks.map(([b, e, tile]) => once.ctx.onTileOnce(once.x, b, e, tile));
    const b = asks.map(([b, e, tile]) => plain.ctx.onTile(plain.x, b, e, tile));
    once.ctx.finish();
    plain.ctx.finish();
    expect(a).toEqual(b);
    expect(once.g.exchanges[0].copies.list()).toEqual(plain.g.exchanges[0].copies.list());
    expect(repeats(once.g)).toEqual(repeats(plain.g));
    expect(once.g.tensors.map((t) => [t.name, t.size, t.mapping?.toArray()])).toEqual(plain.g.tensors.map((t) => [t.name, t.size, t.mapping?.toArray()]));
    // In place where the range is on the tile: no copy.
    expect(a[0]).toEqual({ tensor: once.x.id, begin: 0, end: 4 });
    expect(once.g.exchanges[0].copies).toHaveLength(4);
  });

  it('does not fan out: one range onto two tiles is two copies, where onTile makes the second repeat the first', () => {
    const once = setup();
    const plain = setup();
    for (const tile of [1, 2]) {
      once.ctx.onTileOnce(once.x, 0, 4, tile);
      plain.ctx.onTile(plain.x, 0, 4, tile);
    }
    expect(repeats(plain.g)).toEqual([-1, 0]);
    expect(repeats(once.g)).toEqual([-1, -1]);
  });

  it('keeps no entry for reuse: a range asked for again is copied again (what its callers promise never to do)', () => {
    const { g, x, ctx } = setup();
    ctx.onTileOnce(x, 10, 12, 0);
    ctx.onTileOnce(x, 10, 12, 0);
    expect(g.exchanges[0].copies).toHaveLength(2);
    // onTile reuses its own copy
    ctx.onTile(x, 12, 14, 0);
    ctx.onTile(x, 12, 13, 0);
    expect(g.exchanges[0].copies).toHaveLength(3);
  });

  it("gather's `once` gives the slices and copies a plain gather gives, with one RunList cleared between reads, and keeps no entry for reuse", () => {
    const reads: [number, number][][] = [
      [[0, 2], [4, 6], [9, 11]],
      [[1, 3], [10, 12]],
      [[5, 6], [13, 15]],
    ];
    const once = setup();
    const plain = setup();
    // One scratch list for every once read (as the matmul's reduction does), fresh lists for the plain gathers.
    const scratch = new RunList();
    const a = reads.map((runs, i) => {
      scratch.clear();
      for (const [b, e] of runs) scratch.push(b, e);
      return once.ctx.gather(once.x, scratch, i % 2, { oneSlice: true, once: true });
    });
    const b = reads.map((runs, i) => plain.ctx.gather(plain.x, runs, i % 2, { oneSlice: true }));
    once.ctx.finish();
    plain.ctx.finish();
    expect(a).toEqual(b);
    expect(once.g.exchanges[0].copies.list()).toEqual(plain.g.exchanges[0].copies.list());
    expect(repeats(once.g)).toEqual(repeats(plain.g));
    // Asked again (what its callers promise never to do): copied again, where a plain gather reuses its slice.
    once.ctx.computeSet('again');
    once.ctx.gather(once.x, reads[0], 0, { oneSlice: true, once: true });
    expect(once.g.exchanges.at(-1)!.copies.length).toBeGreaterThan(0);
    plain.ctx.computeSet('again');
    expect(plain.ctx.gather(plain.x, reads[0], 0, { oneSlice: true })).toEqual(b[0]);
  });
});
