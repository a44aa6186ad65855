/**
 * Strided copies (DeviceGraph.addStridedCopy, LowerContext.gather): a block of
 * a matrix copied row by row as one copy must move the same bytes, and cost
 * the same cycles, as the copies of its runs one by one, piece by piece,
 * whatever the tensors' layouts; and it must make fewer rows where the
 * layout allows (a plain copy too, where its pieces repeat between two tiles).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { copyList, runCount, unstrided, type CopyTable } from '../../sim/copies.js';
import { exchangeCost } from '../../sim/cost.js';
import { planExchange } from '../../sim/exchange.js';
import { TileMemory } from '../../sim/memory.js';
import { DTYPE_BYTES, type DeviceDType, type DeviceProgram } from '../../sim/program.js';
import { Op } from '../../src/ir/op.js';
import { LowerContext } from '../../src/lower/context.js';
import { DeviceGraph, type BuildTensor, type TileRange } from '../../src/lower/devicegraph.js';
import type { DeviceSpec } from '../../sim/device.js';
import { tiny } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

function codelets(): CodeletRegistry {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  return r;
}

/** Blocks of one matrix [rows, cols], each copied into its own tensor (tile `dstTile`, element `at` on). */
interface Block {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  dstTile: number;
  /** Elements between the starts of two rows in the destination (>= the row's length). */
  dstPitch: number;
}

/** The program of `blocks` copied from a [rows, cols] matrix mapped as `mapping`: strided, or run by run. */
function build(dtype: DeviceDType, rows: number, cols: number, mapping: TileRange[], blocks: Block[], strided: boolean, dstCategory: 'activation' | 'exchange' = 'activation'): DeviceProgram {
  const g = new DeviceGraph(tiny({ tilesPerIpu: 8 }));
  const src = g.addTensor('src', dtype, [rows, cols], 'activation');
  g.setTileMapping(src, mapping);
  const ex = g.addExchange('ex', 'op');
  blocks.forEach((b, i) => {
    const len = b.c1 - b.c0;
    const runs = b.r1 - b.r0;
    const dst = g.addTensor(`dst${i}`, dtype, [runs * b.dstPitch], dstCategory);
    g.mapToTile(dst, b.dstTile);
    const first = b.r0 * cols + b.c0;
    if (strided) g.addStridedCopy(ex, { tensor: src.id, begin: first, end: first + len }, { tensor: dst.id, begin: 0, end: len }, runs, cols, b.dstPitch);
    else for (let k = 0; k < runs; k++) g.addCopy(ex, { tensor: src.id, begin: first + k * cols, end: first + k * cols + len }, { tensor: dst.id, begin: k * b.dstPitch, end: k * b.dstPitch + len });
  });
  return g.finalize(codelets(), []);
}

/** Every tensor's bytes after running the exchange on memory whose source holds 1, 2, 3, ... (by plan records, as the engine does). */
function run(p: DeviceProgram): number[][] {
  const mem = new TileMemory(p.tileBytes, { planRecords: runCount(p.exchanges[0].copies) });
  const src = p.tensors[0];
  for (const iv of intervalList(src.intervals)) {
    const v = mem.view(iv.tile, { offset: iv.offset, count: iv.end - iv.begin, dtype: src.dtype });
    for (let i = iv.begin; i < iv.end; i++) v[i - iv.begin] = (i % 100) + 1;
  }
  const plan = planExchange(p.exchanges[0], mem, 1)!;
  mem.runPlan(plan.at, plan.bounds[1]);
  return p.tensors.map((t) => intervalList(t.intervals).flatMap((iv) => Array.from(mem.bytes(iv.tile, iv.offset, (iv.end - iv.begin) * DTYPE_BYTES[t.dtype]))));
}

