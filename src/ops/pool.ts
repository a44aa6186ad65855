/**
 * MaxPool (ONNX 8, 10, 11, 12), AveragePool (7, 10, 11) and
 * GlobalAveragePool (1), NCHW with 1 to 3 spatial dims, and their grad ops:
 *   MaxPoolGrad (dY, X): each output's gradient goes to the first maximum of
 *     its window in scan order (row-major over the kernel). With ties the
 *     other equal elements get nothing, as in PyTorch and onnxruntime; the
 *     gradient is then one of the subgradients, not an average.
 *   AveragePoolGrad (dY): dX[i] = sum over windows w covering i of dY[w] / count(w).
 *   GlobalAveragePoolGrad (dY): dX = dY / (spatial size), spread over each plane.
 * Version differences: 8 has no ceil_mode / dilations (10 adds them; 11
 * changes auto_pad and pads handling; 12 adds int8 types, not supported
 * here); AveragePool 7 has no ceil_mode (10 adds it; 19, registered too so
 * the ONNX suite's dilated cases run, adds dilations). MaxPool's optional
 * Indices output (ONNX int64) is int32 here: flat indices into X, row-major
 * (storage_order 0) or column-major over the spatial dims (1), padding not
 * counted; it has no gradient.
 *
 * Lowering as Conv's (src/ops/conv.ts): the output is mapped linearly and
 * each tile reads the input box of its outputs; the grads read the dY box
 * (and, for max, the X box) of their dX elements. GlobalAveragePool is a
 * two-stage sum over each plane.
 */
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { channelSum, planeWindowOnTile } from '../lower/window.js';
import { floatInput, gid, product, versions, withoutEmpty } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOut, gradOf } from './arg-grad.js';
import { backwardBox, forwardBox, geometryArrays, inputRowsOf, outShape, resolveGeometry, type Geometry } from './spatial.js';
import { averagePoolCodelet, averagePoolGradCodelet, broadcastPlanesCodelet, maxPoolCodelet, maxPoolGradCodelet, maxPoolIndicesCodelet } from '../../sim/codelets/pool.js';

export interface PoolAttrs {
  autoPad: string;
  kernelShape: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  ceilMode: boolean;
  countIncludePad: boolean;
  storageOrder: number;
}

export class PoolOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly kind: 'max' | 'avg',
    readonly attrs: PoolAttrs,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    floatInput(this, 0);
    const x = this.inInfo(0);
    if (x.shape.length < 3) this.fail(`X must be [N, C, spatial...], got ${fmtInfo(x)}`);
    const shape = outShape(this.geometry());
    this.setOutInfo(0, { dtype: x.dtype, shape });
    // MaxPool's Indices: ONNX int64, held as int32 (tilesim's integer type; the importer reads int64 as int32).
    if (this.outputs.length > 1) this.setOutInfo(1, { dtype: 'int32', shape });
  }
  geometry(): Geometry & { rank: number } {
    const x = this.inInfo(0).shape;
    return resolveGeometry(this, x, x[1], {
      autoPad: this.attrs.autoPad,
      kernel: this.attrs.kernelShape,
      strides: this.attrs.strides,
      dilations: this.attrs.dilations,
      pads: this.attrs.pads,
      ceilMode: this.attrs.ceilMode,
    });
  }
  override getGradOps(): ArgGradOp[] {
    const work = () => product(this.outInfo(0).shape) * product(this.attrs.kernelShape);
    return this.kind === 'max'
      ? [new ArgGradOp(gid('MaxPoolGrad'), this, 0, [gradOut(0), fwdIn(1, 0)], work)]
      : [new ArgGradOp(gid('AveragePoolGrad'), this, 0, [gradOut(0)], work)];
  }
  override attributes() {
    const a = this.attrs;
    const common = { auto_pad: a.autoPad, kernel_shape: a.kernelShape, pads: a.pads, strides: a.strides };
    const v = this.opid.version;
    return withoutEmpty(
      this.kind === 'max'
        ? { ...common, storage_order: a.storageOrder, ...(v >= 10 ? { ceil_mode: a.ceilMode ? 1 : 0, dilations: a.dilations } : {}) }
        : { ...common, count_include_pad: a.countIncludePad ? 1 : 0, ...(v >= 10 ? { ceil_mode: a.ceilMode ? 1 : 0 } : {}), ...(v >= 19 ? { dilations: a.dilations } : {}) },
    );
  }
  override flops(): number {
    return product(this.outInfo(0).shape) * product(this.attrs.kernelShape);
  }
}

