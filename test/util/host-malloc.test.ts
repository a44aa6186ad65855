import { describe, expect, it } from 'vitest';
import { HUGE_PAGES_TUNABLE, MALLOC_TUNING, simulatesNumerics, withHugePages, withMallocTuning } from '../../src/util/host-malloc.js';

describe('the C allocator tuning sim gives a run with numerics (src/util/host-malloc.ts)', () => {
  it('is for commands that simulate with numerics, not for sim compile or --no-numerics', () => {
    expect(simulatesNumerics(['run', 'a.yaml'])).toBe(true);
    expect(simulatesNumerics(['sweep', 'a.yaml', '--set', 'x=1,2'])).toBe(true);
    expect(simulatesNumerics(['run', 'a.yaml', '--no-numerics'])).toBe(false);
    expect(simulatesNumerics(['compile', 'a.yaml'])).toBe(false);
  });

  it('adds glibc’s thresholds and keeps what the user set', () => {
    const env = withMallocTuning({ PATH: '/bin', MALLOC_TRIM_THRESHOLD_: '0' });
    expect(env.PATH).toBe('/bin');
    expect(env.MALLOC_TRIM_THRESHOLD_).toBe('0');
    expect(env.MALLOC_MMAP_THRESHOLD_).toBe(MALLOC_TUNING.MALLOC_MMAP_THRESHOLD_);
    // glibc caps the mmap threshold at 32 MiB on 64-bit hosts; a larger value would be ignored.
    expect(Number(env.MALLOC_MMAP_THRESHOLD_)).toBeLessThanOrEqual(32 * 2 ** 20);
  });

  it('asks glibc for huge pages, after any tunables the user set, and never overrides theirs', () => {
    expect(withHugePages({ PATH: '/bin' }).GLIBC_TUNABLES).toBe(HUGE_PAGES_TUNABLE);
    expect(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe(`glibc.malloc.arena_max=2:${HUGE_PAGES_TUNABLE}`);
    expect(withHugePages({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }).GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=0');
  });
});
