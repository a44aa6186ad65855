/**
 * Host memory as a resource with a clear error. A compile that outgrows Node's
 * heap would end in V8's fatal out-of-memory abort (a stack trace, exit 134,
 * nothing said of what to do). The compile's loops call checkHostHeap() now and
 * then; past HEAP_FRACTION of the heap limit it stops with a RunError (exit 1)
 * that gives the numbers and the remedies. V8 collects garbage hard before the
 * heap gets that full, so what is in use then is live data.
 */
import { freemem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { RunError } from '../errors.js';

/**
 * Used heap, as a fraction of the limit, at which the compile stops. V8 gives up
 * ("ineffective mark-compacts near heap limit") well before the limit itself
 * when collections free little: at 85% a 300 MB compile still died that way.
 */
export const HEAP_FRACTION = 0.75;

const MB = 2 ** 20;
let calls = 0;

/** Whether a per-item caller's check is due (one in `every` calls): lets it skip building the message. */
export function hostHeapCheckDue(every: number): boolean {
  return ++calls % every === 0;
}

/**
 * Throw a RunError when the heap is nearly full. `where` names what was being
 * built. Cheap enough to call per op or per thousand items; `every` thins calls.
 */
export function checkHostHeap(where: string, every = 1): void {
  if (every > 1 && !hostHeapCheckDue(every)) return;
  const h = getHeapStatistics();
  if (h.used_heap_size <= HEAP_FRACTION * h.heap_size_limit) return;
  const limit = Math.round(h.heap_size_limit / MB);
  throw new RunError(
    `out of host memory while ${where}: the compile holds ${Math.round(h.used_heap_size / MB)} MB of Node's ${limit} MB heap limit.\n` +
      `Give Node a bigger heap, e.g. NODE_OPTIONS=--max-old-space-size=${Math.max(2 * limit, 4096)} (this machine has ` +
      `${Math.round(freemem() / MB)} MB free), or simulate fewer tiles (device: {preset: <name>, tiles: N}) or smaller shapes.`,
  );
}
