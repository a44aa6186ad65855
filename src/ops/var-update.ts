/**
 * What every optimizer's variable-update op shares: inputs (variable,
 * gradient), an in-place write of the variable (so the scheduler runs it
 * after every other reader), and optimizer state kept beside the weights.
 */
import { Op } from '../ir/op.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, TileRange } from '../lower/devicegraph.js';
import type { DeviceDType } from '../../sim/program.js';

export abstract class VarUpdateOp extends Op {
  setup(): void {
    const w = this.inInfo(0);
    const g = this.inInfo(1);
    if (nelms(w.shape) !== nelms(g.shape)) this.fail(`gradient ${this.inId(1)} does not match variable ${this.inId(0)}`);
  }
  override modifiedInputs(): number[] {
    return [0];
  }
}

/** Optimizer state with the variable's shape, mapped tile by tile like it. */
export function stateLike(ctx: LowerContext, name: string, w: BuildTensor, dtype: DeviceDType = w.dtype): BuildTensor {
  const t = ctx.addTensor(name, dtype, w.shape, 'variable');
  ctx.graph.mapLike(t, w);
  return t;
}

/** One float per update vertex (a step counter or first-step flag), on that vertex's tile. */
export function perVertexState(ctx: LowerContext, name: string, ranges: readonly TileRange[]): BuildTensor {
  const t = ctx.addTensor(name, 'float32', [ranges.length], 'variable');
  ctx.graph.setTileMapping(t, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  return t;
}

/** The lossScaling vertex param, only when scaling: a param is a word of vertex state on every tile. */
export function lossScalingParam(lossScaling: number | undefined): Record<string, number> {
  return lossScaling !== undefined && lossScaling !== 1 ? { lossScaling } : {};
}
