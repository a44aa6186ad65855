/**
 * DeviceSpec: the IPU-model parameters of one chip. Every number comes from a
 * preset in configs/devices/*.yaml, which cites its source; the engine has no
 * hardware constants of its own.
 */
import type { IpuTopology } from './links.js';

export interface DeviceSpec {
  /** Preset name, e.g. "mk2". */
  name: string;
  ipus: number;
  tilesPerIpu: number;
  /** Tile clock in Hz. */
  clockHz: number;
  /** SRAM per tile in bytes. */
  bytesPerTile: number;
  /** Worker contexts per tile (the barrel scheduler's width), 6 on every IPU so far. */
  workersPerTile: number;
  /** Width of one worker vector instruction in bits (64: 2 x f32 or 4 x f16). */
  vectorWidthBits: number;
  /** Bytes one tile can send (and, separately, receive) per cycle during exchange. */
  exchangeBytesPerCycle: number;
  /** Tiles sharing one exchange bus; tiles receiving the same data get it at this multiple. */
  tilesPerSharedBus: number;
  /** Cycles of one on-chip sync (barrier) between compute and exchange. */
  syncCycles: number;
  /** Host link bandwidth for stream copies, bytes per second. */
  hostLinkBytesPerSecond: number;
  /** Fixed cycles of each host stream copy (latency of the host link round trip). */
  hostCopyLatencyCycles: number;
  /** AMP multiply-accumulates per cycle per tile, by input precision. */
  ampMacsPerCycle: { float16: number; float32: number };
  /** Bytes loaded / stored per tile per cycle. */
  loadBytesPerCycle: number;
  storeBytesPerCycle: number;
  /** Supervisor cycles to launch the workers of a compute set on one tile. */
  supervisorOverheadCycles: number;
  /** Byte alignment of every allocation in tile memory. */
  allocationAlignment: number;
  /** Minimum bytes per tile when mapping a tensor linearly (Poplar's minElementsPerTile in bytes). */
  minBytesPerTile: number;
  /** Fraction of a tile's memory a matmul plan may use for its temporaries (PopLibs' availableMemoryProportion, default 0.6). */
  availableMemoryProportion: number;
  /** Bytes of tile memory taken by the code of each distinct codelet a tile runs (src/lower/memory.ts). */
  codeBytesPerCodelet: number;
  /** IPU-Links between the IPUs (sim/links.ts; absent: §7's defaults there). */
  topology?: IpuTopology;
  /** Bytes per second of one IPU-Link, one direction. */
  ipuLinkBytesPerSecond?: number;
  /** Fraction of a link's bandwidth data gets. */
  ipuLinkEfficiency?: number;
  /** Links between the two IPUs of a pair, each way. */
  ipuLinksPerPair?: number;
  /** Links up (and, separately, down) the rail from each IPU. */
  ipuLinksPerRail?: number;
  /** Nanoseconds per hop of the inter-IPU sync. */
  interIpuSyncNsPerHop?: number;
  /** IPUs per IPU-Link domain; domains are joined by GW-Links (absent: one domain). */
  linkDomainIpus?: number;
  /** IPUs per machine, behind one IPU-Gateway with two GW-Links (east, west). */
  ipusPerGateway?: number;
  /** Bytes per second of one GW-Link, one direction. */
  gwLinkBytesPerSecond?: number;
  /** Fraction of a GW-Link's bandwidth data gets. */
  gwLinkEfficiency?: number;
  /** Nanoseconds a GW-Link crossing adds (latency). */
  gwLinkLatencyNs?: number;
  /** Bytes per second each IPU moves to or from Streaming Memory (sim/streaming-memory.ts; absent: its default). */
  streamingMemoryBytesPerSecond?: number;
  /** Nanoseconds of latency of each remote buffer copy (absent: sim/streaming-memory.ts's default). */
  streamingMemoryLatencyNs?: number;
}

export function totalTiles(d: DeviceSpec): number {
  return d.ipus * d.tilesPerIpu;
}
