/**
 * TopK (ONNX 1: k an attribute; 10: K an input; 11: largest, sorted): the K
 * largest (smallest) elements along `axis` and their indices (int32 here,
 * ONNX int64). K must be a constant (shapes are fixed at compile time).
 * Order is onnxruntime's: by value, equal values by lower index first; with
 * sorted = 0 the same order is returned (ONNX leaves it unspecified).
 *
 * Gradient (PopART's TopKGrad): dX = zeros with dValues added at the
 * selected indices along the axis: ScatterElements' add lowering, fed by the
 * forward's Indices output.
 *
 * Lowering: both outputs are mapped linearly alike; each tile's range reads
 * the window of its columns' input (the columns of its first and last
 * [K, inner] block, as ArgMax reads its columns), brought by the exchange,
 * and one TopK vertex ranks each column it touches (sim/codelets/topk.ts).
 */
import { GradOp, Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import type { LowerContext } from '../lower/context.js';
import { rowMajorStrides } from '../lower/rearrange.js';
import { topKCodelet } from '../../sim/codelets/topk.js';
import { ArgGradOp, fwdOut, gradOut } from './arg-grad.js';
import { scatterElements } from './elements.js';
import { GC, constantInts, describeInput, versions } from './shape-util.js';

const TOPK_GRAD = { domain: GC, type: 'TopKGrad', version: 1 };

/** The sizes before the axis, along it and after it, and K. */
export interface TopKGeometry {
  axis: number;
  outer: number;
  A: number;
  inner: number;
  K: number;
}

export class TopKOp extends Op {
  geometry!: TopKGeometry;
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly axisAttr: number,
    readonly largest: boolean,
    readonly sorted: boolean,
    /** Opset 1's attribute; undefined when K is input 1. */
    readonly kAttr?: number,
  ) {
    super(opid, settings);
  }

  setup(): void {
    const x = this.inInfo(0);
    if (x.dtype !== 'float32' && x.dtype !== 'float16' && x.dtype !== 'int32') this.fail(`supports float32, float16 and int32 inputs, got ${describeInput(this)}`);
    const r = x.shape.length;
    if (r === 0) this.fail(`needs an input of rank >= 1, got ${describeInput(this)}`);
    if (!Number.isInteger(this.axisAttr) || this.axisAttr < -r || this.axisAttr >= r) {
      this.fail(`axis ${this.axisAttr} is out of range for ${describeInput(this)} (valid axes are ${-r} to ${r - 1})`);
    }
    const axis = this.axisAttr < 0 ? this.axisAttr + r : this.axisAttr;
    let K: number;
    if (this.kAttr !== undefined) K = this.kAttr;
    else {
      const k = constantInts(this, 1, 'K');
      if (k.length !== 1) this.fail(`K (input 1 '${this.inId(1)}') must hold exactly one value, got [${k.join(', ')}]`);
      K = k[0];
    }
    const A = x.shape[axis];
    if (!Number.isInteger(K) || K < 0 || K > A) this.fail(`K = ${K} must be in [0, ${A}] (the size of axis ${axis} of ${describeInput(this)})`);
    const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
    this.geometry = { axis, outer: prod(x.shape.slice(0, axis)), A, inner: prod(x.shape.slice(axis + 1)), K };
    const shape = x.shape.map((d, i) => (i === axis ? K : d));
    this.setOutInfo(0, { dtype: x.dtype, shape });
    this.setOutInfo(1, { dtype: 'int32', shape: [...shape] });
  }

  override getGradOps(): GradOp[] {
    const d = this.inInfo(0).dtype;
    if (d !== 'float32' && d !== 'float16') return [];
    return [new ArgGradOp(TOPK_GRAD, this, 0, [gradOut(0, 0), fwdOut(1, 1)], () => this.geometry.outer * this.geometry.K * this.geometry.inner)];
  }

  override attributes(): Record<string, AttributeValue> {
    return { axis: this.geometry.axis, largest: this.largest ? 1 : 0, sorted: this.sorted ? 1 : 0, ...(this.kAttr !== undefined ? { k: this.kAttr } : {}) };
  }

  override flops(): number {
    const { outer, A, inner, K } = this.geometry;
    return outer * inner * A * Math.max(1, Math.ceil(Math.log2(K + 1)));
  }
}

