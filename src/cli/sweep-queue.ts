/**
 * Sweeps over many machines on a BullMQ queue in Redis (`sim sweep --queue`,
 * `sim worker --queue`). BullMQ does the queueing: one job per point with the
 * point's id in its jobId (adding a point twice is a no-op, so a resumed
 * sweep re-adds its points safely), job.waitUntilFinished on QueueEvents for
 * the results, `attempts` for points whose run crashed, and the workers'
 * stalled-job check for points whose worker was killed (its lock runs out, the
 * point goes back to the queue, up to MAX_STALLED times). Points run in
 * BullMQ's sandboxed child processes (sweep-processor.ts).
 */
import { Job, Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { RunError } from '../errors.js';
import { scrub, type RedisTarget } from './redis-url.js';
import { siblingModule } from './sweep-local.js';
import { parsePointFailure, type PointJob, type PointResult } from './sweep-point.js';
import { sha256 } from './sweep.js';

/** The one queue sweeps and workers meet on (a Redis database may hold other BullMQ queues beside it). */
export const QUEUE_NAME = 'tilesim-sweep';
/** Tries of a point whose run crashed its process (not a point failing with exit 1 or 2: that is never retried). */
export const ATTEMPTS = 3;
/** Finished points wait this long in Redis for a sweep (stopped with Ctrl-C) to collect them with --resume. */
export const KEEP_SECONDS = 7 * 24 * 3600;
/** Times a point goes back to the queue after its worker stopped mid-point; one more and it is failed. */
export const MAX_STALLED = 2;

function redisOptions(t: RedisTarget) {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    ...(t.tls ? { tls: {} } : {}),
  };
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { errors?: unknown[] };
  // A host with an IPv4 and an IPv6 address fails with an AggregateError of both.
  if (Array.isArray(err.errors) && err.errors.length) return reason(err.errors[0]);
  return err.code && err.message ? err.message : String(err.message ?? e);
}

