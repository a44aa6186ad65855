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
 * Timing-only runs and `sim compile` keep glibc's thresholds: they read no
 * anchors, and keeping freed memory raised a whole-model compile's peak RSS
 * by 20-35 MiB for no gain. Every command gets huge pages (below).
 */

/**
 * glibc's tunable for transparent huge pages on the memory malloc gets from
 * the kernel (glibc 2.35 and later; older C libraries and other systems
 * ignore it). `sim` sets it for every command: a compile fills hundreds of MB
 * of fresh typed arrays, and on the VMs measured a huge page faulted in costs
 * about a tenth of its 512 small pages (first touch 2.7 -> 0.1-0.2 ms per
 * MB). Measured back to back, three pairs each: ResNet-50 inference compiles
 * 5.5-7% faster (peak RSS +13 MiB), a BERT-base layer 4-8% faster with its
 * step 7% faster (peak RSS +20 to +70 MiB: a huge page is resident whole).
 * Tile memory is a WebAssembly.Memory, which V8 maps itself: not affected.
 */
export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** `env` with HUGE_PAGES_TUNABLE added to GLIBC_TUNABLES, unless the user set that tunable (their other tunables kept). */
export function withHugePages(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  const set = out.GLIBC_TUNABLES;
  if (!set) out.GLIBC_TUNABLES = HUGE_PAGES_TUNABLE;
  else if (!set.includes('glibc.malloc.hugetlb')) out.GLIBC_TUNABLES = `${set}:${HUGE_PAGES_TUNABLE}`;
  return out;
}

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
