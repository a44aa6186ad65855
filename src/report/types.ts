/** Tables behind profile/*.csv (and the matching parts of summary.json). */

export interface StepRow {
  step: number;
  loss?: number;
  cycles: number;
  compute: number;
  exchange: number;
  sync: number;
  streamCopy: number;
  /** Remote buffer copies to and from Streaming Memory; only in a run that had some. */
  streamingMemory?: number;
}

export interface OpRow {
  name: string;
  type: string;
  domain: string;
  compute: number;
  exchange: number;
  sync: number;
  /** Its remote buffer loads and stores (Streaming Memory); only in a run that had some. */
  streamingMemory?: number;
  flops: number;
  /** Bytes of the device tensors the op makes (all tiles; tensors of disjoint lifetimes may share them). */
  memoryBytes: number;
}

export interface TileRow {
  tile: number;
  /** Memory in use: alwaysLive + temporaries + code + vertexState (DeviceProgram.memory). */
  bytes: number;
  /** Summed over every step of the run, as sentBytes and receivedBytes. */
  computeCycles: number;
  /** Exchange cycles x exchangeBytesPerCycle: the bytes its busiest port could have moved. */
  exchangeBytes: number;
  alwaysLive: number;
  temporaries: number;
  code: number;
  vertexState: number;
  sentBytes: number;
  receivedBytes: number;
}

export interface ProfileTables {
  steps: StepRow[];
  ops: OpRow[];
  tiles: TileRow[];
}
