import { defineConfig } from 'vitest/config';

// `npm run test:models`: the light models compiled for a full mk2 (test/models). One model
// at a time in one fork with a large heap: ResNet-50 and DenseNet-121 need several GB.
export default defineConfig({
  resolve: { conditions: ['tilesim-source'] },
  ssr: { resolve: { conditions: ['tilesim-source'], externalConditions: ['tilesim-source'] } },
  test: {
    include: ['test/models/**/*.test.ts'],
    testTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
    execArgv: ['--max-old-space-size=16000'],
  },
});
