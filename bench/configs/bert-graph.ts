/**
 * A BERT encoder as config YAML lines (the initializers and nodes of
 * model.graph): word and token-type lookups by runtime int32 ids (Gather: the
 * multiSlice plan), position embeddings by constant position ids, summed and
 * normalised (LayerNormalization), then the encoder layers as
 * configs/examples/bert-layer.yaml writes one (Gelu with Erf). Shared by the
 * bench config generators (gen-bert.ts, gen-bert-large.ts).
 */
export interface BertShape {
  layers: number;
  hidden: number;
  heads: number;
  seq: number;
  ffn: number;
  vocab: number;
  maxPos: number;
  types: number;
  /** Each node's `ipu:` (sharding): the embeddings', and layer l's. */
  ipuOf?: { embeddings: number; layer: (l: number) => number };
}

export function bertGraph(s: BertShape): { init: string[]; nodes: string[] } {
  const init: string[] = [];
  const nodes: string[] = [];
  let seed = 1;
  let ipu = '';
  const f16 = (name: string, shape: number[], how: string, extra = '') => init.push(`      ${name}: {shape: [${shape.join(', ')}], dtype: float16, init: ${how}${extra}}`);
  const weight = (name: string, shape: number[]) => f16(name, shape, `{normal: {std: 0.02, seed: ${seed++}}}`);
  const node = (op: string, inputs: string[], outputs: string[], attrs = '') =>
    nodes.push(`      - {op: ${op}, inputs: [${inputs.join(', ')}], outputs: [${outputs.join(', ')}]${attrs ? `, attributes: {${attrs}}` : ''}${ipu}}`);
  const { hidden: HIDDEN, heads: HEADS, seq: SEQ, ffn: FFN } = s;

  // Embeddings.
  weight('word_emb', [s.vocab, HIDDEN]);
  weight('pos_emb', [s.maxPos, HIDDEN]);
  weight('type_emb', [s.types, HIDDEN]);
  f16('emb_ln_g', [HIDDEN], '{constant: 1}');
  f16('emb_ln_b', [HIDDEN], '{constant: 0}');
  init.push(`      pos_ids: {shape: [${SEQ}], dtype: int32, init: {value: [${Array.from({ length: SEQ }, (_, i) => i).join(', ')}]}, trainable: false}`);
  // The layers' constants; sharded, one set per IPU (with pipelining a constant is read by one stage).
  const ipus = s.ipuOf ? [...new Set(Array.from({ length: s.layers }, (_, l) => s.ipuOf!.layer(l)))] : [undefined];
  const c = (name: string, at: number | undefined) => (at === undefined ? name : `${name}_i${at}`);
  for (const at of ipus) {
    init.push(`      ${c('heads_shape', at)}: {shape: [3], dtype: int32, init: {value: [${SEQ}, ${HEADS}, ${HIDDEN / HEADS}]}, trainable: false}`);
    init.push(`      ${c('hidden_shape', at)}: {shape: [2], dtype: int32, init: {value: [${SEQ}, ${HIDDEN}]}, trainable: false}`);
    f16(c('inv_sqrt_d', at), [1], `{constant: ${1 / Math.sqrt(HIDDEN / HEADS)}}`, ', trainable: false');
    f16(c('half', at), [1], '{constant: 0.5}', ', trainable: false');
    f16(c('one', at), [1], '{constant: 1}', ', trainable: false');
    f16(c('inv_sqrt2', at), [1], '{constant: 0.7071067811865476}', ', trainable: false');
  }
  if (s.ipuOf) ipu = `, ipu: ${s.ipuOf.embeddings}`;
  nodes.push('      # Embeddings: word + position + token type, then LayerNormalization');
  node('Gather', ['word_emb', 'ids'], ['e_word']);
  node('Gather', ['pos_emb', 'pos_ids'], ['e_pos']);
  node('Gather', ['type_emb', 'type_ids'], ['e_type']);
  node('Add', ['e_word', 'e_pos'], ['e0']);
  node('Add', ['e0', 'e_type'], ['e1']);
  node('LayerNormalization', ['e1', 'emb_ln_g', 'emb_ln_b'], ['h0'], 'axis: -1, epsilon: 1.0e-12');

  for (let l = 0; l < s.layers; l++) {
    const at = s.ipuOf?.layer(l);
    if (at !== undefined) ipu = `, ipu: ${at}`;
    const [headsShape, hiddenShape, invSqrtD, half, one, invSqrt2] = ['heads_shape', 'hidden_shape', 'inv_sqrt_d', 'half', 'one', 'inv_sqrt2'].map((name) => c(name, at));
    const n = (x: string) => `l${l}_${x}`;
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
      node('Reshape', [n(`${p}1`), headsShape], [n(`${p}2`)]);
      node('Transpose', [n(`${p}2`)], [n(p)], `perm: ${perm}`);
    }
    node('MatMul', [n('q'), n('k')], [n('s0')]);
    node('Mul', [n('s0'), invSqrtD], [n('s1')]);
    node('Softmax', [n('s1')], [n('p')], 'axis: -1');
    node('MatMul', [n('p'), n('v')], [n('c0')]);
    node('Transpose', [n('c0')], [n('c1')], 'perm: [1, 0, 2]');
    node('Reshape', [n('c1'), hiddenShape], [n('c')]);
    node('MatMul', [n('c'), n('wo')], [n('o0')]);
    node('Add', [n('o0'), n('bo')], [n('o1')]);
    node('Add', [n('o1'), x], [n('r1')]);
    node('LayerNormalization', [n('r1'), n('ln1_g'), n('ln1_b')], [n('a')], 'axis: -1, epsilon: 1.0e-12');
    nodes.push(`      # Layer ${l}: feed-forward, GELU(h W1 + b1) W2 + b2 with GELU as 0.5 x (1 + erf(x / sqrt 2))`);
    node('MatMul', [n('a'), n('w1')], [n('f0')]);
    node('Add', [n('f0'), n('b1')], [n('f1')]);
    node('Mul', [n('f1'), invSqrt2], [n('g0')]);
    node('Erf', [n('g0')], [n('g1')]);
    node('Add', [n('g1'), one], [n('g2')]);
    node('Mul', [n('f1'), n('g2')], [n('g3')]);
    node('Mul', [n('g3'), half], [n('g')]);
    node('MatMul', [n('g'), n('w2')], [n('f2')]);
    node('Add', [n('f2'), n('b2')], [n('f3')]);
    node('Add', [n('f3'), n('a')], [n('r2')]);
    node('LayerNormalization', [n('r2'), n('ln2_g'), n('ln2_b')], [`h${l + 1}`], 'axis: -1, epsilon: 1.0e-12');
  }
  return { init, nodes };
}