/** A graph with x [4, 8] on tile 0 and an op's LowerContext, a compute set open. */
function lowering(device: DeviceSpec): { g: DeviceGraph; x: BuildTensor; ctx: LowerContext } {
  const g = new DeviceGraph(device);
  const x = g.addTensor('x', 'float32', [4, 8], 'activation');
  g.mapToTile(x, 0);
  class NopOp extends Op {
    constructor() {
      super({ domain: 'test', type: 'Nop', version: 1 }, { name: 'op' });
    }
    setup(): void {}
  }
  const ctx = new LowerContext(g, new NopOp(), new Map(), () => 'activation');
  ctx.computeSet('cs');
  return { g, x, ctx };
}

/** A [rows, cols] matrix of `dtype` cut into intervals at `cuts`, dealt to `tiles` in turn, and `more` drawn for it. */
function matrixProblem<T>(dtypes: DeviceDType[], more: (rows: number, cols: number) => fc.Arbitrary<T>) {
  return fc.record({ rows: fc.integer({ min: 1, max: 6 }), cols: fc.integer({ min: 1, max: 9 }) }).chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      dtype: fc.constantFrom(...dtypes),
      cuts: fc.array(fc.nat(1000), { maxLength: 8 }),
      tiles: fc.array(fc.nat(7), { minLength: 1, maxLength: 8 }),
      more: more(rows, cols),
    }),
  );
}

/** The matrix's mapping: its elements cut at the cuts (taken modulo its size), interval i on tiles[i % tiles.length]. */
function mappingOf(rows: number, cols: number, cuts: number[], tiles: number[]): TileRange[] {
  const size = rows * cols;
  const points = size > 1 ? [...new Set(cuts.map((c) => 1 + (c % (size - 1))))].sort((a, b) => a - b) : [];
  const bounds = [0, ...points, size];
  return bounds.slice(0, -1).map((b, i) => ({ tile: tiles[i % tiles.length], begin: b, end: bounds[i + 1] }));
}

const sortedRuns = (t: CopyTable) => copyList(t).sort((a, b) => a.srcTile - b.srcTile || a.srcOffset - b.srcOffset || a.dstTile - b.dstTile || a.dstOffset - b.dstOffset);

