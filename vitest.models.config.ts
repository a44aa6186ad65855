import { defineConfig } from 'vitest/config';

// `npm run test:models`: the light models compiled for a full mk2 (test/models). One model
// at a time in one fork, with a 2 GB heap (issue 8's bound): all nine fit it since vertices and
// exchange buffers became columns (the compile would stop at 3/4 of the limit, src/util/host-heap.ts).
// A 32 MB young generation (V8's default is 16 MB): the lowering makes millions of short-lived objects,
// and the larger semi-spaces cut scavenges and promotions. Here the target is time; `sim` keeps V8's
// default, which holds its peak RSS lower (SIM_NODE_FLAGS in src/util/host-heap.ts says why).
export default defineConfig({
  resolve: { conditions: ['tilesim-source'] },
  ssr: { resolve: { conditions: ['tilesim-source'], externalConditions: ['tilesim-source'] } },
  test: {
    include: ['test/models/**/*.test.ts'],
    testTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
    execArgv: ['--max-old-space-size=2048', '--max-semi-space-size=32'],
  },
});
