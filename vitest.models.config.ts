import { defineConfig } from 'vitest/config';

// `npm run test:models`: the light models compiled for a full mk2 (test/models). One model
// at a time in one fork. Heap: DenseNet-121 peaks at ~2.7 GB used (ResNet-50 ~1.7 GB), and the
// compile stops at 75% of the limit (src/util/host-heap.ts), so 4 GB; at 2 GB DenseNet stops.
// A 64 MB young generation (V8's default is 16 MB): the lowering makes millions of short-lived
// objects, and the larger semi-spaces cut scavenges and promotions (about 10-15% less CPU time).
export default defineConfig({
  resolve: { conditions: ['tilesim-source'] },
  ssr: { resolve: { conditions: ['tilesim-source'], externalConditions: ['tilesim-source'] } },
  test: {
    include: ['test/models/**/*.test.ts'],
    testTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
    execArgv: ['--max-old-space-size=4096', '--max-semi-space-size=64'],
  },
});
