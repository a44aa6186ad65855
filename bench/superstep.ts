/**
 * The engine's own cost per superstep (issue 9: under 50 us): a hand-made
 * program of many tiny supersteps on a 64-tile mk2, each an exchange (a
 * 16-byte copy into each of 64 tiles) and a compute set (an Add of 4 floats
 * on each of the 64 tiles), timed with 1 and 2 workers. Tiny supersteps run
 * inline, so the time is the engine's: syncs, phase records, the exchange
 * plan and vertex runner calls. Also timed: the same with every superstep
 * sent to the pool (inlineBelow: 0), the round trip small supersteps avoid.
 *   npx tsx bench/superstep.ts   (these rows alone)
 */
import { Engine, type EngineOptions, type HostIO } from '../sim/engine.js';
import { copyTable, type ExchangeCopy } from '../sim/copies.js';
import type { DeviceProgram, Region } from '../sim/program.js';
import { loadDevicePreset } from '../src/config/devices.js';
import { vertexTable } from '../sim/vertex-table.js';

const TILES = 64;
const SUPERSTEPS = 2000;

export interface SuperstepRates {
  /** Microseconds per superstep (exchange + compute set). */
  inline1: number;
  inline2: number;
  pool2: number;
}

const f32 = (offset: number, count: number): Region => ({ offset, count, dtype: 'float32' });

function program(): DeviceProgram {
  // Tile t: x @0 (4 floats), y @16 (4 floats, from tile t + 1's x), z @32 (4 floats) = x + y.
  const copies: ExchangeCopy[] = Array.from({ length: TILES }, (_, t) => ({ srcTile: (t + 1) % TILES, srcOffset: 0, dstTile: t, dstOffset: 16, bytes: 16 }));
  return {
    schemaVersion: 1,
    device: { ...loadDevicePreset('mk2'), tilesPerIpu: TILES },
    tensors: [],
    computeSets: [
      {
        id: 0,
        name: 'add',
        op: 'add',
        vertices: vertexTable(Array.from({ length: TILES }, (_, t) => ({ codelet: 'Add', tile: t, fields: { a: f32(0, 4), b: f32(16, 4), out: f32(32, 4) }, params: { offset: 0 } }))),
      },
    ],
    exchanges: [{ id: 0, name: 'shift', op: 'add', copies: copyTable(copies) }],
    streams: [],
    programs: {
      step: [
        {
          kind: 'repeat',
          count: SUPERSTEPS,
          body: [
            { kind: 'exchange', exchange: 0 },
            { kind: 'execute', computeSet: 0 },
          ],
        },
      ],
    },
    tileBytes: Array(TILES).fill(48),
    codeletModules: [],
  };
}

const io: HostIO = { toDevice: () => new Float32Array(0), fromDevice: () => {} };

/** Microseconds per superstep: the best of 3 runs of SUPERSTEPS after a warm-up run. */
async function perSuperstep(options: EngineOptions): Promise<number> {
  const engine = await Engine.create(program(), options);
  try {
    await engine.run('step', io, 0);
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      engine.phases.length = 0;
      const t0 = performance.now();
      await engine.run('step', io, r + 1);
      best = Math.min(best, ((performance.now() - t0) * 1000) / SUPERSTEPS);
    }
    return best;
  } finally {
    await engine.destroy();
  }
}

export async function superstepOverhead(log: (s: string) => void = () => {}): Promise<SuperstepRates> {
  const r = {
    inline1: await perSuperstep({ workers: 1, numerics: true }),
    inline2: await perSuperstep({ workers: 2, numerics: true }),
    pool2: await perSuperstep({ workers: 2, numerics: true, inlineBelow: 0 }),
  };
  log(
    `engine per superstep (${TILES} tiles, exchange + compute set): ${r.inline1.toFixed(1)} us with 1 worker, ${r.inline2.toFixed(1)} us with 2 (inline), ` +
      `${r.pool2.toFixed(1)} us with 2 forced to the pool`,
  );
  return r;
}

if (import.meta.url === `file://${process.argv[1]}`) await superstepOverhead(console.log);
