/**
 * Lowering helpers for elementwise ops (popops::map in spirit): one
 * MultiVertex per contiguous range of the output on each tile, operands
 * brought to that tile first.
 */
import type { BuildTensor, Slice } from './devicegraph.js';
import type { LowerContext } from './context.js';

/**
 * out[i] = f(in_1[i], ..., in_k[i]) with every input the size of `out`.
 * `inputs` maps the codelet's field names to tensors.
 */
export function mapElementwise(
  ctx: LowerContext,
  codelet: string,
  inputs: Record<string, BuildTensor>,
  out: BuildTensor,
  params: Record<string, number> = {},
  outField = 'out',
): void {
  ctx.computeSet(codelet);
  for (const r of ctx.ranges(out)) {
    const fields: Record<string, Slice> = { [outField]: ctx.slice(out, r.begin, r.end) };
    for (const [name, t] of Object.entries(inputs)) fields[name] = ctx.onTile(t, r.begin, r.end, r.tile);
    ctx.vertex(codelet, r.tile, fields, params);
  }
}

/**
 * out[i] = a[i] op b[i mod len(b)]: `b` either the size of `out` or a
 * trailing block of its shape (a bias), broadcast whole to each tile.
 */
export function mapBinaryBroadcast(ctx: LowerContext, codelet: string, a: BuildTensor, b: BuildTensor, out: BuildTensor): void {
  ctx.computeSet(codelet);
  for (const r of ctx.ranges(out)) {
    const same = b.size === out.size;
    ctx.vertex(
      codelet,
      r.tile,
      {
        a: ctx.onTile(a, r.begin, r.end, r.tile),
        b: same ? ctx.onTile(b, r.begin, r.end, r.tile) : ctx.onTile(b, 0, b.size, r.tile),
        out: ctx.slice(out, r.begin, r.end),
      },
      { offset: same ? 0 : r.begin % b.size },
    );
  }
}
