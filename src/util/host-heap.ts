/**
 * Host memory as a resource with a clear error. A compile that outgrows Node's
 * heap would end in V8's fatal out-of-memory abort (a stack trace, exit 134,
 * nothing said of what to do). The compile's loops call checkHostHeap() now and
 * then; past HEAP_FRACTION of the heap limit (and HEAP_MARGIN_BYTES below it) it stops with a RunError (exit 1)
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

/**
 * Room kept free below the limit whatever its size: the limit counts the
 * young generation (some 48 MB) beside the old one, which is what fills, and a
 * pass allocates tens of MB between two checks. Without it a user's 200 MB
 * heap left V8's abort 14 MB away at the check.
 */
export const HEAP_MARGIN_BYTES = 96 * 2 ** 20;

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
  if (h.used_heap_size <= Math.min(HEAP_FRACTION * h.heap_size_limit, h.heap_size_limit - HEAP_MARGIN_BYTES)) return;
  const limit = Math.round(h.heap_size_limit / MB);
  throw new RunError(
    `out of host memory while ${where}: the compile holds ${Math.round(h.used_heap_size / MB)} MB of Node's ${limit} MB heap limit.\n` +
      `Give Node a bigger heap, e.g. NODE_OPTIONS=--max-old-space-size=${Math.max(2 * limit, 4096)} (this machine has ` +
      `${Math.round(freemem() / MB)} MB free), or simulate fewer tiles (device: {preset: <name>, tiles: N}) or smaller shapes.`,
  );
}

/**
 * The Node flags `sim` starts its child process with (bin/sim.js), and the
 * bench its scale cases (bench/run.ts), so the two measure the same process.
 * `--expose-gc` lets collectGarbage() run (the compile's two collections).
 * V8's default young generation (16 MB semi-spaces) is kept: 32 MB made
 * ResNet-50 compile 10-20% faster but held 30-60 MB more at a BERT-base
 * layer's peak (its 64 MB of young generation stays resident), the case
 * whose host-memory target is tight.
 */
export const SIM_NODE_FLAGS: readonly string[] = ['--expose-gc'];

/**
 * A full collection, when Node exposes gc (SIM_NODE_FLAGS); else nothing.
 * The compile calls it twice: as lowering ends (its per-op contexts and
 * tables are garbage) before finalize adds its arrays, and as it returns
 * (the build state is garbage). V8 frees such garbage only at its next full
 * collection, which may come after the next phase has added its own tens of
 * MB on top. Measured on a BERT-base layer: 30-40 ms each, and the process's
 * peak RSS (compile and one timing-only step) 388-433 -> 325-358 MiB.
 */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}
