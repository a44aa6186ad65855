/**
 * LowerContext: what an op's lowering (its Opx) sees. It names the device
 * tensors of the op's inputs, creates its outputs, opens compute sets and
 * places vertices, and brings operands to the tile that needs them: onTile()
 * returns data already there, or allocates a copy on that tile and adds the
 * tile-to-tile copies to the exchange that runs before the compute set.
 */
import type { PlanOverrides } from './plan-overrides.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES, type DeviceDType, type ProgramStep, type TensorCategory } from '../../sim/program.js';
import { UserError } from '../errors.js';
import { isGradOp, type Op } from '../ir/op.js';
import type { BuildTensor, DeviceGraph, Slice, TileRange } from './devicegraph.js';
import { TileMappingBuilder } from './tile-mapping.js';
import { layoutTile, linearLayout, type LinearLayout } from './linear.js';
import { RunList } from './layout.js';
import { doubled } from '../../sim/copies.js';
import type { Codelet } from '../../sim/codelet.js';
import type { ArraySpecs, CodeletDef, FieldSpecs, ParamSpecs } from '../../sim/define.js';
import { checkVertex, type UntypedCodelet, type VertexFields, type VertexRest } from './vertex-check.js';

/** The low 30 bits: a hash kept a small integer (a Map key V8 stores unboxed). */
const SMI_MASK = 0x3fffffff;

/** Where the op sits in the schedule, for in-place decisions (the lowering pass fills it in). */
export interface LowerSchedule {
  /** This op's position in the schedule. */
  position: number;
  /** The last schedule position at which each IR tensor is an input (absent: never read). */
  lastRead: ReadonlyMap<string, number>;
  /** IR tensors streamed to the host after the batch (anchors, the loss): never overwritten. */
  anchors: ReadonlySet<string>;
}

/** An open exchange buffer (LowerContext.buffer). */
interface Arena {
  tensor: BuildTensor;
  /**
   * By tile: 1 + the elements of the tile's block so far (0: no block there). A column of the device's
   * tiles from a pool (arenaColumn), not a Map: a BERT layer's lowering asks for a million blocks.
   * Closing turns it into each block's first element in the tensor.
   */
  used: Int32Array;
  /** Tiles with a block, in the order they were first asked for. */
  tiles: number[];
  /** Slices of it handed out, in their tile block's offsets, and their tiles (two lists: no pair object per slice). */
  handed: Slice[];
  handedTile: number[];
}

export class LowerContext {
  private cs = -1;
  private ex = -1;
  private readonly pending: ProgramStep[] = [];
  /** Gathers made, by a hash of their tensor, tile and runs (flattened begin, end pairs), for reuse. */
  private readonly gathers = new Map<number, { tensor: number; tile: number; runs: RunList; slice: Slice }[]>();
  /**
   * The open exchange's gathers by source runs (any tile): a gather of the same runs onto another tile
   * repeats the first one's copies (SliceCopies.repeats), which finalize sends as one fanned-out row
   * per piece (a matmul's operand block is read by every tile of its row or column of the plan).
   */
  private fanSources = new Map<number, { tensor: number; runs: RunList; first: number; count: number }[]>();
  /** The same for onTile's copies of one range: by a hash of tensor and range, the first copy of it. */
  private fanRanges = new Map<number, { tensor: number; begin: number; end: number; copy: number }[]>();
  private fanExchange = -1;

  /** Forget the fan sources of an exchange that is no longer the open one. */
  private fanReset(): void {
    if (this.fanExchange === this.ex) return;
    this.fanExchange = this.ex;
    this.fanSources = new Map();
    this.fanRanges = new Map();
  }

