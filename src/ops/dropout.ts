/**
 * Identity and Dropout (ai.onnx), with their grad ops.
 *
 * Identity copies its input (a Copy vertex per tile range: an alias could be
 * changed under it by an in-place update); its gradient is y' itself.
 *
 * Dropout is the identity at inference. It drops elements when training:
 * with a constant `training_mode` input (Dropout-12 and later) that is
 * nonzero, or, without that input, when the graph is trained (Graph.training,
 * set by the session). When dropping, y = x mask / (1 - ratio), the mask drawn
 * by the counter-based hash of sim/codelets/dropout.ts from (seed, how many
 * times the op has run, element index): deterministic however the tensor is
 * split over tiles, different from batch to batch. The `seed` attribute is
 * the seed; without it, one is derived from run.seed and the node's name (so
 * two dropout nodes differ). Grad: x' = y' mask / (1 - ratio), the mask
 * recomputed from the forward's counter.
 *
 * The optional mask output is int32 (0/1): tilesim has no bool tensors yet.
 */
import { GradOp, GradOpInType, Op, OutputGradOnlyGradOp, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import { isFloat } from '../ir/dtype.js';
import { GRAPHCORE_DOMAIN, ONNX_DOMAIN, type OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, DeviceGraph, TileRange } from '../lower/devicegraph.js';
import { mapElementwise } from '../lower/elementwise.js';
import { dropoutCodelet, dropoutGradCodelet } from '../../sim/codelets/dropout.js';
import { copyCodelet } from '../../sim/codelets/elementwise.js';

// ---------------------------------------------------------------- Identity

const IDENTITY_VERSIONS = [1, 13, 14, 16, 19, 21];
const IDENTITY_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'IdentityGrad', version: 1 };

export class IdentityOp extends Op {
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
  override getGradOps(): GradOp[] {
    return [new IdentityGradOp(this)];
  }
}

/** x' = y' (an alias: no copy, no cycles). */
export class IdentityGradOp extends OutputGradOnlyGradOp {
  constructor(fwd: IdentityOp) {
    super(IDENTITY_GRAD, fwd);
  }
}

export const identityDefinitions: OpDefinition[] = [
  ...IDENTITY_VERSIONS.map(
    (version): OpDefinition => defineOp({
      op: IdentityOp,
      id: { domain: ONNX_DOMAIN, type: 'Identity', version },
      description: 'y = x (a copy)',
      inputs: [{ name: 'input' }],
      outputs: [{ name: 'output' }],
      grad: true,
      create: ({ settings }) => new IdentityOp({ domain: ONNX_DOMAIN, type: 'Identity', version }, settings),
      lower: (_op, ctx) => {
        const x = ctx.input(0);
        mapElementwise(ctx, copyCodelet, { in: x }, ctx.output(0, { like: x }));
      },
    }),
  ),
  defineOp({ op: IdentityGradOp, id: IDENTITY_GRAD, description: "dx = y' (an alias)", lower: (_op, ctx) => ctx.aliasOutput(0, ctx.input(0)) }),
];

// ---------------------------------------------------------------- Dropout

/** Dropout-10 takes `ratio` as an attribute; 12 and later as an optional input, with `training_mode` and `seed`. */
const DROPOUT_VERSIONS = [10, 12, 13, 22];
const DROPOUT_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'DropoutGrad', version: 1 };
/** The `seed` attribute's default: none given, derive one from run.seed and the node's name. */
export const DROPOUT_NO_SEED = -1;

/** The seed of a node without one: FNV-1a of its name mixed with run.seed (as config/load.ts's defaultSeed does for tensors). */
export function derivedSeed(runSeed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.imul(runSeed | 0, 0x9e3779b1);
  return h >>> 0;
}

