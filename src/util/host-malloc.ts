/**
 * The C allocator's settings for a simulation with numerics, applied by the
 * `sim` command to the Node process it starts (bin/sim.js), and by the bench
 * to its numerics cases, as `sim` runs them.
 *
 * Each step hands the host fresh typed arrays: every anchor read, every
 * output. glibc serves an array of 128 KiB or more from its own mmap and
 * gives the pages back when it is freed, so the next step's array is fresh
 * memory again, and writing a page the first time costs a page fault: about
 * 3 ms per MB on the hosts measured (a Firecracker VM), ten times a copy. A
 * [1024, 1024] matmul's 4 MB output cost 11-18 ms of a 50-90 ms step that
 * way. With these settings arrays below 32 MiB come from the allocator's heap
 * and up to 128 MiB of freed memory stays in the process, so a step reuses
 * the pages of the one before (measured: that read 14 -> 3 ms).
 *
 * Timing-only runs and `sim compile` keep glibc's defaults: they read no
 * anchors, and keeping freed memory raised a whole-model compile's peak RSS
 * by 20-35 MiB for no gain.
 */

/** glibc's environment variables (read once, as a process starts); a value the user set wins. */
export const MALLOC_TUNING: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(128 * 2 ** 20),
};

/** Whether a `sim` command line simulates with numerics (then it gets MALLOC_TUNING). */
export function simulatesNumerics(argv: readonly string[]): boolean {
  const command = argv.find((a) => !a.startsWith('-'));
  return command !== 'compile' && !argv.includes('--no-numerics');
}

/** `env` with MALLOC_TUNING added where the user has not set those variables. */
export function withMallocTuning(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(MALLOC_TUNING)) out[k] ??= v;
  return out;
}
