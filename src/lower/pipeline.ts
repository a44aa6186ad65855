/**
 * The pipeline step (sim/program.ts PipelineStep) from the stages' lowered
 * steps (src/shard/pipeline.ts says which op runs in which stage):
 *
 * - Stash and restore (PopART's StashOp and RestoreOp): each tensor forward
 *   stage k stashes gets `depth` slot buffers laid out like it, on its tiles
 *   (their memory counts there). After the forward stage runs micro-batch m, one
 *   exchange copies its stashed tensors into slot m % depth; before the
 *   backward stage runs micro-batch m, one exchange copies them back. The
 *   copies stay on their tiles.
 * - Memory: the engine runs the stages in pipeline order, not the order the
 *   liveness pass walks (stage by stage), so what lives across stages or
 *   cycles is alwaysLive: the stash buffers and every IpuCopy's source and
 *   destination. What lives within a stage shares memory as usual; a stashed
 *   tensor is live from the forward stage's producer to the backward stage's
 *   last reader in the walk, which covers both its spans on its IPU.
 */
import type { ProgramStep, PipelineStep, PipelineStage } from '../../sim/program.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import type { Op } from '../ir/op.js';
import { isIpuCopy } from '../shard/ipu-copy.js';
import { backwardStage, stashDepth, type PipelinePlan } from '../shard/pipeline.js';
import type { BuildTensor, DeviceGraph } from './devicegraph.js';

export function pipelineStep(
  dg: DeviceGraph,
  schedule: readonly Op[],
  plan: PipelinePlan,
  tensors: Map<string, BuildTensor>,
  stageSteps: ProgramStep[][],
  copies: ProgramStep[],
  microBatches: number,
): PipelineStep {
  const F = plan.forwardIpus.length;
  for (const op of schedule) {
    if (!isIpuCopy(op)) continue;
    for (const id of [op.inId(0), op.outId(0)]) {
      const t = tensors.get(id);
      if (t) t.alwaysLive = true;
    }
  }
  const opsIn = new Array<number>(plan.stages).fill(0);
  for (const [op, s] of plan.stageOf) if (!isIpuCopy(op)) opsIn[s]++;
  const stages: PipelineStage[] = [];
  for (let s = 0; s < plan.stages; s++) {
    const fwd = s < F ? s : backwardStage(s, F);
    stages.push({
      stage: s,
      ipu: plan.forwardIpus[fwd],
      pass: s === F - 1 ? 'forward+backward' : s < F ? 'forward' : 'backward',
      ops: opsIn[s],
      steps: stageSteps[s],
      stashDepth: 0,
      stashBytes: 0,
    });
  }
  for (let k = 0; k < F - 1; k++) {
    const stashed = plan.stashed[k].map(({ tensor, restored }) => ({ t: tensors.get(tensor)!, r: tensors.get(restored)! }));
    if (stashed.length === 0) continue;
    const depth = stashDepth(k, F);
    const fwd = stages[k];
    const back = stages[backwardStage(k, F)];
    const after: ProgramStep[][] = [];
    const before: ProgramStep[][] = [];
    let bytes = 0;
    for (let slot = 0; slot < depth; slot++) {
      const stash = dg.addExchange(`Stash/stage ${k}/slot ${slot}`, `Stash(stage ${k})`);
      const restore = dg.addExchange(`Restore/stage ${back.stage}/slot ${slot}`, `Restore(stage ${back.stage})`);
      for (const { t, r } of stashed) {
        const buf = dg.addTensor(`${t.name}/stash${slot}`, t.dtype, t.shape, 'activation', `Stash(stage ${k})`);
        dg.mapLike(buf, t);
        buf.alwaysLive = true;
        bytes += t.size * DTYPE_BYTES[t.dtype];
        dg.addCopy(stash, { tensor: t.id, begin: 0, end: t.size }, { tensor: buf.id, begin: 0, end: buf.size });
        dg.addCopy(restore, { tensor: buf.id, begin: 0, end: buf.size }, { tensor: r.id, begin: 0, end: r.size });
      }
      after.push([{ kind: 'exchange', exchange: stash }]);
      before.push([{ kind: 'exchange', exchange: restore }]);
    }
    Object.assign(fwd, { stashDepth: depth, stashBytes: bytes, after });
    Object.assign(back, { before });
  }
  return { kind: 'pipeline', microBatches, stages, copies };
}