export class DropoutOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    private readonly ratioAttr: number | undefined,
    private readonly seedAttr: number,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }

  setup(): void {
    const x = this.inInfo(0);
    if (!isFloat(x.dtype)) this.fail(`supports float32 and float16 data, got ${this.inId(0)} ${fmtInfo(x)}`);
    for (const [i, what] of [[1, 'ratio'], [2, 'training_mode']] as const) {
      if (!this.given(i)) continue;
      const info = this.inInfo(i);
      if (nelms(info.shape) !== 1) this.fail(`${what} '${this.inId(i)}' must be a scalar, got ${fmtInfo(info)}`);
    }
    const r = this.constantInput(1);
    if (r !== undefined && !(r >= 0 && r < 1)) this.fail(`ratio must be in [0, 1), got ${r}`);
    if (this.ratioAttr !== undefined && !(this.ratioAttr >= 0 && this.ratioAttr < 1)) this.fail(`attribute ratio must be in [0, 1), got ${this.ratioAttr}`);
    if (this.given(2) && this.constantInput(2) === undefined) {
      this.fail(`training_mode '${this.inId(2)}' must be a constant (an initializer with trainable: false); tilesim decides at compile time whether a dropout drops`);
    }
    this.setOutInfo(0, x);
    if (this.hasMask) this.setOutInfo(1, { dtype: 'int32', shape: x.shape });
  }

  /** Whether optional input i was given (ONNX writes an omitted one as ''). */
  private given(i: number): boolean {
    const id = this.inputs[i];
    return id !== undefined && id !== '';
  }

  /** Whether the optional mask output was asked for. */
  get hasMask(): boolean {
    return this.outputs.length > 1 && this.outputs[1] !== '';
  }

  /** The value of a constant scalar input, undefined if the input is absent or not a constant. */
  private constantInput(i: number): number | undefined {
    if (!this.given(i)) return undefined;
    return this.graph.compileTimeData(this.inId(i))?.[0];
  }

  /** Whether this op drops elements: training_mode when given, else whether the graph is trained. */
  get training(): boolean {
    if (this.given(2)) return this.constantInput(2) !== 0;
    return this.graph.training;
  }

  /** The drop probability (only needed when training: a non-constant ratio is an error then). */
  get ratio(): number {
    if (this.ratioAttr !== undefined) return this.ratioAttr;
    if (!this.given(1)) return 0.5;
    const r = this.constantInput(1);
    if (r === undefined) this.fail(`ratio '${this.inId(1)}' must be a constant (an initializer with trainable: false) when the dropout is training`);
    return r;
  }

  get seed(): number {
    return this.seedAttr !== DROPOUT_NO_SEED ? this.seedAttr >>> 0 : derivedSeed(this.graph.randomSeed, this.name);
  }

  override getGradOps(): GradOp[] {
    return [new DropoutGradOp(this)];
  }

  override attributes(): Record<string, AttributeValue> {
    if (this.ratioAttr !== undefined) return { ratio: this.ratioAttr };
    return this.seedAttr !== DROPOUT_NO_SEED ? { seed: this.seedAttr } : {};
  }

  override flops(): number {
    return this.training ? nelms(this.inInfo(0).shape) : 0;
  }
}

