/** The report's insight rules on a made-up run whose problems are known. */
import { describe, expect, it } from 'vitest';
import { insights } from '../../src/report/insights.js';
import type { ProgramRow } from '../../src/report/program-view.js';
import type { ReportData } from '../../src/report/report-data.js';
import type { Summary } from '../../src/report/summary.js';
import type { TileRow } from '../../src/report/types.js';

const tile = (t: number, o: Partial<TileRow>): TileRow => ({ tile: t, bytes: 0, computeCycles: 0, exchangeBytes: 0, alwaysLive: 0, temporaries: 0, code: 0, vertexState: 0, sentBytes: 0, receivedBytes: 0, ...o });
const row = (i: number, o: Partial<ProgramRow>): ProgramRow => ({ programStep: i, kind: 'compute', name: `cs${i}`, op: 'Op', cycles: 0, syncCycles: 0, tiles: 0, vertices: 0, regions: 0, maxTileCycles: 0, meanTileCycles: 0, busiestTile: -1, bytes: 0, codelets: '', ...o });

function data(): ReportData {
  // Tile 0 holds 800 B, mostly temporaries; the other 15 hold 160 B, a quarter of it vertex state.
  const tiles = [tile(0, { bytes: 800, alwaysLive: 100, temporaries: 500, code: 50, vertexState: 150 })];
  for (let t = 1; t < 16; t++) tiles.push(tile(t, { bytes: 160, alwaysLive: 60, temporaries: 20, code: 40, vertexState: 40 }));
  const summary = {
    schemaVersion: 1, name: 'made-up', device: { name: 'x', tiles: 16, clockHz: 1e9 },
    cycles: { total: 2000, compute: 1000, exchange: 200, sync: 600, streamCopy: 200 }, seconds: 2e-6,
    steps: [{ step: 0, cycles: 2000 }], ops: [],
    memory: { tileCapacity: 1000, maxTileBytes: 800, meanTileBytes: 200, maxTile: 0, totalBytes: 3200, tilesUsed: 16 },
    outputs: {}, host: { wallSeconds: 0, workers: 1 },
  } satisfies Summary;
  const program = [
    row(0, { kind: 'exchange', name: 'Add/exchange', op: 'Add', cycles: 100, syncCycles: 50, tiles: 16, bytes: 4096, busiestTile: 3 }),
    row(1, { name: 'Add/add', op: 'Add', cycles: 700, syncCycles: 0, tiles: 1, vertices: 40, regions: 120, maxTileCycles: 700, meanTileCycles: 700, busiestTile: 0, codelets: 'Add x 40' }),
    row(2, { name: 'MatMul/amp', op: 'MatMul', cycles: 300, syncCycles: 50, tiles: 16, vertices: 16, regions: 48, maxTileCycles: 300, meanTileCycles: 100, busiestTile: 5, codelets: 'AmpMatMul x 16' }),
  ];
  return {
    summary, tables: { steps: [], ops: [], tiles }, liveness: [], program, programTiles: [{ programStep: 1, tile: 0, vertices: 40, regions: 120, cycles: 700, sentBytes: 0, receivedBytes: 0 }],
    tensors: [{ name: 'act', op: 'Add', category: 'activation', dtype: 'float32', shape: '10x10', bytes: 400, tiles: 1, maxTile: 0, maxTileBytes: 400, peakTileBytes: 400, liveFrom: 1, liveTo: 2 }],
  };
}

describe('insights', () => {
  const list = insights(data());
  const titles = list.map((i) => i.title);

  it('names the peak tile, its split and the advice for its largest part', () => {
    expect(list[0].title).toBe('Tile 0 has the most memory in use: 800 B, 80% of 1,000 B');
    expect(list[0].detail).toContain('temporaries 500 B (63%)');
    expect(list[0].advice).toMatch(/availableMemoryProportion/);
    expect(titles).toContain('Tile 0 holds 4.0x the mean tile');
  });

  it('names a tensor with its share of the peak tile and when it is live', () => {
    const t = list.find((i) => i.kind === 'tensor')!;
    expect(t.title).toBe("Tensor act is 50% of tile 0's peak (400 B)");
    expect(t.detail).toContain('live from step 1 Add/add to 2 MatMul/amp');
  });

  it('flags high vertex state, a compute set on few tiles, an unbalanced one, an exchange and syncs', () => {
    expect(titles.some((x) => /^Vertex state on tile \d+ is high: 40 B, 25% of its memory/.test(x))).toBe(true);
    expect(titles).toContain('Add/add runs on 1 of 16 tiles for 700 cycles a step (58% of a step)');
    expect(titles).toContain('MatMul/amp is unbalanced: tile 5 takes 300 cycles, the mean tile 100');
    expect(titles).toContain('Add/exchange moves 4,096 B a step over 16 tiles');
    expect(titles).toContain('Syncs take 30% of all cycles');
  });

  it("measures a compute set against the step's length, not the program rows' sum (a pipeline's rows overlap)", () => {
    const d = data();
    // A pipelined step: 1,400 cycles, though its program rows, overlapped lanes included, sum to 1,200 + 1,200.
    d.program = [...d.program, ...d.program.map((r) => ({ ...r, programStep: r.programStep + 3, name: `${r.name}'` }))];
    d.tables.steps = [{ step: 0, cycles: 1400, compute: 1000, exchange: 200, sync: 200, streamCopy: 0 }];
    expect(insights(d).map((i) => i.title)).toContain('Add/add runs on 1 of 16 tiles for 700 cycles a step (50% of a step)');
  });

  it('a weight live only around its use (off chip or sharded) is not told it lives all run', () => {
    const d = data();
    d.tensors = [{ ...d.tensors[0], name: 'w', category: 'variable' }];
    expect(insights(d).find((i) => i.kind === 'tensor')!.advice).toMatch(/only from its load or gather to its last use/);
    d.tensors = [{ ...d.tensors[0], name: 'w', category: 'variable', liveFrom: -1, liveTo: -1 }];
    expect(insights(d).find((i) => i.kind === 'tensor')!.advice).toMatch(/lives all run/);
  });

  it('says nothing about what is fine', () => {
    const d = data();
    d.summary.cycles.sync = 100;
    d.program[2].maxTileCycles = 110;
    const quiet = insights(d).map((i) => i.kind + ': ' + i.title);
    expect(quiet.some((x) => x.startsWith('sync'))).toBe(false);
    expect(quiet.some((x) => x.includes('unbalanced'))).toBe(false);
  });
});
