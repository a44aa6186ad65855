/**
 * The cycle model (ipu-architecture.md §2), kept apart from execution so that
 * cycles never depend on data, worker count or host speed.
 *
 * - Compute set, per tile: supervisorOverheadCycles + the sum of its
 *   MultiVertex estimates + W x the busiest worker, single-worker vertices
 *   being list-scheduled (longest first) over the W worker contexts. The
 *   phase lasts as long as the slowest tile.
 * - Exchange (exchangeTraffic): per tile, the bytes it sends and receives,
 *   with the exchange's broadcast rules (MODEL, ipu-architecture.md §1-§2):
 *     - a source sends a piece of data once however many tiles receive it
 *       (receivers listen to the sender's bus), so identical copies (same
 *       source tile, offset and length) to several destinations cost the
 *       sender one send;
 *     - tiles of one shared exchange bus (tilesPerSharedBus consecutive
 *       tiles, a supertile) that receive the same data receive it at
 *       k times the rate when k of them take it: each is charged bytes / k;
 *   then ceil(max(send charge, receive charge) / exchangeBytesPerCycle)
 *   cycles (send and receive are separate ports); the phase lasts as long as
 *   the busiest tile. Sync is not part of it (the engine counts it).
 *   IPU-level limits: the on-chip exchange is non-blocking, every tile
 *   sending and receiving at its full rate at once (4 B/cycle x 1472 tiles x
 *   1.33 GHz ~ 8 TB/s is the vendor's aggregate figure, SPEC), so one IPU
 *   adds no cap beyond the per-tile one. Copies between IPUs also cross
 *   IPU-Links (sim/links.ts): the exchange lasts at least as long as its
 *   busiest link group takes.
 * - Sync: syncCycles, once per superstep (see engine.ts for where); a
 *   superstep whose exchange crosses IPUs adds the inter-IPU sync.
 * - Host stream copy: hostCopyLatencyCycles + bytes at the host link's rate.
 */
import type { Codelet, CodeletRegistry, VertexShape } from './codelet.js';
import { runsOf, unstrided, type CopyTable } from './copies.js';
import type { DeviceSpec } from './device.js';
import { CodeletFault, describeThrown, describeValue, isCycleCount } from './faults.js';
import { deviceRoute, groupCycles, interIpuSyncCycles } from './links.js';
import type { ComputeSet, Exchange, Vertex } from './program.js';
import { tableCodelets, vertexAt } from './vertex-table.js';

/**
 * Whether a vertex writes its output over input `input` (the very same
 * region): popops' *InPlace vertex variants, whose estimates differ (e.g.
 * BinaryOp1DInPlace, base 58). Codelet estimators pass it to theirs.
 */
export function writesInPlace(v: VertexShape, input: string, output = 'out'): boolean {
  const a = v.fields[input];
  const o = v.fields[output];
  if (!a || !o || Array.isArray(a) || Array.isArray(o)) return false;
  return a.offset === o.offset && a.count === o.count && a.dtype === o.dtype;
}

export interface PhaseCost {
  cycles: number;
  /** Sparse [tile, cycles] for the tiles that did work, ascending by tile. */
  tiles: [number, number][];
  /** An exchange between IPUs: cycles its busiest IPU-Link group takes. */
  linkCycles?: number;
  /** An exchange between IPUs: the sync before it (on-chip plus inter-IPU), instead of syncCycles. */
  syncCycles?: number;
}