  /** The copy just added (of elements [begin, end) of `tensor`) repeats an earlier one of the same range onto another tile, if any. */
  private fanRange(tensor: number, begin: number, end: number): void {
    this.fanReset();
    const copies = this.graph.exchanges[this.ex].copies;
    const copy = copies.length - 1;
    const key = Math.imul(Math.imul(tensor, 0x01000193) ^ begin, 0x01000193) ^ end;
    let list = this.fanRanges.get(key);
    if (list) {
      for (const f of list) {
        if (f.tensor === tensor && f.begin === begin && f.end === end) {
          copies.repeats(copy, f.copy);
          return;
        }
      }
    } else this.fanRanges.set(key, (list = []));
    list.push({ tensor, begin, end, copy });
  }
  /**
   * Copies made by onTile per tensor and tile (key tensor id x tiles + tile: numbers, not strings,
   * since a whole model asks millions of times), for reuse by requests inside them.
   */
  private readonly copiesOn = new Map<number, { begin: number; end: number; slice: Slice }[]>();
  /** Device tensors this op made with output(). */
  private readonly made = new Set<BuildTensor>();
  /**
   * The open compute set's exchange buffers: one tensor per source tensor, a
   * block of it on each tile the copies go to, each copy a run of its tile's
   * block, sized and mapped when the compute set closes (one tensor per copy,
   * then one per source and tile, made millions of tensors for a whole model:
   * a DenseNet-121's were most of its lowering heap). Each tile's block is
   * placed on its own, as a tensor of its own was. Not one buffer per tile for
   * all sources: first-fit placement packs such large blocks worse (a
   * BERT-base layer's peak temporaries rose 30%), while per source the peak
   * is unchanged. Until it closes, slices of a buffer count from the start of
   * their tile's block; closing moves them (the slices handed out, the copies'
   * destinations and the compute set's vertices) to the tensor's elements.
   */
  private arenas = new Map<number, Arena>();
  /** The open buffers by their tensor's id. */
  private arenaOf = new Map<number, Arena>();
  /**
   * The tile each copy of the open compute set's exchange writes (index: the copy's; every copy of it goes
   * into a buffer), for moving its destination when the buffers close: one column, not a triple per copy
   * in a list of numbers (a BERT layer's millions of copies made growing that list a hot spot).
   */
  private copyTile = new Int32Array(1024);
  /**
   * Bytes of tensors a consumer laid out (createInput) that this op brings
   * from other tiles, and would have brought had they been mapped linearly
   * (the same size by mapLinearly's rule): `sim compile` notes the difference.
   */
  private readonly layoutBytes = { actual: 0, linear: 0 };
  /** The tensor a slice reads (made once: a closure per vertex placed was garbage by the million). */
  private readonly tensorOfSlice = (s: Slice): BuildTensor => this.graph.tensors[s.tensor];

  constructor(
    readonly graph: DeviceGraph,
    readonly op: Op,
    private readonly tensors: Map<string, BuildTensor>,
    private readonly category: (irTensor: string) => TensorCategory,
    private readonly schedule?: LowerSchedule,
    /** Splits forced on the planners (LowerRequest.plans). */
    readonly plans: PlanOverrides = {},
  ) {}

  get device(): DeviceSpec {
    return this.graph.device;
  }

  /** Whether the op's optional input i was given. */
  hasInput(i: number): boolean {
    return this.op.hasInput(i);
  }

  /** The device tensor of the op's input i. */
  input(i: number): BuildTensor {
    const id = this.op.inId(i);
    const t = this.tensors.get(id);
    if (!t) throw new Error(`internal: input '${id}' of ${this.op.name} was not lowered before it`);
    return t;
  }

  /** Create the device tensor of output i, mapped like `like` or linearly. */
  output(i: number, opts: { like?: BuildTensor; grain?: number; mapping?: TileRange[] } = {}): BuildTensor {
    const id = this.op.outId(i);
    const info = this.op.outInfo(i);
    const t = this.graph.addTensor(id, info.dtype as DeviceDType, info.shape, this.category(id), this.op.name);
    if (opts.mapping) this.graph.setTileMapping(t, opts.mapping);
    else if (opts.like && opts.like.size === t.size) this.graph.mapLike(t, opts.like);
    else this.graph.mapLinearly(t, opts.grain);
    this.tensors.set(id, t);
    this.made.add(t);
    return t;
  }

  /**
   * Make output i the very same device tensor as `t` (an alias: no copy, no
   * cycles). A device tensor output() made for it before, still unused, is
   * dropped (it gets no memory).
   */
  aliasOutput(i: number, t: BuildTensor): void {
    const id = this.op.outId(i);
    const prev = this.tensors.get(id);
    if (prev && prev !== t && this.made.has(prev) && !this.graph.isReferenced(prev)) this.graph.drop(prev);
    this.tensors.set(id, t);
  }