/** Connects once, without retrying: an unreachable server or a wrong password is an error at once. */
export async function probeRedis(t: RedisTarget): Promise<void> {
  const client = new Redis({ ...redisOptions(t), lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 5000, retryStrategy: () => null });
  let first: unknown;
  client.on('error', (e) => (first ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new RunError(`cannot use the Redis server at ${t.display}: ${scrub(reason(first ?? e), t)}`);
  } finally {
    client.disconnect();
  }
}

/** A connection for BullMQ (which needs maxRetriesPerRequest: null); it reconnects if the server goes away. */
function connection(t: RedisTarget): Redis {
  const c = new Redis({ ...redisOptions(t), maxRetriesPerRequest: null });
  c.on('error', () => undefined); // reported once through the BullMQ object that owns it (see warnOnce)
  return c;
}

function warnOnce(t: RedisTarget, what: string): (e: Error) => void {
  let last = 0;
  return (e) => {
    if (Date.now() - last < 30_000) return;
    last = Date.now();
    process.stderr.write(`\n${what}: Redis at ${t.display}: ${scrub(reason(e), t)} (retrying)\n`);
  };
}

/** The sweep's part of a jobId: the same points, options and --out give the same jobs. */
export function sweepKey(ids: string[], o: { out?: string; results: string; workers: number }): string {
  return sha256(JSON.stringify({ ids, out: o.out, results: o.results, workers: o.workers })).slice(0, 12);
}

export interface QueuedSweep {
  /** Resolves once every point has a result (onResult saw each). */
  done: Promise<void>;
  /** Points that had finished on the queue before this sweep asked (a resumed sweep), and workers listening when it started. */
  finishedBefore: number;
  workers: number;
  /** Leaves the points on the queue (workers go on with them) and disconnects: Ctrl-C. */
  detach(): Promise<void>;
  /** Removes the sweep's jobs from the queue once their results are written, and disconnects. */
  clean(ids: string[]): Promise<void>;
}

export async function queueSweep(t: RedisTarget, key: string, jobs: PointJob[], onResult: (job: PointJob, r: PointResult) => Promise<void>): Promise<QueuedSweep> {
  await probeRedis(t);
  // BullMQ leaves connections it was given open when it closes: they are ours to end.
  const conns = [connection(t), connection(t)];
  const queue = new Queue<PointJob, PointResult>(QUEUE_NAME, { connection: conns[0] });
  const events = new QueueEvents(QUEUE_NAME, { connection: conns[1] });
  queue.on('error', warnOnce(t, 'sweep'));
  events.on('error', warnOnce(t, 'sweep'));
  let detached = false;
  const close = async () => {
    await Promise.allSettled([events.close(), queue.close()]);
    for (const c of conns) c.disconnect();
  };
  try {
    await events.waitUntilReady();
    const added = await queue.addBulk(
      jobs.map((j) => ({
        name: 'point',
        data: j,
        opts: { jobId: `${key}-${j.id}`, attempts: ATTEMPTS, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: { age: KEEP_SECONDS }, removeOnFail: { age: KEEP_SECONDS } },
      })),
    );
    let finishedBefore = 0;
    // A point that failed on the queue for want of a worker (stalled too often, crashed every try) is tried again
    // when the sweep is resumed; a point that failed as a point (exit 1 or 2) keeps its result.
    for (const job of added) {
      const state = await job.getState();
      if (state === 'completed') finishedBefore++;
      if (state !== 'failed') continue;
      const fresh = await Job.fromId<PointJob, PointResult>(queue, job.id!);
      if (fresh && parsePointFailure('', fresh.failedReason ?? '')) finishedBefore++;
      else await fresh?.retry('failed');
    }
    const workers = await queue.getWorkersCount().catch(() => 0);
    const done = Promise.all(
      added.map(async (job, i) => {
        const j = jobs[i];
        let r: PointResult;
        try {
          const value = (await job.waitUntilFinished(events)) as PointResult;
          r = { ...value, id: j.id };
        } catch (e) {
          if (detached) return;
          const msg = scrub(reason(e), t);
          r = parsePointFailure(j.id, msg) ?? { id: j.id, error: /stalled more than allowable limit/.test(msg) ? `its worker stopped mid-point ${MAX_STALLED + 1} times; given up (${msg})` : msg, exitCode: 1 };
        }
        if (!detached) await onResult(j, r);
      }),
    ).then(() => undefined);
    return {
      done,
      finishedBefore,
      workers,
      detach: async () => {
        detached = true;
        await close();
      },
      clean: async (ids) => {
        for (const id of ids) await queue.remove(`${key}-${id}`).catch(() => 0);
        await close();
      },
    };
  } catch (e) {
    await close();
    if (e instanceof RunError) throw e;
    throw new RunError(`the sweep could not use the queue at ${t.display}: ${scrub(reason(e), t)}`);
  }
}

export interface WorkerOptions {
  roots: string[];
  jobs: number;
  /** Seconds after which a point whose worker stopped renewing its lock goes to another worker. */
  stalledAfter: number;
  log: (line: string) => void;
}

/** `sim worker`: takes points off the queue until Ctrl-C. Resolves when it has stopped. */
export async function runWorker(t: RedisTarget, o: WorkerOptions): Promise<{ stop(force: boolean): Promise<void>; closed: Promise<void> }> {
  await probeRedis(t);
  process.env.TILESIM_WORKER_ROOTS = JSON.stringify(o.roots);
  const ms = Math.round(o.stalledAfter * 1000);
  const conn = connection(t);
  const worker = new Worker<PointJob, PointResult>(QUEUE_NAME, siblingModule('sweep-processor'), {
    connection: conn,
    concurrency: o.jobs,
    lockDuration: ms,
    stalledInterval: ms,
    maxStalledCount: MAX_STALLED,
    useWorkerThreads: false,
    autorun: false,
  });
  worker.on('error', warnOnce(t, 'worker'));
  const started = new Map<string, number>();
  const what = (job: Job<PointJob>) => `point ${job.data.index + 1} ${job.data.id} (${job.data.label})`;
  worker.on('active', (job) => {
    started.set(job.id!, performance.now());
    o.log(`running ${what(job)}${job.attemptsStarted > 1 ? `, attempt ${job.attemptsStarted}` : ''}`);
  });
  worker.on('completed', (job, r) => {
    const s = ((performance.now() - (started.get(job.id!) ?? performance.now())) / 1000).toFixed(1);
    o.log(`done    ${what(job)}: ${r.summary?.cycles.total.toLocaleString('en-US') ?? '?'} cycles, ${s} s${r.run ? `, ${r.run}` : ''}`);
  });
  worker.on('failed', (job, e) => {
    if (job) o.log(`failed  ${what(job)}: ${scrub(e.message, t)}`);
  });
  const closed = worker.run().finally(() => conn.disconnect());
  await worker.waitUntilReady();
  return {
    closed,
    stop: async (force) => {
      await worker.close(force);
    },
  };
}