export function computeSetCost(cs: ComputeSet, codelets: CodeletRegistry, device: DeviceSpec): PhaseCost {
  const t = cs.vertices;
  // The codelet of each name, looked up once; each vertex an object only while its estimate runs.
  const byName: (Codelet | undefined)[] = [];
  for (const n of tableCodelets(t)) byName[t.names.indexOf(n)] = codelets.get(n);
  // Per tile, in columns (a BERT layer's first step costs some 200k vertices): MultiVertex cycles summed,
  // worker vertices' cycles listed (grouped by tile below), and which tiles have any vertex.
  let tiles = 0;
  for (let i = 0; i < t.count; i++) {
    const tile = t.tile[i];
    if (!(Number.isInteger(tile) && tile >= 0)) throw new Error(`internal: a vertex of compute set '${cs.name}' is on tile ${tile}`);
    if (tile >= tiles) tiles = tile + 1;
  }
  const multi = new Float64Array(tiles);
  const jobs = new Int32Array(tiles + 1);
  const has = new Uint8Array(tiles);
  const single = new Float64Array(t.count);
  for (let i = 0; i < t.count; i++) {
    const c = byName[t.codelet[i]]!;
    const tile = t.tile[i];
    const cycles = vertexCycles(c, vertexAt(t, i), cs, codelets, device);
    has[tile] = 1;
    if (c.kind === 'multi') multi[tile] += cycles;
    else {
      single[i] = cycles;
      jobs[tile + 1]++;
    }
  }
  // Worker vertices' cycles grouped by tile (a counting sort): tile t's are byTile[jobs[t] .. jobs[t + 1]).
  for (let k = 0; k < tiles; k++) jobs[k + 1] += jobs[k];
  const fill = jobs.slice(0, tiles);
  const byTile = new Float64Array(jobs[tiles]);
  for (let i = 0; i < t.count; i++) if (byName[t.codelet[i]]!.kind !== 'multi') byTile[fill[t.tile[i]]++] = single[i];
  const out: [number, number][] = [];
  let max = 0;
  for (let tile = 0; tile < tiles; tile++) {
    if (has[tile] === 0) continue;
    const workers = scheduleSorted(byTile.subarray(jobs[tile], jobs[tile + 1]), device.workersPerTile);
    const c = device.supervisorOverheadCycles + multi[tile] + device.workersPerTile * workers;
    out.push([tile, c]);
    if (c > max) max = c;
  }
  return { cycles: max, tiles: out };
}

/**
 * A vertex's estimate, checked: cycles() must return a finite, non-negative
 * integer. Anything else (NaN, -5, Infinity, 1.5, a string) would silently
 * skew every total, so it is a fault naming the codelet, its module and where.
 */
export function vertexCycles(c: Codelet, v: Vertex, cs: ComputeSet, codelets: CodeletRegistry, device: DeviceSpec): number {
  let n: unknown;
  try {
    n = c.cycles(v, device);
  } catch (e) {
    throw new CodeletFault({ kind: 'cycles', what: `cycles() threw ${describeThrown(e)}`, ...faultWhere(c, v, cs, codelets) });
  }
  if (!isCycleCount(n)) {
    throw new CodeletFault({
      kind: 'cycles',
      what: `cycles() returned ${describeValue(n)}, but a cycle estimate must be a finite, non-negative integer (round with Math.ceil)`,
      ...faultWhere(c, v, cs, codelets),
    });
  }
  return n;
}

/** Where a vertex's estimate failed, for its fault: made only then (an object per vertex of every compute set was a step's garbage). */
function faultWhere(c: Codelet, v: Vertex, cs: ComputeSet, codelets: CodeletRegistry) {
  return { codelet: c.name, module: codelets.moduleOf(c.name), tile: v.tile, computeSet: cs.name || undefined, op: cs.op || undefined };
}

/** Longest-processing-time list scheduling; returns the busiest worker's cycles. */
export function scheduleWorkers(jobs: number[], workers: number): number {
  return scheduleSorted(Float64Array.from(jobs), workers);
}

/** scheduleWorkers over a column it may reorder (sorted in place: ascending, then taken longest first). */
function scheduleSorted(jobs: Float64Array, workers: number): number {
  if (jobs.length === 0) return 0;
  jobs.sort();
  const load = new Float64Array(workers);
  for (let q = jobs.length - 1; q >= 0; q--) {
    let k = 0;
    for (let i = 1; i < workers; i++) if (load[i] < load[k]) k = i;
    load[k] += jobs[q];
  }
  let most = load[0];
  for (let i = 1; i < workers; i++) if (load[i] > most) most = load[i];
  return most;
}