describe('strided copies', () => {
  it('a block inside one interval is one row; cut by a column boundary repeating every row, one row per side; a plain copy of the rows too', () => {
    // [4, 8] fp32: rows 0-1 on tile 0, rows 2-3 on tile 1 (one interval each).
    const byRows: TileRange[] = [
      { tile: 0, begin: 0, end: 16 },
      { tile: 1, begin: 16, end: 32 },
    ];
    const one = build('float32', 4, 8, byRows, [{ r0: 0, r1: 2, c0: 2, c1: 5, dstTile: 3, dstPitch: 3 }], true);
    const c = one.exchanges[0].copies;
    expect(c.count).toBe(1);
    expect([c.srcTile[0], c.srcOffset[0], c.dstTile[0], c.bytes[0], c.runs![0], c.srcStride![0], c.dstStride![0]]).toEqual([0, 8, 3, 12, 2, 32, 12]);
    // Columns 0-3 of each row on tile 0, 4-7 on tile 1, each tile's pieces back to back: a block across column 4 is two rows.
    const byCols: TileRange[] = [];
    for (let r = 0; r < 4; r++) byCols.push({ tile: 0, begin: r * 8, end: r * 8 + 4 }, { tile: 1, begin: r * 8 + 4, end: r * 8 + 8 });
    const two = build('float32', 4, 8, byCols, [{ r0: 0, r1: 4, c0: 2, c1: 6, dstTile: 3, dstPitch: 4 }], true);
    expect(two.exchanges[0].copies.count).toBe(2);
    expect(Array.from(two.exchanges[0].copies.runs!)).toEqual([4, 4]);
    expect(run(two)).toEqual(run(build('float32', 4, 8, byCols, [{ r0: 0, r1: 4, c0: 2, c1: 6, dstTile: 3, dstPitch: 4 }], false)));
    // Rows 0-3 whole as one contiguous copy: its pieces alternate between tiles 0 and 1, a strided row each.
    const whole = build('float32', 4, 8, byCols, [{ r0: 0, r1: 1, c0: 0, c1: 32, dstTile: 3, dstPitch: 32 }], false);
    expect(Array.from(whole.exchanges[0].copies.runs!)).toEqual([4, 4]);
  });

  it('moves the same bytes and costs the same as its runs copied one by one, whatever the layout (property)', () => {
    const dtypes: DeviceDType[] = ['float32', 'float16', 'uint8'];
    const block = (rows: number, cols: number) =>
      fc
        .record({ r0: fc.nat(rows - 1), nr: fc.integer({ min: 1, max: rows }), c0: fc.nat(cols - 1), nc: fc.integer({ min: 1, max: cols }), dstTile: fc.nat(7), pad: fc.nat(2) })
        .map(({ r0, nr, c0, nc, dstTile, pad }) => {
          const r1 = Math.min(rows, r0 + nr);
          const c1 = Math.min(cols, c0 + nc);
          return { r0, r1, c0, c1, dstTile, dstPitch: c1 - c0 + pad };
        });
    const problem = matrixProblem(dtypes, (rows, cols) =>
      fc.record({
        // Several blocks: the same block to several tiles (a broadcast), overlapping blocks (runs shared by two rows).
        // Exchange buffers (as onTile and gather fill): the copies share their rows.
        dstCategory: fc.constantFrom('activation' as const, 'exchange' as const),
        blocks: fc.array(block(rows, cols), { minLength: 1, maxLength: 4 }).chain((bs) => fc.constantFrom(bs, [...bs, { ...bs[0], dstTile: (bs[0].dstTile + 1) % 8 }])),
      }),
    );
    fc.assert(
      fc.property(problem, ({ rows, cols, dtype, cuts, tiles, more: { blocks, dstCategory } }) => {
        const mapping = mappingOf(rows, cols, cuts, tiles);
        const strided = build(dtype, rows, cols, mapping, blocks, true, dstCategory);
        const plain = build(dtype, rows, cols, mapping, blocks, false, dstCategory);
        // The reference: the runs' copies, one row per piece (plain copies are strided too where their pieces repeat).
        const s = strided.exchanges[0].copies;
        const u = unstrided(plain.exchanges[0].copies);
        expect(s.count).toBeLessThanOrEqual(u.count);
        if (s.runs) expect(8 * s.count).toBeLessThan(5 * u.count); // strided only where it pays
        expect(runCount(s)).toBe(u.count);
        expect(sortedRuns(s)).toEqual(sortedRuns(u));
        expect(run(strided)).toEqual(run(plain));
        const device = strided.device;
        const reference = { ...plain.exchanges[0], copies: u };
        expect(exchangeCost(strided.exchanges[0], device)).toEqual(exchangeCost(reference, device));
        expect(exchangeCost(plain.exchanges[0], device)).toEqual(exchangeCost(reference, device));
        expect(exchangeCost({ ...strided.exchanges[0], onTileCost: true }, device)).toEqual(exchangeCost({ ...reference, onTileCost: true }, device));
      }),
      { numRuns: 300 },
    );
  });

  it('copies repeating an earlier copy\'s source fan out: one row per piece, the same bytes moved and the same cycles as a row per reader (property)', () => {
    const dtypes: DeviceDType[] = ['float32', 'float16'];
    const block = (rows: number, cols: number) =>
      fc
        .record({ r0: fc.nat(rows - 1), nr: fc.integer({ min: 1, max: rows }), c0: fc.nat(cols - 1), nc: fc.integer({ min: 1, max: cols }), pad: fc.nat(2) })
        .map(({ r0, nr, c0, nc, pad }) => ({ r0, r1: Math.min(rows, r0 + nr), c0, c1: Math.min(cols, c0 + nc), pad }));
    const problem = matrixProblem(dtypes, (rows, cols) =>
      fc.record({
        blocks: fc.array(block(rows, cols), { minLength: 1, maxLength: 3 }),
        // Which block each reader reads, and its tile (a reader on a source tile copies on-tile).
        readers: fc.array(fc.record({ block: fc.nat(2), tile: fc.nat(7) }), { minLength: 2, maxLength: 8 }),
      }),
    );
    // As LowerContext.gather fills them: one exchange buffer, each reader's block on its tile; with `fan`, a
    // reader of a block read before repeats the first reader's copy.
    const buildShared = (dtype: DeviceDType, rows: number, cols: number, mapping: TileRange[], readers: (Block & { pad: number })[], fan: boolean) => {
      const g = new DeviceGraph(tiny({ tilesPerIpu: 8 }));
      const src = g.addTensor('src', dtype, [rows, cols], 'activation');
      g.setTileMapping(src, mapping);
      const ex = g.addExchange('ex', 'op');
      const sizes = readers.map((b) => (b.r1 - b.r0) * b.dstPitch);
      const buf = g.addTensor('buf', dtype, [sizes.reduce((a, b) => a + b, 0)], 'exchange');
      const at = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
      g.setTileMapping(buf, readers.map((b, i) => ({ tile: b.dstTile, begin: at[i], end: at[i] + sizes[i] })).filter((r) => r.end > r.begin));
      readers.forEach((b, i) => {
        const first = b.r0 * cols + b.c0;
        const len = b.c1 - b.c0;
        g.addStridedCopy(ex, { tensor: src.id, begin: first, end: first + len }, { tensor: buf.id, begin: at[i], end: at[i] + len }, b.r1 - b.r0, cols, b.dstPitch);
        const j = readers.findIndex((o) => o.r0 === b.r0 && o.r1 === b.r1 && o.c0 === b.c0 && o.c1 === b.c1 && o.dstPitch === b.dstPitch);
        if (fan && j < i) g.exchanges[ex].copies.repeats(i, j);
      });
      return g.finalize(codelets(), []);
    };
    let fanned = 0;
    fc.assert(
      fc.property(problem, ({ rows, cols, dtype, cuts, tiles, more: { blocks, readers } }) => {
        const mapping = mappingOf(rows, cols, cuts, tiles);
        const reads = readers.map((r) => {
          const b = blocks[r.block % blocks.length];
          return { ...b, dstTile: r.tile, dstPitch: b.c1 - b.c0 + b.pad };
        });
        const withFan = buildShared(dtype, rows, cols, mapping, reads, true);
        const without = buildShared(dtype, rows, cols, mapping, reads, false);
        const f = withFan.exchanges[0].copies;
        const u = unstrided(without.exchanges[0].copies);
        if (f.fan) fanned++;
        // Not a property: fewer rows than a row per reader. A fanned copy's rows are its own, so where its pieces
        // would have joined the strided rows of copies next to it into the same tile, a small table can have
        // more rows (found by this test: 8 against 6). test/lower/operand-layout.test.ts checks the gain on a planned matmul.
        expect(runCount(f)).toBe(u.count);
        expect(sortedRuns(f)).toEqual(sortedRuns(u));
        expect(run(withFan)).toEqual(run(without));
        const device = withFan.device;
        expect(exchangeCost(withFan.exchanges[0], device)).toEqual(exchangeCost(without.exchanges[0], device));
        expect(exchangeCost({ ...withFan.exchanges[0], onTileCost: true }, device)).toEqual(exchangeCost({ ...without.exchanges[0], onTileCost: true }, device));
      }),
      { numRuns: 300 },
    );
    // The property saw fanned-out tables, not only exchanges where no repeat could fan out.
    expect(fanned).toBeGreaterThan(100);
  });

  it('LowerContext.gather makes one strided copy of runs of one length at one stride', () => {
    const { g, x, ctx } = lowering(tiny());
    // Rows 0-3, columns 1-3, then a run of another length.
    const s = ctx.gather(x, [[1, 4], [9, 12], [17, 20], [25, 28], [30, 32]], 1);
    expect(s).toHaveLength(1);
    expect(g.exchanges[0].copies).toHaveLength(2);
    expect(g.exchanges[0].copies.list().map((c) => [c.src.begin, c.src.end, c.dst.begin, c.dst.end])).toEqual([
      [1, 4, 0, 3],
      [9, 12, 3, 6],
      [17, 20, 6, 9],
      [25, 28, 9, 12],
      [30, 32, 12, 14],
    ]);
    // The same runs onto another tile repeat those copies (finalize fans them out); other runs do not.
    ctx.gather(x, [[1, 4], [9, 12], [17, 20], [25, 28], [30, 32]], 2);
    ctx.gather(x, [[1, 4], [9, 12], [17, 20], [25, 28]], 3);
    const c = g.exchanges[0].copies;
    expect(Array.from({ length: c.length }, (_, i) => c.repeatOf(i))).toEqual([-1, -1, 0, 1, -1]);
    // onTile's copies of one range onto other tiles repeat the first; another range does not.
    ctx.onTile(x, 8, 16, 1);
    ctx.onTile(x, 8, 16, 2);
    ctx.onTile(x, 8, 15, 3);
    expect([5, 6, 7].map((i) => c.repeatOf(i))).toEqual([-1, 5, -1]);
    // Repeats form stars: a copy may repeat only an earlier copy that repeats none.
    expect(() => c.repeats(7, 6)).toThrow(/cannot repeat/);
    expect(() => c.repeats(5, 7)).toThrow(/cannot repeat/);
  });

  it('a clone of the lowering on another IPU repeats the same copies (its rows fan out alike)', () => {
    const { g, x, ctx } = lowering(tiny({ ipus: 2, tilesPerIpu: 4 }));
    for (const tile of [1, 2, 3]) ctx.gather(x, [[1, 4], [9, 12], [17, 20]], tile);
    ctx.finish();
    const made = { tensors: [0, g.tensors.length] as [number, number], computeSets: [0, g.computeSets.length] as [number, number], exchanges: [0, 1] as [number, number] };
    const ids = g.cloneShifted(made, 4, (n) => `${n}'`)!;
    const repeats = (e: number) => Array.from({ length: g.exchanges[e].copies.length }, (_, i) => g.exchanges[e].copies.repeatOf(i));
    expect(repeats(0)).toEqual([-1, 0, 0]);
    expect(repeats(ids.exchange(0))).toEqual(repeats(0));
  });

  it("a clone's reads of the tensors it reads in place of the template's inputs count as uses of them (finalize's check of dropped tensors sees them)", () => {
    const { g, x, ctx } = lowering(tiny({ ipus: 2, tilesPerIpu: 4 }));
    ctx.gather(x, [[1, 4], [9, 12], [17, 20]], 1);
    ctx.finish();
    const made = { tensors: [1, g.tensors.length] as [number, number], computeSets: [0, g.computeSets.length] as [number, number], exchanges: [0, 1] as [number, number] };
    const y = g.addTensor('y', x.dtype, x.shape, x.category);
    g.setTileMapping(y, x.mapping!.shifted(4).toArray());
    // An input the template never reads (its stand-in stays unused).
    const unread = g.addTensor('unread', x.dtype, x.shape, x.category);
    g.mapToTile(unread, 0);
    g.addStream('unread<-host', unread, 'toDevice');
    const standIn = g.addTensor('standIn', x.dtype, x.shape, x.category);
    g.mapToTile(standIn, 4);
    expect(g.isReferenced(y)).toBe(false);
    g.cloneShifted(made, 4, (n) => `${n}'`, new Map([[x.id, y.id], [unread.id, standIn.id]]));
    expect(g.isReferenced(y)).toBe(true);
    expect(g.isReferenced(standIn)).toBe(false);
  });
});