/**
 * The flat input window output elements [b, e) read: their columns, in the
 * [outer, K, inner] view, over the whole axis. Within one outer block a run
 * of outputs shorter than `inner` covers the columns between its ends (all
 * of them when it wraps).
 */
export function topKWindow(g: TopKGeometry, b: number, e: number): [number, number] {
  const { A, K, inner } = g;
  const block = K * inner;
  const cols = (lo: number, hi: number): [number, number] => {
    if (hi - lo >= inner) return [0, inner - 1];
    const c0 = lo % inner;
    const c1 = (hi - 1) % inner;
    return c0 <= c1 ? [c0, c1] : [0, inner - 1];
  };
  const r0 = Math.floor(b / block);
  const r1 = Math.floor((e - 1) / block);
  const lo = r0 * A * inner + cols(b, Math.min(e, (r0 + 1) * block))[0];
  const hi = r1 * A * inner + cols(Math.max(b, r1 * block), e)[1] + (A - 1) * inner + 1;
  return [lo, hi];
}

function lowerTopK(op: TopKOp, ctx: LowerContext): void {
  const g = op.geometry;
  const x = ctx.input(0);
  const values = ctx.output(0);
  const indices = ctx.output(1, { like: values });
  if (values.size === 0) return;
  ctx.computeSet('topk');
  for (const r of ctx.ranges(values)) {
    const [lo, hi] = topKWindow(g, r.begin, r.end);
    ctx.vertex(
      topKCodelet,
      r.tile,
      { in: ctx.onTile(x, lo, hi, r.tile), values: ctx.slice(values, r.begin, r.end), indices: ctx.slice(indices, r.begin, r.end) },
      { A: g.A, K: g.K, inner: g.inner, begin: r.begin, base: lo, largest: op.largest ? 1 : 0 },
    );
  }
}

function lowerTopKGrad(op: ArgGradOp<TopKOp>, ctx: LowerContext): void {
  const fwd = op.fwd;
  const g = fwd.geometry;
  const walk = { ishape: [...fwd.outInfo(0).shape], dstrides: rowMajorStrides(fwd.inInfo(0).shape), axis: g.axis, A: g.A };
  // Reduction 1 (add) into zeros: the selected indices along a column are distinct, so add is a plain write.
  scatterElements(ctx, walk, undefined, ctx.input(0), ctx.input(1), ctx.output(0), 1, 'topk-grad');
}

const ATTRS = {
  axis: { type: 'int' as const, default: -1, description: 'the axis to select along, in [-r, r-1]' },
};

export const topKDefinitions: OpDefinition[] = [
  ...versions('TopK', [1, 10, 11], (id, version) =>
    defineOp({
      op: TopKOp,
      id,
      description: `the K ${version >= 11 ? 'largest (or smallest)' : 'largest'} elements along axis and their indices (int32; ONNX int64); K ${version === 1 ? 'the attribute k' : 'a constant input'}; ties by lower index first, as onnxruntime`,
      inputs: version === 1 ? [{ name: 'X' }] : [{ name: 'X' }, { name: 'K' }],
      outputs: [{ name: 'Values' }, { name: 'Indices' }],
      attributes: {
        ...ATTRS,
        ...(version === 1 ? { k: { type: 'int' as const, description: 'how many elements to keep (required)' } } : {}),
        ...(version >= 11
          ? {
              largest: { type: 'int' as const, default: 1, description: '1: the largest elements, 0: the smallest' },
              sorted: { type: 'int' as const, default: 1, description: '1: in order of value; 0 gives the same order here' },
            }
          : {}),
      },
      grad: true,
      create: ({ attributes, settings }) =>
        new TopKOp(
          id,
          settings,
          attributes.int('axis'),
          version >= 11 ? attributes.int('largest') !== 0 : true,
          version >= 11 ? attributes.int('sorted') !== 0 : true,
          version === 1 ? attributes.int('k') : undefined,
        ),
      lower: lowerTopK,
    }),
  ),
  defineOp({ op: ArgGradOp<TopKOp>, id: TOPK_GRAD, description: 'dX = zeros with dValues added at the selected indices along the axis', lower: lowerTopKGrad }),
];
