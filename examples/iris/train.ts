/**
 * Train an MLP on Fisher's Iris flowers and print its accuracy on the 30
 * flowers it never saw, the way a PopART program drives its sessions: a
 * TrainingSession steps through configs/examples/iris-mlp.yaml, its weights
 * are read back and written into an InferenceSession of the same graph
 * (without its train section) fed the held-out flowers.
 *
 *   npx tsx examples/iris/train.ts [--steps N]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { InferenceSession, TrainingSession, compile, loadConfig, loadConfigText } from 'tilesim';

const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../configs/examples/iris-mlp.yaml');

/** Fraction of the rows of `logits` ([n, classes]) whose largest entry is at `labels`. */
function accuracy(logits: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
    if (best === labels[i]) right++;
  }
  return right / labels.length;
}

const at = process.argv.indexOf('--steps');
const config = loadConfig(CONFIG, at > 0 ? { steps: Number(process.argv[at + 1]) } : {});
const steps = config.steps ?? 1;

const training = await TrainingSession.create(await compile(config), { workers: 1, numerics: true });
let weights: Map<string, Float32Array | Int32Array>;
try {
  for (let s = 0; s < steps; s++) {
    const r = await training.runStep();
    if (s % 10 === 0 || s === steps - 1) console.log(`step ${String(s).padStart(3)}  loss ${r.loss!.toFixed(4)}`);
  }
  weights = training.readWeights();
} finally {
  await training.close();
}

// The same graph, no train section, fed the held-out flowers (and their labels, anchored to score them).
const doc = parseDocument(readFileSync(CONFIG, 'utf8'));
doc.delete('train');
doc.setIn(['inputs', 'x'], doc.createNode({ npy: 'data/iris/test-x.npy' }));
doc.setIn(['inputs', 'label'], doc.createNode({ npy: 'data/iris/test-y.npy' }));
doc.set('anchors', doc.createNode({ logits: 'final', label: 'final' }));
const evaluation = await compile(loadConfigText(doc.toString(), CONFIG));
const inference = await InferenceSession.create(evaluation, { workers: 1, numerics: true });
try {
  // Adam's moments are variables of the training graph only.
  inference.writeWeights(Object.fromEntries([...weights].filter(([name]) => evaluation.graph.hasTensor(name))));
  const r = await inference.runStep();
  const logits = r.anchors.get('logits')!;
  const labels = r.anchors.get('label')!;
  console.log(`held-out accuracy ${(100 * accuracy(logits.data, labels.data, logits.shape[1])).toFixed(1)}% (${labels.data.length} flowers)`);
} finally {
  await inference.close();
}
