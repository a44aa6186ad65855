/**
 * The per-tile memory summary `sim compile` prints (src/cli/compile-report.ts
 * memoryReport), from the allocation's per-tile breakdown: max and mean tile,
 * the categories, the five fullest tiles.
 */
import { describe, expect, it } from 'vitest';
import type { DeviceProgram, TileMemoryUse } from '../../sim/program.js';
import { memoryReport } from '../../src/cli/compile-report.js';
import { tiny } from '../helpers.js';

const use = (alwaysLive: number, temporaries: number, code: number, vertexState: number): TileMemoryUse => ({
  alwaysLive,
  temporaries,
  code,
  vertexState,
  total: alwaysLive + temporaries + code + vertexState,
});

function program(memory: TileMemoryUse[]): DeviceProgram {
  const device = tiny({ tilesPerIpu: memory.length, bytesPerTile: 10000 });
  return { schemaVersion: 1, device, tensors: [], computeSets: [], exchanges: [], streams: [], programs: {}, tileBytes: memory.map((m) => m.total), codeletModules: [], memory };
}

describe('memoryReport', () => {
  it('max and mean over the used tiles, by category, and the five fullest tiles', () => {
    const p = program([
      use(100, 200, 1024, 40), // 1364
      use(0, 0, 0, 0), // unused
      use(300, 400, 2048, 80), // 2828
      use(50, 0, 1024, 16), // 1090
      use(10, 20, 1024, 8), // 1062
      use(10, 20, 1024, 8), // 1062 (ties: lower tile first)
      use(500, 100, 1024, 24), // 1648
    ]);
    const lines = memoryReport(p);
    expect(lines).toContain('  tiles used       6 of 7');
    expect(lines).toContain('  max tile         2828 B on tile 2 (28.28% of 10000 B)');
    // mean of 1364, 2828, 1090, 1062, 1062, 1648 = 9054 / 6 = 1509
    expect(lines).toContain('  mean (used)      1509 B (15.09%)');
    expect(lines).toContain('  total            9054 B');
    // per category: max tile's value, then the mean over used tiles (always-live 970 / 6 = 161.7 -> 162)
    expect(lines).toContain('    always-live           300 B        162 B');
    expect(lines).toContain('    peak temporaries      400 B        123 B');
    expect(lines).toContain('    code                 2048 B       1195 B');
    expect(lines).toContain('    vertex state           80 B         29 B');
    const fullest = lines.slice(lines.findIndex((l) => l.startsWith('  fullest tiles')) + 1);
    expect(fullest.map((l) => l.trim().split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'tile 2 2828',
      'tile 6 1648',
      'tile 0 1364',
      'tile 3 1090',
      'tile 4 1062',
    ]);
    expect(fullest[0]).toContain('always-live 300, peak temporaries 400, code 2048, vertex state 80');
  });

  it('reads tileBytes as data when a program has no breakdown', () => {
    const p = program([use(64, 0, 0, 0), use(0, 0, 0, 0)]);
    delete p.memory;
    expect(memoryReport(p)).toContain('  max tile         64 B on tile 0 (0.64% of 10000 B)');
  });
});