const same = (c: number): [number, number] => [c, c];

function lowerPool(pool: PoolOp, ctx: LowerContext): void {
  const g = pool.geometry();
  const x = ctx.input(0);
  const y = ctx.output(0);
  ctx.computeSet(pool.kind === 'max' ? 'maxpool' : 'avgpool');
  const arrays = geometryArrays(g);
  for (const r of ctx.ranges(y)) {
    const box = forwardBox(g, r.begin, r.end, same);
    const win = planeWindowOnTile(ctx, x, { C: g.xs[1], D0: g.xs[2], rest: g.xs[3] * g.xs[4] }, box, r.tile, 'x');
    ctx.vertex(
      pool.kind === 'max' ? maxPoolCodelet : averagePoolCodelet,
      r.tile,
      { in: win.slices, out: ctx.slice(y, r.begin, r.end) },
      { ...win.params, outBegin: r.begin, countIncludePad: pool.attrs.countIncludePad ? 1 : 0 },
      { ...arrays, ...win.arrays },
    );
  }
  if (pool.outputs.length > 1) {
    const indices = ctx.output(1, { like: y });
    for (const r of ctx.ranges(indices)) {
      const box = forwardBox(g, r.begin, r.end, same);
      const win = planeWindowOnTile(ctx, x, { C: g.xs[1], D0: g.xs[2], rest: g.xs[3] * g.xs[4] }, box, r.tile, 'x');
      ctx.vertex(maxPoolIndicesCodelet, r.tile, { in: win.slices, out: ctx.slice(indices, r.begin, r.end) }, { ...win.params, outBegin: r.begin, storageOrder: pool.attrs.storageOrder }, { ...arrays, ...win.arrays });
    }
  }
}

function lowerPoolGrad(op: ArgGradOp<PoolOp>, ctx: LowerContext): void {
  const pool = op.fwd;
  const g = pool.geometry();
  const max = pool.kind === 'max';
  const dy = ctx.input(0);
  const x = max ? ctx.input(1) : undefined;
  const dx = ctx.output(0, x ? { like: x } : {});
  ctx.computeSet(max ? 'maxpool-grad' : 'avgpool-grad');
  const arrays = geometryArrays(g);
  for (const r of ctx.ranges(dx)) {
    const box = backwardBox(g, r.begin, r.end, same);
    const yw = planeWindowOnTile(ctx, dy, { C: g.ys[1], D0: g.ys[2], rest: g.ys[3] * g.ys[4] }, box, r.tile, 'y');
    const fields = { gradOut: yw.slices, out: ctx.slice(dx, r.begin, r.end) };
    const params = { ...yw.params, outBegin: r.begin, countIncludePad: pool.attrs.countIncludePad ? 1 : 0 };
    if (x) {
      const xw = planeWindowOnTile(ctx, x, { C: g.xs[1], D0: g.xs[2], rest: g.xs[3] * g.xs[4] }, { ...box, rows: inputRowsOf(g, box.rows) }, r.tile, 'x');
      ctx.vertex(maxPoolGradCodelet, r.tile, { ...fields, in: xw.slices }, { ...params, ...xw.params }, { ...arrays, ...yw.arrays, ...xw.arrays });
    } else {
      ctx.vertex(averagePoolGradCodelet, r.tile, fields, params, { ...arrays, ...yw.arrays });
    }
  }
}

// ---------------------------------------------------------------------------
// GlobalAveragePool

export class GlobalAveragePoolOp extends Op {
  setup(): void {
    floatInput(this, 0);
    const x = this.inInfo(0);
    if (x.shape.length < 3) this.fail(`X must be [N, C, spatial...], got ${fmtInfo(x)}`);
    this.setOutInfo(0, { dtype: x.dtype, shape: [x.shape[0], x.shape[1], ...x.shape.slice(2).map(() => 1)] });
  }
  /** Planes (N C) and their size. */
  layout(): { planes: number; S: number } {
    const s = this.inInfo(0).shape;
    return { planes: s[0] * s[1], S: product(s.slice(2)) };
  }
  override getGradOps(): ArgGradOp[] {
    return [new ArgGradOp(gid('GlobalAveragePoolGrad'), this, 0, [gradOut(0)], () => product(this.inInfo(0).shape))];
  }
  override flops(): number {
    return product(this.inInfo(0).shape);
  }
}

function lowerGlobalAveragePool(op: GlobalAveragePoolOp, ctx: LowerContext): void {
  const { planes, S } = op.layout();
  channelSum(ctx, ctx.input(0), planes, S, ctx.output(0), { scale: 1 / S });
}

