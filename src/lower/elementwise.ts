/**
 * Lowering helpers for elementwise ops (popops::map in spirit): on each tile,
 * operands brought there first, then (placeByTile) one 1-D MultiVertex when
 * the tile holds one contiguous range of the output, else the tile's ranges
 * split among its workers (PopLibs' splitRegionsBetweenWorkers) and one
 * multi-region worker vertex per worker (popops' UnaryOp2D / BinaryOp2D:
 * the codelet's `multiRegion` form, sim/codelets/multi-region.ts). A
 * convolution's output lies in many short channel runs per tile, so this keeps
 * a CNN's elementwise vertices to at most one per worker per tile, and the
 * per-vertex overhead to one per worker. A codelet without a multi-region
 * form (a custom one made with plain defineCodelet) gets one vertex per range.
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
import type { BuildTensor, Slice, TileRange } from './devicegraph.js';
import type { LowerContext } from './context.js';
import type { Codelet } from '../../sim/codelet.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { shortCodeletName } from '../../sim/define.js';
import type { DeviceDType } from '../../sim/program.js';
import { splitRegions } from './split-regions.js';

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
  const x = a.mapping;
  const y = b.mapping;
  return x === y || (x !== undefined && y !== undefined && x.equalsShifted(y, 0));
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
  const names = Object.keys(inputs);
  placeByTile(ctx, codelet, ctx.ranges(dst), dst.dtype, params, (r) => {
    const fields: Record<string, Slice> = { [outField]: ctx.slice(dst, r.begin, r.end) };
    for (const name of names) fields[name] = ctx.onTile(inputs[name], r.begin, r.end, r.tile);
    return fields;
  });
  if (into) ctx.aliasOutput(0, into);
}

/** Elements [offset, offset + n) of a slice. */
function subSlice(s: Slice, offset: number, n: number): Slice {
  return { tensor: s.tensor, begin: s.begin + offset, end: s.begin + offset + n };
}

/**
 * Place an elementwise pass over the output `ranges` (popops::map's per-tile
 * structure). `fieldsOf(r)` gives range r's 1-D fields, every slice as long as
 * r (a list field: several such slices) or a scalar read by every element, and is called for each range in
 * order, so operands are brought over as before. A tile holding one range
 * gets one vertex of `codelet`; a tile holding several gets them split among
 * its workers in whole grains of the output's vector width, at least two per
 * worker (splitRegions), one vertex of the multi-region form each. Every
 * vertex gets `params`.
 */
export function placeByTile(
  ctx: LowerContext,
  codelet: Codelet,
  ranges: readonly TileRange[],
  dtype: DeviceDType,
  params: Record<string, number>,
  fieldsOf: (r: TileRange) => Record<string, Slice | Slice[]>,
): void {
  const multi = codelet.multiRegion;
  if (!multi) {
    for (const r of ranges) ctx.vertex(codelet, r.tile, fieldsOf(r), params);
    return;
  }
  const byTile = new Map<number, { n: number; fields: Record<string, Slice | Slice[]> }[]>();
  for (const r of ranges) {
    const entry = { n: r.end - r.begin, fields: fieldsOf(r) };
    const list = byTile.get(r.tile);
    if (list) list.push(entry);
    else byTile.set(r.tile, [entry]);
  }
  const grain = vectorWidth(dtype, ctx.device);
  for (const [tile, list] of byTile) {
    if (list.length === 1) {
      ctx.vertex(codelet, tile, list[0].fields, params);
      continue;
    }
    for (const part of splitRegions(list.map((e) => e.n), grain, ctx.device.workersPerTile, 2 * grain)) {
      const fields: Record<string, Slice[]> = {};
      for (const [j, offset, n] of part) {
        const one = list[j].fields;
        // A whole range (the usual piece) keeps its slices.
        const len = list[j].n;
        const whole = offset === 0 && n === len;
        for (const name in one) {
          const f = one[name];
          const to = (fields[name] ??= []);
          // A slice shorter than its range (a broadcast scalar) is read whole by every part.
          if (Array.isArray(f)) for (const s of f) to.push(whole || s.end - s.begin !== len ? s : subSlice(s, offset, n));
          else to.push(whole || f.end - f.begin !== len ? f : subSlice(f, offset, n));
        }
      }
      ctx.vertex(multi, tile, fields, params);
    }
  }
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
