/** Tables behind profile/*.csv (and the matching parts of summary.json). */

export interface StepRow {
  step: number;
  loss?: number;
  cycles: number;
  compute: number;
  exchange: number;
  sync: number;
  streamCopy: number;
}

export interface OpRow {
  name: string;
  type: string;
  domain: string;
  compute: number;
  exchange: number;
  sync: number;
  flops: number;
}

export interface TileRow {
  tile: number;
  bytes: number;
  computeCycles: number;
  exchangeBytes: number;
}

export interface ProfileTables {
  steps: StepRow[];
  ops: OpRow[];
  tiles: TileRow[];
}