/** One tile's exchange traffic in a phase. */
export interface TileTraffic {
  tile: number;
  /** Bytes the tile puts on the exchange (a broadcast counted once). */
  sent: number;
  /** Bytes written into the tile's memory by the exchange. */
  received: number;
  /** Receive bytes charged after shared-bus sharing (received / k for data k tiles of its bus take together). */
  receiveCharge: number;
  /** ceil(max(sent, receiveCharge) / exchangeBytesPerCycle). */
  cycles: number;
}

/** Shared exchange bus of a tile: tilesPerSharedBus consecutive tiles of one IPU. */
export function busOf(tile: number, device: DeviceSpec): number {
  const ipu = Math.floor(tile / device.tilesPerIpu);
  const busesPerIpu = Math.ceil(device.tilesPerIpu / device.tilesPerSharedBus);
  return ipu * busesPerIpu + Math.floor((tile % device.tilesPerIpu) / device.tilesPerSharedBus);
}

/** busOf of every tile of a device, made once per device: the exchange costs look it up per receiver. */
const busTables = new WeakMap<DeviceSpec, Int32Array>();
function busesOf(device: DeviceSpec): Int32Array {
  let b = busTables.get(device);
  if (!b) {
    b = new Int32Array(device.ipus * device.tilesPerIpu);
    for (let t = 0; t < b.length; t++) b[t] = busOf(t, device);
    busTables.set(device, b);
  }
  return b;
}

/** An exchange's messages: data (source tile, offset, length) sent once, and the tiles receiving each. */
interface Messages {
  count: number;
  src: Int32Array;
  /** Bytes of each message (all its runs). */
  bytes: Int32Array;
  /** Receivers of message m: dsts[start[m] .. start[m + 1]) (a tile may repeat). */
  start: Int32Array;
  dsts: Int32Array;
}

/**
 * Group identical data into one message, any number of receivers. A strided
 * row's data is its runs (source offset, run bytes, runs, source stride):
 * rows carrying the same runs are one message. The cost is the cost of the
 * rows as runs, each run its own copy, when no run of one message is a run of
 * another (then every run has its message's receivers, and the charges of
 * sharing, integers, add up alike); when one is, the runs are grouped one by
 * one (messagesOf of the table unstrided).
 */
function messagesOf(ex: Exchange, device: DeviceSpec): Messages {
  const c = ex.copies;
  const numTiles = device.ipus * device.tilesPerIpu;
  // Remote rows are bucketed by source tile (a stable counting sort), and each tile's rows are grouped
  // in a table of that tile's data alone (offset, run bytes, runs, source stride), sized to its rows:
  // one table for a whole exchange of a million rows was mostly cache misses. Messages are so numbered
  // by source tile, then by their first row: the order the traffic and link maps are built in.
  // On-tile copies are not traffic: firstOf -1.
  // Each loop is a function of its own: one function of them all was optimized on stack (OSR) once per
  // loop and deoptimized again at each branch it had not yet met, so a whole model's first step ran
  // it mostly unoptimized (a BERT layer's first step: 280-320 ms in messagesOf, 190-210 ms so).
  const firstOf = scratchInts('firstOf', c.count);
  const bucket = scratchInts('bucket', numTiles + 1).fill(0);
  const remoteRows = markRemote(c, firstOf, bucket);
  prefixSum(bucket, numTiles);
  const cursor = scratchInts('cursor', numTiles);
  cursor.set(bucket.subarray(0, numTiles));
  const order = scratchInts('order', remoteRows);
  orderBySource(c.count, c.srcTile, firstOf, cursor, order);
  const m: MessageColumns = {
    src: scratchInts('msgSrc', remoteRows),
    offset: scratchInts('msgOffset', remoteRows),
    bytes: scratchInts('msgBytes', remoteRows),
    runs: scratchInts('msgRuns', remoteRows),
    stride: scratchInts('msgStride', remoteRows),
  };
  const messages = groupAll(c, order, bucket, numTiles, m, firstOf);
  if (c.runs && anyOver1(m.runs, messages) && runsShared(messages, m.src, m.offset, m.bytes, m.runs, m.stride)) return messagesOf({ ...ex, copies: unstrided(c) }, device);
  if (c.runs) scaleByRuns(m, messages);
  // Receivers of each message, grouped by a counting sort on the message index.
  const start = scratchInts('start', messages + 1).fill(0);
  countReceivers(c, firstOf, start);
  prefixSum(start, messages);
  const fill = scratchInts('fill', messages);
  fill.set(start.subarray(0, messages));
  const dsts = scratchInts('dsts', start[messages]);
  fillReceivers(c, firstOf, fill, dsts);
  return { count: messages, src: m.src.subarray(0, messages), bytes: m.bytes.subarray(0, messages), start, dsts };
}