  /**
   * For a grad op: the device tensor of the forward input its output i is the
   * gradient of (a weight, for the weight-gradient matmul), so the output can
   * be mapped like it; undefined for other ops.
   */
  gradientOf(i = 0): BuildTensor | undefined {
    if (!isGradOp(this.op)) return undefined;
    const fwdIndex = this.op.gradOutToNonGradIn().get(i);
    if (fwdIndex === undefined || !this.op.fwdOp.hasInput(fwdIndex)) return undefined;
    const t = this.tensors.get(this.op.fwdOp.inId(fwdIndex));
    // In an outlined function the weight is a parameter (a constant copy of it): the weight itself, laid out
    // alike, is what the gradient is of, so the gradient is laid out as without outlining.
    return t?.paramOf?.category === 'variable' ? t.paramOf : t;
  }

  /** The device tensor of output i, if output() or aliasOutput() gave it one. */
  outputTensor(i: number): BuildTensor | undefined {
    return this.tensors.get(this.op.outId(i));
  }

  /**
   * Whether this op may overwrite input i with output `out` (default 0): the
   * input is an activation or gradient (not a variable, constant, stream or
   * anchor), the output has its shape and dtype, and no op scheduled after
   * this one reads it, under any IR name its device tensor carries (aliases).
   * False when the lowering pass gave no schedule.
   */
  canWriteInPlace(i: number, out = 0): boolean {
    const s = this.schedule;
    if (!s || i < 0 || i >= this.op.inputs.length || out < 0 || out >= this.op.outputs.length) return false;
    const t = this.input(i);
    if (t.category !== 'activation' && t.category !== 'gradient') return false;
    const a = this.op.inInfo(i);
    const b = this.op.outInfo(out);
    if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, k) => d !== b.shape[k])) return false;
    if (t.dtype !== b.dtype || t.size !== b.shape.reduce((x, y) => x * y, 1)) return false;
    for (const [id, d] of this.tensors) {
      if (d !== t) continue;
      if (s.anchors.has(id)) return false;
      if ((s.lastRead.get(id) ?? -1) > s.position) return false;
    }
    return true;
  }

  /** A tensor private to this op (partials, state). Map it before finalize. */
  addTensor(name: string, dtype: DeviceDType, shape: number[], category: TensorCategory = 'temporary'): BuildTensor {
    return this.graph.addTensor(`${this.op.name}/${name}`, dtype, shape, category, this.op.name);
  }

  /** Explain a choice (e.g. the matmul plan) in `sim compile`'s report. */
  note(kind: string, text: string): void {
    this.graph.notes.push({ op: this.op.name, kind, text });
  }

  /** Start a new compute set; the vertices added next go into it. */
  computeSet(name = 'compute'): number {
    this.flush();
    this.cs = this.graph.addComputeSet(`${this.op.name}/${name}`, this.op.name);
    this.ex = -1;
    return this.cs;
  }

  /**
   * Place a vertex of `codelet` on `tile` in the open compute set. A codelet
   * made by defineCodelet types `fields` (names, vector or single; inout
   * fields optional), `params` and `arrays`; the vertex is checked against it
   * now (dtypes too), naming op, codelet and field. Codelets are given as
   * objects, never by name: a name would be one flat namespace, checked late.
   */
  vertex<F extends FieldSpecs, P extends ParamSpecs, A extends ArraySpecs>(codelet: CodeletDef<F, P, A>, tile: number, fields: VertexFields<F>, ...rest: VertexRest<P, A>): void;
  vertex(codelet: UntypedCodelet, tile: number, fields: Record<string, Slice | Slice[]>, params?: Record<string, number>, arrays?: Record<string, number[]>): void;
  vertex(codelet: Codelet, tile: number, fields: Record<string, Slice | Slice[]>, params: Record<string, number> = {}, arrays?: Record<string, number[]>): void {
    if (this.cs < 0) throw new Error(`internal: ${this.op.name} adds a vertex before opening a compute set`);
    if (typeof codelet !== 'object' || codelet === null || typeof codelet.name !== 'string') {
      throw new UserError(
        `the lowering of op '${this.op.name}' names codelet ${JSON.stringify(codelet)}: give ctx.vertex the codelet object ` +
          `(made by defineCodelet and imported from the codelet module), not its name`,
      );
    }
    checkVertex(this.op.name, codelet, fields, params, this.tensorOfSlice, arrays);
    this.graph.addVertex(this.cs, codelet.name, tile, fields, params, arrays, true);
  }

  /** The tile ranges of `t` (optionally clipped to [begin, end)). */
  ranges(t: BuildTensor, begin?: number, end?: number): TileRange[] {
    return this.graph.rangesOf(t, begin, end);
  }

  slice(t: BuildTensor, begin = 0, end = t.size): Slice {
    return { tensor: t.id, begin, end };
  }

  /**
   * Elements [begin, end) of `t` as one contiguous slice on `tile`: in place
   * when they already live there, else a copy made by the exchange before the
   * current compute set (one copy per op, reused, also for any range inside
   * it: ask for a tile's whole span first to copy it once).
   */
  onTile(t: BuildTensor, begin: number, end: number, tile: number): Slice {
    if (this.graph.isOnTile(t, begin, end, tile)) {
      if (t.layoutBy) this.countLayout(t, begin, end, tile);
      return this.slice(t, begin, end);
    }
    const tileKey = t.id * this.graph.numTiles + tile;
    const list = this.copiesOn.get(tileKey);
    if (list) {
      for (let k = 0; k < list.length; k++) {
        const c = list[k];
        if (c.begin <= begin && end <= c.end) {
          const s = { tensor: c.slice.tensor, begin: c.slice.begin + (begin - c.begin), end: c.slice.begin + (end - c.begin) };
          // Inside a buffer still open: in its tile block's offsets, moved when it closes.
          const arena = this.arenaOf.get(s.tensor);
          if (arena) {
            arena.handed.push(s);
            arena.handedTile.push(tile);
          }
          return s;
        }
      }
    }
    const s = this.copyOnto(t, begin, end, tile);
    this.fanRange(t.id, begin, end);
    if (list) list.push({ begin, end, slice: s });
    else this.copiesOn.set(tileKey, [{ begin, end, slice: s }]);
    return s;
  }

  /**
   * onTile without the entries onTile keeps for reuse and for fanned-out
   * copies (a BERT layer's bias gradients asked for a hundred thousand). The
   * same slice and copy as onTile as long as the op asks for no range of `t`
   * overlapping this one on `tile`, before or after, nor for this range on
   * another tile of the same exchange (a reduction reads each of its
   * partials' column ranges once, by one task). Otherwise the data is still
   * right, but copied again rather than reused, or sent to each tile rather
   * than fanned out: more exchange cycles.
   */
  onTileOnce(t: BuildTensor, begin: number, end: number, tile: number): Slice {
    if (this.graph.isOnTile(t, begin, end, tile)) {
      if (t.layoutBy) this.countLayout(t, begin, end, tile);
      return this.slice(t, begin, end);
    }
    return this.copyOnto(t, begin, end, tile);
  }

  /** A copy of [begin, end) of `t` into the open compute set's buffer on `tile`, by its exchange. */
  private copyOnto(t: BuildTensor, begin: number, end: number, tile: number): Slice {
    if (this.cs < 0) throw new Error(`internal: ${this.op.name} asks for data before opening a compute set`);
    if (t.layoutBy) this.countLayout(t, begin, end, tile);
    const s = this.buffer(t, end - begin, tile);
    if (this.ex < 0) this.ex = this.graph.addExchange(`${this.graph.computeSets[this.cs].name}/exchange`, this.op.name);
    this.noteCopyTile(tile);
    this.graph.addCopy(this.ex, this.slice(t, begin, end), s);
    return s;
  }

  /**
   * Several runs of `t` read back to back on `tile` (a vector field): the runs
   * themselves (copied one by one where remote) when at most one must travel,
   * else one tensor on the tile filled by the exchange (one copy tensor and one
   * region instead of one per run). `oneSlice`: always one slice (a vertex
   * reading the runs as one region), the runs copied even when they are here.
   * `once`: this op asks for these runs, or any inside them, on no tile ever
   * again (a matmul's reduction reads each chunk of each partial once), so
   * the gather is not entered for reuse or fan-out, as onTileOnce; it keeps
   * no reference to `runList`, which the caller may then reuse.
   */
  gather(t: BuildTensor, runList: readonly (readonly [number, number])[] | RunList, tile: number, opts: { oneSlice?: boolean; once?: boolean } = {}): Slice[] {
    // A RunList (one flat column) as plans build it; a list of pairs is taken as it is.
    const runs = runList instanceof RunList ? runList : RunList.from(runList);
    const n = runs.n;
    let remote = 0;
    for (let k = 0; k < n && remote < 2; k++) if (!this.graph.isOnTile(t, runs.begin(k), runs.end(k), tile)) remote++;
    // Gathering also copies the runs already here: worth it only when several runs must travel.
    if (n === 1 || (remote < 2 && !opts.oneSlice)) {
      const out = new Array<Slice>(n);
      for (let k = 0; k < n; k++) out[k] = opts.once ? this.onTileOnce(t, runs.begin(k), runs.end(k), tile) : this.onTile(t, runs.begin(k), runs.end(k), tile);
      return out;
    }
    if (opts.once) return [this.gatherOnto(t, runs, tile)];
    // Reuse an identical gather (a window several vertices read): found by a hash of the tensor, tile and
    // runs, then compared run by run (string keys of the runs cost more garbage than the rest of the lowering).
    // Keys cut to 30 bits stay small integers (V8 boxes a larger key as a heap number, garbage per lookup).
    const runsHash = runs.hash();
    const key = (Math.imul(Math.imul(runsHash ^ t.id, 0x01000193) ^ tile, 0x01000193) ^ n) & SMI_MASK;
    const list = this.gathers.get(key);
    if (list) {
      for (const g of list) {
        if (g.tensor === t.id && g.tile === tile && g.runs.same(runs)) return [g.slice];
      }
    }
    // A gather of these runs onto another tile of this exchange, if any: this one repeats its copies.
    this.openExchange();
    const copies = this.graph.exchanges[this.ex].copies;
    this.fanReset();
    const sourceKey = (runsHash ^ t.id) & SMI_MASK;
    let sources = this.fanSources.get(sourceKey);
    let leader: { first: number; count: number } | undefined;
    if (sources) {
      for (const f of sources) {
        if (f.tensor === t.id && f.runs.same(runs)) {
          leader = f;
          break;
        }
      }
    }
    const first = copies.length;
    const s = this.gatherOnto(t, runs, tile);
    // The same runs are the same copies in the same order: copy k of this gather repeats copy k of the first.
    if (leader && leader.count === copies.length - first) for (let k = 0; k < leader.count; k++) copies.repeats(first + k, leader.first + k);
    else if (!leader) {
      if (!sources) this.fanSources.set(sourceKey, (sources = []));
      sources.push({ tensor: t.id, runs, first, count: copies.length - first });
    }
    // Kept for reuse: a list of pairs was copied into a RunList of its own; a caller's RunList must not change after.
    const entry = { tensor: t.id, tile, runs, slice: s };
    if (list) list.push(entry);
    else this.gathers.set(key, [entry]);
    return [s];
  }

  /** The runs of `t` copied, in order, into one slice of the open compute set's buffer on `tile`. */
  private gatherOnto(t: BuildTensor, runs: RunList, tile: number): Slice {
    const n = runs.n;
    let size = 0;
    for (let k = 0; k < n; k++) size += runs.end(k) - runs.begin(k);
    if (t.layoutBy) for (let k = 0; k < n; k++) this.countLayout(t, runs.begin(k), runs.end(k), tile);
    this.openExchange();
    const s = this.buffer(t, size, tile);
    // Runs of one length at one stride (a block of a matrix, row by row) are one strided copy, not one copy each.
    let at = s.begin;
    for (let k = 0; k < n; ) {
      const b = runs.begin(k);
      const len = runs.end(k) - b;
      const stride = k + 1 < n ? runs.begin(k + 1) - b : 0;
      let m = 1;
      if (stride > 0 && len > 0) while (k + m < n && runs.end(k + m) - runs.begin(k + m) === len && runs.begin(k + m) - runs.begin(k + m - 1) === stride) m++;
      this.noteCopyTile(tile);
      this.graph.pushCopy(this.ex, t.id, b, s.tensor, at, len, m, stride, len);
      at += m * len;
      k += m;
    }
    return s;
  }

  /** The exchange before the open compute set, added if it has none yet. */
  private openExchange(): void {
    if (this.cs < 0) throw new Error(`internal: ${this.op.name} asks for data before opening a compute set`);
    if (this.ex < 0) this.ex = this.graph.addExchange(`${this.graph.computeSets[this.cs].name}/exchange`, this.op.name);
  }

  /** Tally the bytes of [begin, end) of a consumer-laid-out `t` not on `tile`, as mapped and as mapped linearly (no allocation: asked per run). */
  private countLayout(t: BuildTensor, begin: number, end: number, tile: number): void {
    const bytes = DTYPE_BYTES[t.dtype];
    let local = 0;
    const m = t.mapping;
    if (m) {
      for (let i = m.firstEndingAfter(begin); i < m.length && m.begin(i) < end; i++) {
        if (m.tile(i) === tile) local += Math.max(0, Math.min(end, m.end(i)) - Math.max(begin, m.begin(i)));
      }
    }
    const numTiles = this.graph.numTiles;
    let l = this.linearLayouts.get(t.id);
    if (!l) {
      const d = this.device;
      l = linearLayout(t.size, bytes, vectorWidth(t.dtype, d), d.minBytesPerTile, numTiles, d.tilesPerSharedBus);
      this.linearLayouts.set(t.id, l);
    }
    // Linearly, `tile` holds at most one chunk: the one whose index lands on it.
    const chunk = (tile - l.start + numTiles) % numTiles;
    const linearLocal = chunk < l.tiles && layoutTile(l, chunk, numTiles) === tile ? Math.max(0, Math.min(end, (chunk + 1) * l.perTile) - Math.max(begin, chunk * l.perTile)) : 0;
    this.layoutBytes.actual += (end - begin - local) * bytes;
    this.layoutBytes.linear += (end - begin - linearLocal) * bytes;
  }

  /** countLayout's linear layouts, by tensor. */
  private readonly linearLayouts = new Map<number, LinearLayout>();

  /** `n` elements of `source` on `tile`, in the open compute set's buffer of its copies (its block on that tile). */
  private buffer(source: BuildTensor, n: number, tile: number): Slice {
    let a = this.arenas.get(source.id);
    if (!a) {
      a = { tensor: this.graph.addTensor(`${source.name}@exchange`, source.dtype, [0], 'exchange', this.op.name), used: arenaColumn(this.graph.numTiles), tiles: [], handed: [], handedTile: [] };
      this.arenas.set(source.id, a);
      this.arenaOf.set(a.tensor.id, a);
    }
    // A tile off the device would index past the column (and read undefined): named, as setTileMapping would.
    if (!(tile >= 0 && tile < a.used.length)) throw new Error(`internal: op '${this.op.name}' asks for data on tile ${tile}, which the device (${a.used.length} tiles) has not`);
    const at = a.used[tile];
    if (at === 0) a.tiles.push(tile);
    const begin = at === 0 ? 0 : at - 1;
    a.used[tile] = begin + n + 1;
    const s = { tensor: a.tensor.id, begin, end: begin + n };
    a.handed.push(s);
    a.handedTile.push(tile);
    return s;
  }

  /** Record the tile the copy about to be added to the open exchange writes (closeArenas moves it). */
  private noteCopyTile(tile: number): void {
    const i = this.graph.exchanges[this.ex].copies.length;
    if (i === this.copyTile.length) this.copyTile = doubled(this.copyTile);
    this.copyTile[i] = tile;
  }

  /** Size and map the closing compute set's exchange buffers: each tile's block after the blocks of lower tiles. */
  private closeArenas(): void {
    // Each buffer's column by tile becomes its blocks' first elements (tiles without a block stay 0).
    const bases = new Map<number, Int32Array>();
    for (const a of this.arenas.values()) {
      const base = a.used;
      const mapping = new TileMappingBuilder();
      let size = 0;
      for (const tile of a.tiles.sort((x, y) => x - y)) {
        const n = base[tile] - 1;
        base[tile] = size;
        if (n > 0) mapping.push(tile, size, size + n);
        size += n;
      }
      a.tensor.shape = [size];
      a.tensor.size = size;
      this.graph.setTileMapping(a.tensor, mapping.finish());
      for (let k = 0; k < a.handed.length; k++) {
        const by = base[a.handedTile[k]];
        a.handed[k].begin += by;
        a.handed[k].end += by;
      }
      bases.set(a.tensor.id, base);
    }
    if (this.ex >= 0) {
      // Copies into one buffer come in runs: one lookup of its column per run.
      const copies = this.graph.exchanges[this.ex].copies;
      let tensor = -1;
      let byTile: Int32Array = new Int32Array(0);
      for (let k = 0; k < copies.length; k++) {
        if (copies.dstTensor(k) !== tensor) {
          tensor = copies.dstTensor(k);
          byTile = bases.get(tensor)!;
        }
        copies.shiftDst(k, byTile[this.copyTile[k]]);
      }
    }
    if (this.cs >= 0) this.graph.computeSets[this.cs].vertices.shiftSlices(0, bases);
    for (const a of this.arenas.values()) releaseArenaColumn(a.used, a.tiles);
    this.arenas = new Map();
    this.arenaOf = new Map();
  }

  private flush(): void {
    this.closeArenas();
    if (this.cs < 0) return;
    // Closed: nothing more is added to either, so their columns give back what doubling left unused.
    this.graph.computeSets[this.cs].vertices.trim();
    if (this.ex >= 0) this.graph.exchanges[this.ex].copies.trim();
    if (this.ex >= 0) this.pending.push({ kind: 'exchange', exchange: this.ex });
    this.pending.push({ kind: 'execute', computeSet: this.cs });
    this.cs = -1;
    this.ex = -1;
  }

  /**
   * For an op that owns a control-flow region (If, Loop): the program steps
   * its region's ops emitted, per branch (src/lower/lower.ts fills it in).
   */
  regionSteps: ProgramStep[][] = [];

  /** The steps emitted so far (the open compute set closed), taken out: a control-flow op wraps them. */
  takeSteps(): ProgramStep[] {
    this.flush();
    return this.pending.splice(0);
  }

  /** Tensors this op made whose home is Streaming Memory (offChip): src/lower/lower.ts loads them before the op's steps and stores them after. */
  readonly remoteTensors: BuildTensor[] = [];

  /** Make `t` (made by this op) live in Streaming Memory between uses: loaded before the op's steps, stored after. */
  offChip(t: BuildTensor): void {
    t.remote = true;
    this.remoteTensors.push(t);
  }

  /** Append steps after those emitted so far (the open compute set closed first). */
  emit(...steps: ProgramStep[]): void {
    this.flush();
    this.pending.push(...steps);
  }

  /** The program steps this op emitted, in order (and the note of what consumer-chosen layouts saved it). */
  finish(): ProgramStep[] {
    this.flush();
    const { actual, linear } = this.layoutBytes;
    if (actual > 0 || linear > 0) {
      const what = linear >= actual ? `layout saved ${formatBytes(linear - actual)} of exchange` : `layout cost ${formatBytes(actual - linear)} more exchange`;
      this.note('layout', `${what}: it brings ${formatBytes(actual)} of inputs laid out by their consumers from other tiles, ${formatBytes(linear)} had they been mapped linearly`);
    }
    return this.pending;
  }
}

/**
 * Arena.used columns, zero, kept for reuse: an op opens a few buffers per compute set, and a fresh
 * column of a thousand tiles each time was a hot spot.
 */
const freeColumns: Int32Array[] = [];

function arenaColumn(numTiles: number): Int32Array {
  const c = freeColumns.pop();
  return c !== undefined && c.length === numTiles ? c : new Int32Array(numTiles);
}

/** A closed buffer's column back to the pool, zeroed where it was written (its `tiles`). */
function releaseArenaColumn(c: Int32Array, tiles: readonly number[]): void {
  for (const t of tiles) c[t] = 0;
  if (freeColumns.length < 64) freeColumns.push(c);
}

/** Bytes for notes: 2.3 MB, 4.1 kB, 512 B. */
export function formatBytes(b: number): string {
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (b >= 1e3) return `${(b / 1e3).toFixed(1)} kB`;
  return `${b} B`;
}
