/**
 * The local sweep: points spread over a pool of child processes (--jobs),
 * each running one point at a time (sweep-child.ts). Processes, not threads:
 * a point's custom ops register themselves in their process, and a point that
 * crashes its process takes down only itself.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildReply } from './sweep-child.js';
import type { PointJob, PointResult } from './sweep-point.js';

/** A sibling module of this one, as .js (dist/) or .ts (the sources, run through tsx). */
export function siblingModule(name: string): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), `${name}${path.extname(here)}`);
}

export interface LocalPool {
  /** Resolves once every job has a result, in any order; onResult sees each as it comes. */
  done: Promise<void>;
  /** Ends every child process at once (Ctrl-C). */
  stop(): void;
}

export function runLocal(jobs: PointJob[], size: number, onResult: (job: PointJob, r: PointResult) => void | Promise<void>): LocalPool {
  const queue = [...jobs];
  const children = new Set<ChildProcess>();
  let stopped = false;
  let failure: Error | undefined;
  const done = new Promise<void>((resolve, reject) => {
    let running = 0;
    const finish = () => {
      if (running === 0 && (queue.length === 0 || failure)) {
        if (failure) reject(failure);
        else resolve();
      }
    };
    const start = () => {
      running++;
      const child = fork(siblingModule('sweep-child'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'advanced' });
      children.add(child);
      let current: PointJob | undefined;
      let ready = false;
      const next = () => {
        current = failure || stopped ? undefined : queue.shift();
        if (current) child.send(current);
        else child.disconnect();
      };
      child.on('message', (m: ChildReply | { ready: true }) => {
        if ('ready' in m) {
          ready = true;
          return next();
        }
        const job = current!;
        current = undefined;
        const result: PointResult = 'crash' in m ? { id: job.id, error: `internal error: ${m.crash}`, exitCode: 1 } : m.result;
        void Promise.resolve(onResult(job, result)).then(next, (e: Error) => {
          failure ??= e;
          next();
        });
      });
      child.on('exit', (code, signal) => {
        children.delete(child);
        running--;
        if (!ready && !stopped) failure ??= new Error(`a sweep process could not start (${signal ?? `exit code ${code}`})`);
        // A point that took its process down (out of host memory, a native crash) fails alone.
        if (current && !stopped) {
          const job = current;
          current = undefined;
          void Promise.resolve(onResult(job, { id: job.id, error: `the process running this point died (${signal ?? `exit code ${code}`})`, exitCode: 1 })).catch((e: Error) => (failure ??= e));
          if (queue.length && !failure) start();
        }
        finish();
      });
    };
    const n = Math.max(1, Math.min(size, jobs.length));
    if (jobs.length === 0) resolve();
    for (let i = 0; i < n; i++) start();
  });
  return {
    done,
    stop: () => {
      stopped = true;
      for (const c of children) c.kill('SIGKILL');
    },
  };
}
