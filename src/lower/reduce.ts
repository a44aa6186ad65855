/**
 * The two-stage reduction PopLibs uses: every tile reduces what it holds into
 * fp32 partials (stage 1), the partials are exchanged to the tiles that own
 * the output and summed there (stage 2).
 *
 * reduceLeading sums a row-major [rows, cols] view of `x` over its rows into
 * `out` (cols elements): a bias gradient, or with cols = 1 a full reduction.
 */
import type { BuildTensor, Slice } from './devicegraph.js';
import type { LowerContext } from './context.js';

export function reduceLeading(ctx: LowerContext, x: BuildTensor, out: BuildTensor, opts: { abs?: boolean; scale?: number } = {}): void {
  const cols = out.size;
  ctx.computeSet('reduce/partials');
  const partials: BuildTensor[] = [];
  for (const [i, r] of ctx.ranges(x).entries()) {
    const p = ctx.addTensor(`partial${i}`, 'float32', [cols], 'temporary');
    ctx.graph.mapToTile(p, r.tile);
    partials.push(p);
    ctx.vertex('ReducePartial', r.tile, { in: ctx.slice(x, r.begin, r.end), out: ctx.slice(p) }, { offset: r.begin % cols, abs: opts.abs ? 1 : 0 });
  }
  ctx.computeSet('reduce/final');
  for (const r of ctx.ranges(out)) {
    const parts: Slice[] = partials.map((p) => ctx.onTile(p, r.begin, r.end, r.tile));
    ctx.vertex('ReduceFinal', r.tile, { partials: parts, out: ctx.slice(out, r.begin, r.end) }, { scale: opts.scale ?? 1 });
  }
}