/** a[k + 1] += a[k] for k < n: counts into starts. */
function prefixSum(a: Int32Array, n: number): void {
  for (let k = 0; k < n; k++) a[k + 1] += a[k];
}

/** groupTile of every source tile's rows (bucket: each tile's first in `order`); returns the messages. */
function groupAll(c: CopyTable, order: Int32Array, bucket: Int32Array, numTiles: number, m: MessageColumns, firstOf: Int32Array): number {
  let messages = 0;
  for (let t = 0; t < numTiles; t++) if (bucket[t] !== bucket[t + 1]) messages = groupTile(c, order, bucket[t], bucket[t + 1], t, m, firstOf, messages);
  return messages;
}

/** The messages' data as messagesOf groups them (scratch columns). */
interface MessageColumns {
  src: Int32Array;
  offset: Int32Array;
  bytes: Int32Array;
  runs: Int32Array;
  stride: Int32Array;
}

/**
 * firstOf[i] 0 for a row that is traffic, else -1; counted per source tile into bucket[tile + 1]. A row is
 * traffic when it has bytes and leaves its tile: a fanned-out row when any of its destinations is another tile.
 */
function markRemote(c: CopyTable, firstOf: Int32Array, bucket: Int32Array): number {
  const { srcTile, dstTile, bytes, fan } = c;
  let n = 0;
  for (let i = 0; i < c.count; i++) {
    let remote = false;
    if (bytes[i] !== 0) {
      const g = fan ? fan.group[i] : -1;
      if (g < 0) remote = srcTile[i] !== dstTile[i];
      else
        for (let j = fan!.start[g]; j < fan!.start[g + 1]; j++)
          if (fan!.tile[j] !== srcTile[i]) {
            remote = true;
            break;
          }
    }
    if (remote) {
      firstOf[i] = 0;
      bucket[srcTile[i] + 1]++;
      n++;
    } else firstOf[i] = -1;
  }
  return n;
}

/** The traffic rows in source tile order, each tile's in row order (cursor: each tile's next place). */
function orderBySource(count: number, srcTile: Int32Array, firstOf: Int32Array, cursor: Int32Array, order: Int32Array): void {
  for (let i = 0; i < count; i++) if (firstOf[i] >= 0) order[cursor[srcTile[i]]++] = i;
}

/**
 * Source tile t's rows order[from .. to) grouped by their data (offset, run bytes, and with stride
 * columns runs and source stride) in a hash table of that tile's alone: each new data is message
 * `messages`, numbered on; firstOf[i] is row i's message. Returns the messages so far.
 */
