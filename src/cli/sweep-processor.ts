/**
 * The BullMQ sandboxed processor of `sim worker`: each point runs in a child
 * process BullMQ forks (so the worker's own process stays free to renew the
 * job's lock while a big compile runs). The folders the worker serves come in
 * TILESIM_WORKER_ROOTS (JSON), set by the worker before it forks.
 *
 * A point that fails as a point (exit 1 or 2: out of tile memory, a bad
 * config) is an UnrecoverableError: recorded failed, with its message, never
 * retried. Anything else (an internal error, this process dying) fails the
 * attempt, and BullMQ tries the point again up to the job's attempts.
 */
import { UnrecoverableError } from 'bullmq';
import { pointFailure, runPoint, type PointJob, type PointResult } from './sweep-point.js';

// The worker that forked this process is gone (killed): stop, its point goes back to the queue as stalled.
process.on('disconnect', () => process.exit(1));

export default async function processPoint(job: { data: PointJob }): Promise<PointResult> {
  const roots = JSON.parse(process.env.TILESIM_WORKER_ROOTS ?? '[]') as string[];
  if (roots.length === 0) throw new UnrecoverableError('point failed (exit 2): the worker serves no folder (TILESIM_WORKER_ROOTS is unset)');
  const r = await runPoint(job.data, roots);
  if (r.error !== undefined) throw new UnrecoverableError(pointFailure(r));
  return r;
}
