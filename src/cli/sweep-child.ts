/**
 * A process of the local sweep pool (sweep-local.ts): takes one point at a
 * time over IPC, runs it, sends back its result. It ends when its parent
 * goes away, so a sweep stopped with Ctrl-C or killed leaves none behind.
 */
import { describeThrown } from '../../sim/faults.js';
import { runPoint, type PointJob, type PointResult } from './sweep-point.js';

export type ChildReply = { id: string; result: PointResult } | { id: string; crash: string };

process.on('disconnect', () => process.exit(0));
process.on('SIGINT', () => undefined); // The parent decides: it stops the pool on Ctrl-C.
process.on('message', (job: PointJob) => {
  void runPoint(job).then(
    (result) => process.send!({ id: job.id, result } satisfies ChildReply),
    (e: unknown) => process.send!({ id: job.id, crash: e instanceof Error ? e.message : describeThrown(e) } satisfies ChildReply),
  );
});
process.send!({ ready: true });
