import { defineConfig } from 'vitest/config';

// Tests load custom-op modules in process through vite, which does not see the node:module hook that
// resolves 'tilesim' and 'tilesim/device' for them elsewhere (sim/resolve-tilesim.ts): the
// 'tilesim-source' condition makes vite resolve both to the TypeScript sources, so tests and user
// modules share one copy. (Pool workers need no condition: they are plain Node threads with the hook.)
export default defineConfig({
  resolve: { conditions: ['tilesim-source'] },
  ssr: { resolve: { conditions: ['tilesim-source'], externalConditions: ['tilesim-source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    // The light models compiled for mk2 take minutes and GBs: `npm run test:models`.
    // Sweeps through a real Redis server: `npm run test:distributed`.
    exclude: ['test/models/**', 'test/distributed/**', '**/node_modules/**'],
    // Finds (or unpacks, once) the headless Chromium the report tests drive.
    globalSetup: ['test/browser/global-setup.ts'],
    // run.checkMemory for every run the tests make (in process and through the CLI): a codelet writing
    // outside its outputs fails the test that ran it.
    env: { TILESIM_CHECK_MEMORY: '1' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