function groupTile(c: CopyTable, order: Int32Array, from: number, to: number, t: number, m: MessageColumns, firstOf: Int32Array, messages: number): number {
  const { srcOffset, bytes: bytesCol, runs: runsCol, srcStride: strideCol } = c;
  let cap = 16;
  while (cap < 2 * (to - from)) cap *= 2;
  const mask = cap - 1;
  const table = hashScratch(cap);
  const gen = table.gen;
  const { stamp: slotStamp, msg: slotMsg } = table;
  for (let q = from; q < to; q++) {
    const i = order[q];
    const bytes = bytesCol[i];
    const offset = srcOffset[i];
    const runs = runsCol ? runsCol[i] : 1;
    const stride = runs > 1 ? strideCol![i] : 0;
    // Offsets and lengths are multiples of 4 or 8: their products keep those zero low bits, so the key
    // is mixed down (murmur3's finalizer) before its low bits pick a slot.
    let h = Math.imul(offset, 0x9e3779b1) ^ Math.imul(bytes, 0x85ebca6b) ^ Math.imul(runs, 0xc2b2ae35) ^ stride;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h = (h ^ (h >>> 16)) & mask;
    for (;;) {
      if (slotStamp[h] !== gen) {
        slotStamp[h] = gen;
        slotMsg[h] = messages;
        m.src[messages] = t;
        m.offset[messages] = offset;
        m.bytes[messages] = bytes;
        m.runs[messages] = runs;
        m.stride[messages] = stride;
        firstOf[i] = messages++;
        break;
      }
      const k = slotMsg[h];
      if (m.offset[k] === offset && m.bytes[k] === bytes && m.runs[k] === runs && m.stride[k] === stride) {
        firstOf[i] = k;
        break;
      }
      h = (h + 1) & mask;
    }
  }
  return messages;
}

function anyOver1(a: Int32Array, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[k] > 1) return true;
  return false;
}

/** A strided message's bytes: all its runs'. */
function scaleByRuns(m: MessageColumns, messages: number): void {
  for (let k = 0; k < messages; k++) m.bytes[k] *= m.runs[k];
}

/** Receivers per message into start[message + 1]: a row's destination, or each of a fanned-out row's but its source tile. */
function countReceivers(c: CopyTable, firstOf: Int32Array, start: Int32Array): void {
  const { srcTile, fan } = c;
  for (let i = 0; i < c.count; i++) {
    const f = firstOf[i];
    if (f < 0) continue;
    const g = fan ? fan.group[i] : -1;
    if (g < 0) start[f + 1]++;
    else for (let j = fan!.start[g]; j < fan!.start[g + 1]; j++) if (fan!.tile[j] !== srcTile[i]) start[f + 1]++;
  }
}

/** Each message's receivers (as countReceivers counts them) into dsts from fill[message] on, in row order. */
function fillReceivers(c: CopyTable, firstOf: Int32Array, fill: Int32Array, dsts: Int32Array): void {
  const { srcTile, dstTile, fan } = c;
  for (let i = 0; i < c.count; i++) {
    const f = firstOf[i];
    if (f < 0) continue;
    const g = fan ? fan.group[i] : -1;
    if (g < 0) dsts[fill[f]++] = dstTile[i];
    else for (let j = fan!.start[g]; j < fan!.start[g + 1]; j++) if (fan!.tile[j] !== srcTile[i]) dsts[fill[f]++] = fan!.tile[j];
  }
}

/**
 * messagesOf's working arrays, kept between calls and grown as needed: a
 * whole model has hundreds of exchanges of up to a million copies, and on the
 * hosts measured, writing fresh memory the first time (page faults) cost
 * more than the counting itself. So Messages are views of these: read them
 * before the next messagesOf (every caller does, within one cost).
 */
const scratch = new Map<string, Int32Array>();

/** A view of n ints of the named scratch array, contents left as they were. */
function scratchInts(name: string, n: number): Int32Array {
  let a = scratch.get(name);
  if (!a || a.length < n) scratch.set(name, (a = new Int32Array(Math.max(n, 2 * (a?.length ?? 0)))));
  return a.subarray(0, n);
}

/** The hash table: a slot is in use when its stamp is the current generation, one per source tile's rows (no clearing between them). */
let hash = { gen: 0, stamp: new Int32Array(0), msg: new Int32Array(0) };

function hashScratch(cap: number): { gen: number; stamp: Int32Array; msg: Int32Array } {
  if (hash.stamp.length < cap || hash.gen === 0x7fffffff) {
    const n = Math.max(cap, hash.stamp.length);
    hash = { gen: 0, stamp: new Int32Array(n).fill(-1), msg: new Int32Array(n) };
  }
  hash.gen++;
  return hash;
}

