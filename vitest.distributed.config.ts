import { defineConfig } from 'vitest/config';

// `npm run test:distributed`: sweeps through a real Redis server (test/distributed), which each test file
// starts itself (Debian's redis-server, on a free port). Apart from `npm test`, which needs no Redis.
export default defineConfig({
  resolve: { conditions: ['tilesim-source'] },
  ssr: { resolve: { conditions: ['tilesim-source'], externalConditions: ['tilesim-source'] } },
  test: {
    include: ['test/distributed/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
