/**
 * Tile memory allocation. Every tensor is always live for now (variables must
 * be; activations and temporaries sharing memory by liveness is a planned
 * refinement), each interval aligned to the preset's allocationAlignment.
 * A tile that overflows fails the compile the way Poplar does, naming the
 * tile, the bytes and the largest tensors there.
 */
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES, type TileInterval } from '../../sim/program.js';
import { RunError } from '../errors.js';
import type { BuildTensor } from './devicegraph.js';

export interface Allocation {
  tileBytes: number[];
  intervals: TileInterval[][];
}

export function allocate(tensors: readonly BuildTensor[], device: DeviceSpec, numTiles: number): Allocation {
  const tileBytes = new Array<number>(numTiles).fill(0);
  const intervals: TileInterval[][] = tensors.map(() => []);
  const align = device.allocationAlignment;
  for (const t of tensors) {
    const size = DTYPE_BYTES[t.dtype];
    for (const m of t.mapping ?? []) {
      const offset = Math.ceil(tileBytes[m.tile] / align) * align;
      intervals[t.id].push({ tile: m.tile, begin: m.begin, end: m.end, offset });
      tileBytes[m.tile] = offset + (m.end - m.begin) * size;
    }
  }
  const worst = tileBytes.reduce((w, b, t) => (b > tileBytes[w] ? t : w), 0);
  if (tileBytes[worst] > device.bytesPerTile) throw outOfMemory(worst, tileBytes[worst], tensors, intervals, device);
  return { tileBytes, intervals };
}

function outOfMemory(tile: number, used: number, tensors: readonly BuildTensor[], intervals: TileInterval[][], device: DeviceSpec): RunError {
  const onTile = tensors
    .map((t) => ({
      t,
      bytes: intervals[t.id].filter((i) => i.tile === tile).reduce((s, i) => s + (i.end - i.begin) * DTYPE_BYTES[t.dtype], 0),
    }))
    .filter((x) => x.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, 5);
  const list = onTile
    .map(({ t, bytes }) => `  ${t.name} (${t.category}${t.op ? `, op ${t.op}` : ''}, ${t.dtype}[${t.shape.join(', ')}]): ${bytes} bytes`)
    .join('\n');
  return new RunError(
    `Out of memory on tile ${tile}: ${used} bytes used but tiles only have ${device.bytesPerTile} bytes of memory ` +
      `(device '${device.name}').\nLargest tensors on tile ${tile}:\n${list}\n` +
      `Use a device with more tiles (device: {preset: <name>, tiles: N}) or more memory per tile, or smaller shapes.`,
  );
}