/**
 * Whether two messages of one source tile share a run (the same offset and run bytes): then grouping by
 * message is not grouping by run. Messages are in source tile order; a tile whose messages are all one
 * run each cannot share one (equal data is one message). Each run of the others' messages is looked up
 * in an open-addressing table cleared per tile by a stamp.
 */
function runsShared(messages: number, src: Int32Array, offset: Int32Array, bytes: Int32Array, runs: Int32Array, stride: Int32Array): boolean {
  let widest = 0;
  for (let m = 0; m < messages; ) {
    let n = 0;
    let anyStrided = false;
    const t = src[m];
    for (; m < messages && src[m] === t; m++) {
      n += runs[m];
      if (runs[m] > 1) anyStrided = true;
    }
    if (anyStrided) widest = Math.max(widest, n);
  }
  let cap = 16;
  while (cap < 2 * widest) cap *= 2;
  const mask = cap - 1;
  const slotStamp = new Int32Array(cap).fill(-1);
  const slotMsg = new Int32Array(cap);
  const slotOffset = new Int32Array(cap);
  for (let first = 0; first < messages; ) {
    const t = src[first];
    let last = first;
    let anyStrided = false;
    for (; last < messages && src[last] === t; last++) if (runs[last] > 1) anyStrided = true;
    if (anyStrided) {
      for (let m = first; m < last; m++) {
        for (let k = 0; k < runs[m]; k++) {
          const o = offset[m] + k * stride[m];
          let h = (Math.imul(o, 0x9e3779b1) ^ Math.imul(bytes[m], 0x85ebca6b)) & mask;
          for (;;) {
            if (slotStamp[h] !== t) {
              slotStamp[h] = t;
              slotMsg[h] = m;
              slotOffset[h] = o;
              break;
            }
            const other = slotMsg[h];
            if (slotOffset[h] === o && bytes[other] === bytes[m]) {
              if (other !== m) return true;
              break;
            }
            h = (h + 1) & mask;
          }
        }
      }
    }
    first = last;
  }
  return false;
}

/** Per-tile traffic of an exchange, ascending by tile, tiles without traffic left out. */
export function exchangeTraffic(ex: Exchange, device: DeviceSpec, msgs = messagesOf(ex, device)): TileTraffic[] {
  const numTiles = device.ipus * device.tilesPerIpu;
  const { sent, received, charge, L } = trafficSums(device, msgs);
  const out: TileTraffic[] = [];
  for (let tile = 0; tile < numTiles; tile++) {
    const s = sent[tile];
    const r = received[tile];
    if (s === 0 && r === 0) continue;
    const rc = charge[tile];
    out.push({ tile, sent: s, received: r, receiveCharge: rc / L, cycles: trafficCycles(s, rc, L, device) });
  }
  return out;
}

/** ceil(max(sent, receive charge) / exchangeBytesPerCycle), the charge in units of 1/L byte. */
function trafficCycles(sent: number, charge: number, L: number, device: DeviceSpec): number {
  return Math.ceil(Math.max(sent * L, charge) / (device.exchangeBytesPerCycle * L));
}

/**
 * trafficSums' columns, kept from call to call (an exchange cost per
 * exchange of a whole model made four arrays of the device's tiles each):
 * the sums are zeroed per call, the stamps count on across calls.
 */
const traffic = {
  tiles: -1,
  buses: -1,
  sent: new Float64Array(0),
  received: new Float64Array(0),
  charge: new Float64Array(0),
  tileStamp: new Int32Array(0),
  busStamp: new Int32Array(0),
  busCount: new Int32Array(0),
  /** The stamp of message 0 of the next call (stamps are base + message). */
  base: 0,
};

/**
 * Per tile, the bytes an exchange's messages send, receive, and the receive
 * charge after shared-bus sharing in integer units of 1/L byte (L =
 * lcm(1..tilesPerSharedBus), so sums are exact). Views of scratch columns:
 * read them before the next call.
 */