function lowerGlobalAveragePoolGrad(op: ArgGradOp<GlobalAveragePoolOp>, ctx: LowerContext): void {
  const { S } = op.fwd.layout();
  const dy = ctx.input(0);
  const dx = ctx.output(0);
  ctx.computeSet('globalavgpool-grad');
  for (const r of ctx.ranges(dx)) {
    const pMin = Math.floor(r.begin / S);
    const pMax = Math.floor((r.end - 1) / S);
    ctx.vertex(broadcastPlanesCodelet, r.tile, { in: ctx.onTile(dy, pMin, pMax + 1, r.tile), out: ctx.slice(dx, r.begin, r.end) }, { S, begin: r.begin, pMin, scale: 1 / S });
  }
}

// ---------------------------------------------------------------------------
// Definitions

const windowAttrs = {
  auto_pad: { type: 'string' as const, default: 'NOTSET', description: 'NOTSET, VALID, SAME_UPPER or SAME_LOWER' },
  kernel_shape: { type: 'ints' as const, description: 'window size per spatial dim' },
  pads: { type: 'ints' as const, default: [], description: 'begin pads then end pads (default 0)' },
  strides: { type: 'ints' as const, default: [], description: 'per spatial dim (default 1)' },
};

export const poolDefinitions: OpDefinition[] = [
  ...versions('MaxPool', [8, 10, 11, 12], (version, id) => defineOp({
    op: PoolOp,
    id,
    description: 'max over each window (padding never wins)',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }, { name: 'Indices', optional: true }],
    attributes: {
      ...windowAttrs,
      storage_order: { type: 'int', default: 0, description: 'Indices layout: 0 row-major, 1 column-major spatial dims' },
      ...(version >= 10
        ? {
            ceil_mode: { type: 'int' as const, default: 0, description: 'round the output size up' },
            dilations: { type: 'ints' as const, default: [], description: 'per spatial dim (default 1)' },
          }
        : {}),
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new PoolOp(
        id,
        'max',
        {
          autoPad: attributes.string('auto_pad'),
          kernelShape: attributes.ints('kernel_shape'),
          strides: attributes.ints('strides'),
          pads: attributes.ints('pads'),
          dilations: version >= 10 ? attributes.ints('dilations') : [],
          ceilMode: version >= 10 && attributes.int('ceil_mode') === 1,
          countIncludePad: false,
          storageOrder: attributes.int('storage_order'),
        },
        settings,
      ),
    lower: lowerPool,
  })),
  ...versions('AveragePool', [7, 10, 11, 19], (version, id) => defineOp({
    op: PoolOp,
    id,
    description: 'mean over each window; padding counted only with count_include_pad',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      ...windowAttrs,
      count_include_pad: { type: 'int', default: 0, description: '1: pads count in the divisor' },
      ...(version >= 10 ? { ceil_mode: { type: 'int' as const, default: 0, description: 'round the output size up' } } : {}),
      ...(version >= 19 ? { dilations: { type: 'ints' as const, default: [], description: 'per spatial dim (default 1)' } } : {}),
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new PoolOp(
        id,
        'avg',
        {
          autoPad: attributes.string('auto_pad'),
          kernelShape: attributes.ints('kernel_shape'),
          strides: attributes.ints('strides'),
          pads: attributes.ints('pads'),
          dilations: version >= 19 ? attributes.ints('dilations') : [],
          ceilMode: version >= 10 && attributes.int('ceil_mode') === 1,
          countIncludePad: attributes.int('count_include_pad') === 1,
          storageOrder: 0,
        },
        settings,
      ),
    lower: lowerPool,
  })),
  ...versions('GlobalAveragePool', [1], (_v, id) => defineOp({
    op: GlobalAveragePoolOp,
    id,
    description: 'mean over all spatial dims, per (n, c)',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    grad: true,
    create: ({ settings }) => new GlobalAveragePoolOp(id, settings),
    lower: lowerGlobalAveragePool,
  })),
  defineOp({ op: gradOf(PoolOp), id: gid('MaxPoolGrad'), description: "dX: each window's dY to the first max of the window", lower: lowerPoolGrad }),
  defineOp({ op: gradOf(PoolOp), id: gid('AveragePoolGrad'), description: 'dX: sum over covering windows of dY / window count', lower: lowerPoolGrad }),
  defineOp({ op: gradOf(GlobalAveragePoolOp), id: gid('GlobalAveragePoolGrad'), description: 'dX = dY / spatial size, spread over each plane', lower: lowerGlobalAveragePoolGrad }),
];
