/**
 * Writes bench/configs/bert12-fp16-infer.yaml: BERT-base inference in float16
 * (12 layers, hidden 768, 12 heads of 64, sequence 128, FFN 3072, vocabulary
 * 30522, batch 1) with its embeddings: word and token-type lookups by runtime
 * int32 ids (Gather: the multiSlice plan), position embeddings by constant
 * position ids 0..127, summed and normalised (LayerNormalization), then the
 * 12 encoder layers as configs/examples/bert-layer.yaml writes one (Gelu with
 * Erf). A scale case of npm run bench (timing-only on a full mk2).
 *   node --import tsx bench/configs/gen-bert.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LAYERS = 12;
const HIDDEN = 768;
const HEADS = 12;
const SEQ = 128;
const FFN = 3072;
const VOCAB = 30522;
const MAX_POS = 512;
const TYPES = 2;

const init: string[] = [];
const nodes: string[] = [];
let seed = 1;
const f16 = (name: string, shape: number[], how: string, extra = '') => init.push(`      ${name}: {shape: [${shape.join(', ')}], dtype: float16, init: ${how}${extra}}`);
const weight = (name: string, shape: number[]) => f16(name, shape, `{normal: {std: 0.02, seed: ${seed++}}}`);
const node = (op: string, inputs: string[], outputs: string[], attrs = '') => nodes.push(`      - {op: ${op}, inputs: [${inputs.join(', ')}], outputs: [${outputs.join(', ')}]${attrs ? `, attributes: {${attrs}}` : ''}}`);

// Embeddings.
weight('word_emb', [VOCAB, HIDDEN]);
weight('pos_emb', [MAX_POS, HIDDEN]);
weight('type_emb', [TYPES, HIDDEN]);
f16('emb_ln_g', [HIDDEN], '{constant: 1}');
f16('emb_ln_b', [HIDDEN], '{constant: 0}');
init.push(`      pos_ids: {shape: [${SEQ}], dtype: int32, init: {value: [${Array.from({ length: SEQ }, (_, i) => i).join(', ')}]}, trainable: false}`);
init.push(`      heads_shape: {shape: [3], dtype: int32, init: {value: [${SEQ}, ${HEADS}, ${HIDDEN / HEADS}]}, trainable: false}`);
init.push(`      hidden_shape: {shape: [2], dtype: int32, init: {value: [${SEQ}, ${HIDDEN}]}, trainable: false}`);
f16('inv_sqrt_d', [1], `{constant: ${1 / Math.sqrt(HIDDEN / HEADS)}}`, ', trainable: false');
f16('half', [1], '{constant: 0.5}', ', trainable: false');
f16('one', [1], '{constant: 1}', ', trainable: false');
f16('inv_sqrt2', [1], '{constant: 0.7071067811865476}', ', trainable: false');
nodes.push('      # Embeddings: word + position + token type, then LayerNormalization');
node('Gather', ['word_emb', 'ids'], ['e_word']);
node('Gather', ['pos_emb', 'pos_ids'], ['e_pos']);
node('Gather', ['type_emb', 'type_ids'], ['e_type']);
node('Add', ['e_word', 'e_pos'], ['e0']);
node('Add', ['e0', 'e_type'], ['e1']);
node('LayerNormalization', ['e1', 'emb_ln_g', 'emb_ln_b'], ['h0'], 'axis: -1, epsilon: 1.0e-12');

for (let l = 0; l < LAYERS; l++) {
  const n = (s: string) => `l${l}_${s}`;
  const x = `h${l}`;
  for (const w of ['wq', 'wk', 'wv', 'wo']) {
    weight(n(w), [HIDDEN, HIDDEN]);
    f16(n(`b${w[1]}`), [HIDDEN], '{constant: 0}');
  }
  f16(n('ln1_g'), [HIDDEN], '{constant: 1}');
  f16(n('ln1_b'), [HIDDEN], '{constant: 0}');
  weight(n('w1'), [HIDDEN, FFN]);
  f16(n('b1'), [FFN], '{constant: 0}');
  weight(n('w2'), [FFN, HIDDEN]);
  f16(n('b2'), [HIDDEN], '{constant: 0}');
  f16(n('ln2_g'), [HIDDEN], '{constant: 1}');
  f16(n('ln2_b'), [HIDDEN], '{constant: 0}');
  nodes.push(`      # Layer ${l}: self-attention, [${SEQ}, ${HIDDEN}] -> ${HEADS} heads of [${SEQ}, ${HIDDEN / HEADS}]`);
  for (const [p, perm] of [
    ['q', '[1, 0, 2]'],
    ['k', '[1, 2, 0]'],
    ['v', '[1, 0, 2]'],
  ] as const) {
    node('MatMul', [x, n(`w${p}`)], [n(`${p}0`)]);
    node('Add', [n(`${p}0`), n(`b${p}`)], [n(`${p}1`)]);
    node('Reshape', [n(`${p}1`), 'heads_shape'], [n(`${p}2`)]);
    node('Transpose', [n(`${p}2`)], [n(p)], `perm: ${perm}`);
  }
  node('MatMul', [n('q'), n('k')], [n('s0')]);
  node('Mul', [n('s0'), 'inv_sqrt_d'], [n('s1')]);
  node('Softmax', [n('s1')], [n('p')], 'axis: -1');
  node('MatMul', [n('p'), n('v')], [n('c0')]);
  node('Transpose', [n('c0')], [n('c1')], 'perm: [1, 0, 2]');
  node('Reshape', [n('c1'), 'hidden_shape'], [n('c')]);
  node('MatMul', [n('c'), n('wo')], [n('o0')]);
  node('Add', [n('o0'), n('bo')], [n('o1')]);
  node('Add', [n('o1'), x], [n('r1')]);
  node('LayerNormalization', [n('r1'), n('ln1_g'), n('ln1_b')], [n('a')], 'axis: -1, epsilon: 1.0e-12');
  nodes.push(`      # Layer ${l}: feed-forward, GELU(h W1 + b1) W2 + b2 with GELU as 0.5 x (1 + erf(x / sqrt 2))`);
  node('MatMul', [n('a'), n('w1')], [n('f0')]);
  node('Add', [n('f0'), n('b1')], [n('f1')]);
  node('Mul', [n('f1'), 'inv_sqrt2'], [n('g0')]);
  node('Erf', [n('g0')], [n('g1')]);
  node('Add', [n('g1'), 'one'], [n('g2')]);
  node('Mul', [n('f1'), n('g2')], [n('g3')]);
  node('Mul', [n('g3'), 'half'], [n('g')]);
  node('MatMul', [n('g'), n('w2')], [n('f2')]);
  node('Add', [n('f2'), n('b2')], [n('f3')]);
  node('Add', [n('f3'), n('a')], [n('r2')]);
  node('LayerNormalization', [n('r2'), n('ln2_g'), n('ln2_b')], [`h${l + 1}`], 'axis: -1, epsilon: 1.0e-12');
}

const yaml = `# GENERATED by bench/configs/gen-bert.ts (node --import tsx bench/configs/gen-bert.ts): edit that, not this.
# BERT-base inference in float16: embeddings (word and token-type lookups by runtime int32 ids,
# positions 0..${SEQ - 1}, LayerNormalization) and ${LAYERS} encoder layers (hidden ${HIDDEN}, ${HEADS} heads,
# sequence ${SEQ}, FFN ${FFN}), batch 1, on a full mk2: a scale case of npm run bench (timing-only).
# Outlined (compile.outlining): the ${LAYERS} layers are lowered once and called, as PopART does by default.
name: bert12-fp16-infer
device: mk2
model:
  graph:
    inputs:
      ids: {shape: [${SEQ}], dtype: int32}
      type_ids: {shape: [${SEQ}], dtype: int32}
    initializers:
${init.join('\n')}
    nodes:
${nodes.join('\n')}
    outputs: [h${LAYERS}]
inputs:
  ids: {random: {distribution: integers, low: 0, high: ${VOCAB - 1}, seed: 1}}
  type_ids: {random: {distribution: integers, low: 0, high: ${TYPES - 1}, seed: 2}}
compile: {outlining: true}
report: {trace: false, html: false}
`;

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bert12-fp16-infer.yaml');
writeFileSync(out, yaml);
console.log(`wrote ${out} (${nodes.length} lines of nodes, ${init.length} initializers)`);