function trafficSums(device: DeviceSpec, msgs: Messages): { sent: Float64Array; received: Float64Array; charge: Float64Array; L: number } {
  const numTiles = device.ipus * device.tilesPerIpu;
  const messages = msgs.count;
  let L = 1;
  for (let k = 2; k <= device.tilesPerSharedBus; k++) L = (L * k) / gcd(L, k);
  const busesPerIpu = Math.ceil(device.tilesPerIpu / device.tilesPerSharedBus);
  const buses = device.ipus * busesPerIpu;
  const t = traffic;
  if (t.tiles !== numTiles || t.buses !== buses || t.base + messages >= 0x7fffffff) {
    t.tiles = numTiles;
    t.buses = buses;
    t.sent = new Float64Array(numTiles);
    t.received = new Float64Array(numTiles);
    t.charge = new Float64Array(numTiles);
    t.tileStamp = new Int32Array(numTiles).fill(-1);
    t.busStamp = new Int32Array(buses).fill(-1);
    t.busCount = new Int32Array(buses);
    t.base = 0;
  }
  const { sent, received, charge, tileStamp, busStamp, busCount } = t;
  sent.fill(0);
  received.fill(0);
  charge.fill(0);
  sumTraffic(msgs, t.base, L, busesOf(device), sent, received, charge, tileStamp, busStamp, busCount);
  t.base += messages;
  return { sent, received, charge, L };
}

/**
 * trafficSums' loop, a function of its own (so optimized whole, not on stack with the code after it
 * unseen, which deoptimized at every exchange). Message m's stamp is base + m.
 */