/** x' = y' mask / (1 - ratio) when the forward drops, else y'. */
export class DropoutGradOp extends GradOp {
  constructor(readonly fwd: DropoutOp) {
    super(DROPOUT_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [{ gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut }];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
  override flops(): number {
    return this.fwd.training ? nelms(this.fwdInInfo(0).shape) : 0;
  }
}

/** Each lowered training Dropout's counter (one int32 per forward vertex) and the tiles they sit on, for its grad op. */
interface DropoutCounter {
  tensor: BuildTensor;
  ranges: TileRange[];
}
const counters = new WeakMap<DeviceGraph, Map<Op, DropoutCounter>>();

function lowerDropout(d: DropoutOp, ctx: LowerContext): void {
  const x = ctx.input(0);
  const out = ctx.output(0, { like: x });
  const mask = d.hasMask ? ctx.output(1, { like: x }) : undefined;
  if (!d.training) {
    if (!mask) mapElementwise(ctx, copyCodelet, { in: x }, out);
    else {
      ctx.computeSet('Dropout');
      for (const r of ctx.ranges(out)) {
        const fields = { in: ctx.onTile(x, r.begin, r.end, r.tile), out: ctx.slice(out, r.begin, r.end), mask: ctx.slice(mask, r.begin, r.end) };
        ctx.vertex(dropoutCodelet, r.tile, fields, { training: 0, ratio: 0, seed: 0, offset: r.begin });
      }
    }
    return;
  }
  const params = { training: 1, ratio: d.ratio, seed: d.seed };
  const ranges = ctx.ranges(out);
  // The op's run counter lives on the device beside its data, one copy per vertex, all advanced together.
  const counter = ctx.addTensor('counter', 'int32', [ranges.length], 'variable');
  ctx.graph.setTileMapping(counter, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  ctx.computeSet('Dropout');
  for (const [i, r] of ranges.entries()) {
    const fields = {
      in: ctx.onTile(x, r.begin, r.end, r.tile),
      out: ctx.slice(out, r.begin, r.end),
      counter: ctx.slice(counter, i, i + 1),
      ...(mask ? { mask: ctx.slice(mask, r.begin, r.end) } : {}),
    };
    ctx.vertex(dropoutCodelet, r.tile, fields, { ...params, offset: r.begin });
  }
  let m = counters.get(ctx.graph);
  if (!m) counters.set(ctx.graph, (m = new Map()));
  m.set(d, { tensor: counter, ranges });
}

function lowerDropoutGrad(g: DropoutGradOp, ctx: LowerContext): void {
  const dy = ctx.input(0);
  if (!g.fwd.training) {
    ctx.aliasOutput(0, dy);
    return;
  }
  const c = counters.get(ctx.graph)?.get(g.fwd);
  if (!c) throw new Error(`internal: ${g.name} is lowered before its forward op ${g.fwd.name}`);
  const out = ctx.output(0, { like: dy });
  const params = { ratio: g.fwd.ratio, seed: g.fwd.seed };
  ctx.computeSet('DropoutGrad');
  for (const r of ctx.ranges(out)) {
    // Every copy of the counter holds the same value: read the one on this tile if there is one.
    const k = Math.max(0, c.ranges.findIndex((cr) => cr.tile === r.tile));
    const fields = { gradOut: ctx.onTile(dy, r.begin, r.end, r.tile), counter: ctx.onTile(c.tensor, k, k + 1, r.tile), out: ctx.slice(out, r.begin, r.end) };
    ctx.vertex(dropoutGradCodelet, r.tile, fields, { ...params, offset: r.begin });
  }
}

export const dropoutDefinitions: OpDefinition[] = [
  ...DROPOUT_VERSIONS.map((version): OpDefinition => {
    const id = { domain: ONNX_DOMAIN, type: 'Dropout', version };
    const v10 = version < 12;
    return defineOp({
      op: DropoutOp,
      id,
      description: v10
        ? 'identity at inference; when training y = x mask / (1 - ratio), ratio an attribute'
        : 'identity at inference; when training (training_mode, else the session) y = x mask / (1 - ratio), seeded mask',
      inputs: v10 ? [{ name: 'data' }] : [{ name: 'data' }, { name: 'ratio', optional: true }, { name: 'training_mode', optional: true }],
      outputs: [{ name: 'output' }, { name: 'mask', optional: true }],
      attributes: v10
        ? { ratio: { type: 'float', default: 0.5, description: 'drop probability, in [0, 1)' } }
        : { seed: { type: 'int', default: DROPOUT_NO_SEED, description: `mask seed; ${DROPOUT_NO_SEED}: derived from run.seed and the node name` } },
      grad: true,
      create: ({ attributes, settings }) =>
        new DropoutOp(id, v10 ? attributes.float('ratio') : undefined, v10 ? DROPOUT_NO_SEED : attributes.int('seed'), settings),
      lower: lowerDropout,
    });
  }),
  defineOp({ op: DropoutGradOp, id: DROPOUT_GRAD, description: "dx = y' mask / (1 - ratio), the forward's mask recomputed (y' when not training)", lower: lowerDropoutGrad }),
];
