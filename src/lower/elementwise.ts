/**
 * Lowering helpers for elementwise ops (popops::map in spirit): one
 * MultiVertex per contiguous range of the output on each tile, operands
 * brought to that tile first.
 *
 * In place (PopART's inplacing, popops' *InPlace vertices): when the op may
 * overwrite an input (ctx.canWriteInPlace: an activation or gradient that no
 * later op reads, not an anchor, of the output's shape and dtype) and that
 * input is mapped exactly like the output, the vertices write into the
 * input's memory (the output field is the input's region, which the codelet
 * estimators see as the in-place variant) and the op's output becomes an
 * alias of the input's device tensor; the tensor made for the output is
 * dropped. The numbers are the same either way: each element of the output
 * depends only on the same element of the inputs.
 */
import type { BuildTensor, Slice } from './devicegraph.js';
import type { LowerContext } from './context.js';
import type { Codelet } from '../../sim/codelet.js';
import { shortCodeletName } from '../../sim/define.js';

export interface ElementwiseOptions {
  /** Write into an input's memory when that is safe (default true). */
  inPlace?: boolean;
}

/**
 * The input of `candidates` (in order) the op may overwrite with output 0,
 * `out`: an op input, mapped like `out`, that ctx.canWriteInPlace allows.
 */
export function inPlaceInput(ctx: LowerContext, candidates: readonly BuildTensor[], out: BuildTensor): BuildTensor | undefined {
  if (ctx.op.outputs.length === 0 || ctx.outputTensor(0) !== out || ctx.graph.isReferenced(out)) return undefined;
  for (const t of candidates) {
    if (t === out || t.dtype !== out.dtype || t.size !== out.size || !sameMapping(t, out)) continue;
    for (let i = 0; i < ctx.op.inputs.length; i++) {
      // An omitted optional input ('', e.g. Clip's min) has no tensor.
      if (ctx.op.hasInput(i) && ctx.input(i) === t && ctx.canWriteInPlace(i, 0)) return t;
    }
  }
  return undefined;
}

function sameMapping(a: BuildTensor, b: BuildTensor): boolean {
  const x = a.mapping ?? [];
  const y = b.mapping ?? [];
  return x.length === y.length && x.every((m, k) => m.tile === y[k].tile && m.begin === y[k].begin && m.end === y[k].end);
}

/**
 * out[i] = f(in_1[i], ..., in_k[i]) with every input the size of `out`.
 * `inputs` maps the codelet's field names to tensors. `codelet`: the codelet
 * object (one made by defineCodelet is checked as each vertex is placed); the
 * compute set is named after it, without its domain.
 */
export function mapElementwise(
  ctx: LowerContext,
  codelet: Codelet,
  inputs: Record<string, BuildTensor>,
  out: BuildTensor,
  params: Record<string, number> = {},
  outField = 'out',
  options: ElementwiseOptions = {},
): void {
  const into = options.inPlace === false ? undefined : inPlaceInput(ctx, Object.values(inputs), out);
  const dst = into ?? out;
  ctx.computeSet(shortCodeletName(codelet));
  for (const r of ctx.ranges(dst)) {
    const fields: Record<string, Slice> = { [outField]: ctx.slice(dst, r.begin, r.end) };
    for (const [name, t] of Object.entries(inputs)) fields[name] = ctx.onTile(t, r.begin, r.end, r.tile);
    ctx.vertex(codelet, r.tile, fields, params);
  }
  if (into) ctx.aliasOutput(0, into);
}

/**
 * out[i] = a[i] op b[i mod len(b)]: `b` either the size of `out` or a
 * trailing block of its shape (a bias), broadcast whole to each tile.
 */
export function mapBinaryBroadcast(
  ctx: LowerContext,
  codelet: Codelet,
  a: BuildTensor,
  b: BuildTensor,
  out: BuildTensor,
  options: ElementwiseOptions = {},
): void {
  // Only `a` can be overwritten: `b` may be smaller (broadcast).
  const into = options.inPlace === false ? undefined : inPlaceInput(ctx, [a], out);
  const dst = into ?? out;
  ctx.computeSet(shortCodeletName(codelet));
  for (const r of ctx.ranges(dst)) {
    const same = b.size === out.size;
    ctx.vertex(
      codelet,
      r.tile,
      {
        a: ctx.onTile(a, r.begin, r.end, r.tile),
        b: same ? ctx.onTile(b, r.begin, r.end, r.tile) : ctx.onTile(b, 0, b.size, r.tile),
        out: ctx.slice(dst, r.begin, r.end),
      },
      { offset: same ? 0 : r.begin % b.size },
    );
  }
  if (into) ctx.aliasOutput(0, into);
}