function sumTraffic(msgs: Messages, base: number, L: number, busCol: Int32Array, sent: Float64Array, received: Float64Array, charge: Float64Array, tileStamp: Int32Array, busStamp: Int32Array, busCount: Int32Array): void {
  const { count: messages, src: msgSrc, bytes: msgBytes, start, dsts } = msgs;
  // Per message: how many distinct receiving tiles share each bus (stamps avoid clearing arrays).
  for (let m = 0; m < messages; m++) {
    const bytes = msgBytes[m];
    sent[msgSrc[m]] += bytes;
    // Most messages have one receiver, alone on its bus: the loops below would charge it bytes x L / 1.
    if (start[m + 1] - start[m] === 1) {
      const d = dsts[start[m]];
      received[d] += bytes;
      charge[d] += bytes * L;
      continue;
    }
    const stamp = base + m;
    for (let j = start[m]; j < start[m + 1]; j++) {
      const d = dsts[j];
      if (tileStamp[d] === stamp) continue;
      tileStamp[d] = stamp;
      const b = busCol[d];
      if (busStamp[b] !== stamp) {
        busStamp[b] = stamp;
        busCount[b] = 0;
      }
      busCount[b]++;
    }
    for (let j = start[m]; j < start[m + 1]; j++) {
      const d = dsts[j];
      received[d] += bytes;
      charge[d] += (bytes * L) / busCount[busCol[d]];
    }
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Bytes an exchange sends from each IPU to each other IPU, keyed
 * from x ipus + to: a message counts once per receiving IPU.
 */
export function exchangeIpuBytes(ex: Exchange, device: DeviceSpec, msgs = messagesOf(ex, device)): Map<number, number> {
  const out = new Map<number, number>();
  if (device.ipus <= 1) return out;
  const ipuStamp = new Int32Array(device.ipus).fill(-1);
  for (let m = 0; m < msgs.count; m++) {
    const from = Math.floor(msgs.src[m] / device.tilesPerIpu);
    for (let j = msgs.start[m]; j < msgs.start[m + 1]; j++) {
      const to = Math.floor(msgs.dsts[j] / device.tilesPerIpu);
      if (to === from || ipuStamp[to] === m) continue;
      ipuStamp[to] = m;
      const key = from * device.ipus + to;
      out.set(key, (out.get(key) ?? 0) + msgs.bytes[m]);
    }
  }
  return out;
}

/**
 * Bytes through each IPU-Link group (sim/links.ts) of an exchange: each
 * message crosses the groups on its route once per receiving IPU. With
 * `replicas` > 1 the device is one replica's and the groups are the whole
 * system's, every replica sending the same on its own IPUs.
 */
export function exchangeLinkBytes(ex: Exchange, device: DeviceSpec, msgs = messagesOf(ex, device), replicas = 1): Map<number, number> {
  const out = new Map<number, number>();
  const k = device.ipus;
  const system: DeviceSpec = replicas > 1 ? { ...device, ipus: k * replicas } : device;
  for (const [key, bytes] of exchangeIpuBytes(ex, device, msgs)) {
    const from = Math.floor(key / k);
    const to = key % k;
    for (let r = 0; r < replicas; r++) for (const g of deviceRoute(r * k + from, r * k + to, system)) out.set(g, (out.get(g) ?? 0) + bytes);
  }
  return out;
}

export function exchangeCost(ex: Exchange, device: DeviceSpec): PhaseCost {
  const msgs = messagesOf(ex, device);
  const out: [number, number][] = [];
  let max = 0;
  const local = ex.onTileCost ? onTileCopyCycles(ex, device) : undefined;
  // exchangeTraffic's cycles, read from its sums (no traffic object per tile of every exchange).
  const { sent, received, charge, L } = trafficSums(device, msgs);
  for (let tile = 0; tile < sent.length; tile++) {
    if (sent[tile] === 0 && received[tile] === 0) continue;
    const cycles = trafficCycles(sent[tile], charge[tile], L, device) + (local?.get(tile) ?? 0);
    local?.delete(tile);
    out.push([tile, cycles]);
    if (cycles > max) max = cycles;
  }
  if (local && local.size > 0) {
    for (const [tile, cycles] of local) {
      out.push([tile, cycles]);
      if (cycles > max) max = cycles;
    }
    out.sort((a, b) => a[0] - b[0]);
  }
  const links = exchangeLinkBytes(ex, device, msgs);
  if (links.size === 0) return { cycles: max, tiles: out };
  // Across IPUs: at least as long as the busiest link group takes, and the superstep syncs all IPUs.
  let linkCycles = 0;
  for (const [g, bytes] of links) linkCycles = Math.max(linkCycles, groupCycles(g, bytes, device));
  return { cycles: Math.max(max, linkCycles), tiles: out, linkCycles, syncCycles: device.syncCycles + interIpuSyncCycles(device) };
}

/** Per tile, the cycles of its on-tile copies as one Copy vertex of their bytes takes (sim/codelets/elementwise.ts: store-bound, 8 bytes per cycle per worker). */
function onTileCopyCycles(ex: Exchange, device: DeviceSpec): Map<number, number> {
  const c = ex.copies;
  const bytes = new Map<number, number>();
  const add = (tile: number, b: number) => bytes.set(tile, (bytes.get(tile) ?? 0) + b);
  for (let i = 0; i < c.count; i++) {
    const g = c.fan ? c.fan.group[i] : -1;
    if (g < 0) {
      if (c.srcTile[i] === c.dstTile[i]) add(c.srcTile[i], runsOf(c, i) * c.bytes[i]);
    } else for (let j = c.fan!.start[g]; j < c.fan!.start[g + 1]; j++) if (c.fan!.tile[j] === c.srcTile[i]) add(c.srcTile[i], runsOf(c, i) * c.bytes[i]);
  }
  const w = device.workersPerTile;
  const cycles = new Map<number, number>();
  for (const [tile, b] of bytes) if (b > 0) cycles.set(tile, 20 + w * Math.ceil(b / w / device.storeBytesPerCycle));
  return cycles;
}

export function streamCopyCycles(bytes: number, device: DeviceSpec): number {
  return device.hostCopyLatencyCycles + Math.ceil((bytes / device.hostLinkBytesPerSecond) * device.clockHz);
}
