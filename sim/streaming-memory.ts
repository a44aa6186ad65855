/**
 * Streaming Memory (PopART's OffChip tensor storage): DDR beside the IPUs,
 * behind the IPU-Machine's gateway, which tiles reach only by remote buffer
 * copies (Poplar's remote buffers; PopART's RemoteLoad and RemoteStore).
 *
 * Cost of one copy of a tensor between tile memory and its remote buffer:
 * a fixed latency, then the bytes each IPU moves at that IPU's Streaming
 * Memory bandwidth (each IPU has its own link to the gateway, so a tensor
 * spread over several IPUs moves in parallel); the slowest IPU decides.
 *
 * Graphcore publishes the capacity (up to 448 GB per IPU-M2000, 256 GB per
 * Bow-2000) but no bandwidth or latency per IPU: the defaults below are
 * assumptions, documented in docs/architecture.md, and device fields
 * override them.
 */
import type { DeviceSpec } from './device.js';
import { DTYPE_BYTES, type DeviceTensor } from './program.js';

/**
 * ASSUMPTION: each IPU reaches the gateway over a PCIe Gen4 x8 link (the
 * IPU-M2000's block diagram), about 16 GB/s each way before protocol
 * overhead; we take 16e9 B/s.
 */
export const DEFAULT_STREAMING_MEMORY_BYTES_PER_SECOND = 16e9;
/** ASSUMPTION: 2 µs from the request to the first byte (a PCIe round trip plus DDR through the gateway). */
export const DEFAULT_STREAMING_MEMORY_LATENCY_NS = 2000;

/** Bytes per tile-clock cycle one IPU moves to or from Streaming Memory. */
export function streamingMemoryBytesPerCycle(device: DeviceSpec): number {
  return (device.streamingMemoryBytesPerSecond ?? DEFAULT_STREAMING_MEMORY_BYTES_PER_SECOND) / device.clockHz;
}

/** Cycles of one remote load or store of `t` (its intervals say which IPU holds which bytes). */
export function remoteCopyCycles(t: DeviceTensor, device: DeviceSpec): number {
  const size = DTYPE_BYTES[t.dtype];
  const perIpu = new Float64Array(device.ipus);
  const iv = t.intervals;
  for (let i = 0; i < iv.count; i++) perIpu[Math.min(device.ipus - 1, Math.floor(iv.tile[i] / device.tilesPerIpu))] += (iv.end[i] - iv.begin[i]) * size;
  const busiest = perIpu.reduce((a, b) => Math.max(a, b), 0);
  const latency = Math.ceil(((device.streamingMemoryLatencyNs ?? DEFAULT_STREAMING_MEMORY_LATENCY_NS) * device.clockHz) / 1e9);
  return latency + Math.ceil(busiest / streamingMemoryBytesPerCycle(device));
}

/** The phase name of a remote load or store of tensor `name`. */
export function remoteName(kind: 'remoteLoad' | 'remoteStore', name: string): string {
  return `${kind}(${name})`;
}
