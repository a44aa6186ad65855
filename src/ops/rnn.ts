/**
 * ONNX LSTM, GRU and RNN (7, 14, 22) as composites: the static sequence is
 * unrolled at import into ops tilesim lowers already, so their gradients are
 * those of the parts (autodiff through the unrolled steps, as backpropagation
 * through time).
 *
 *   input projection  one matmul for every step and direction, as PopLibs does:
 *                     P = X [S*B, I] . W [D*G*H, I]^T + (Wb + Rb) [D*G*H]
 *   each step t       Slice of P (rows of step t, columns of direction d)
 *                     + H_prev R_d^T, then the gates:
 *     LSTM  i = f(. + Pi C_prev), f = f(. + Pf C_prev) (1 - i with input_forget),
 *           c = g(.), C = f C_prev + i c, o = f(. + Po C), H = o h(C)
 *     GRU   z, r = f(.), h = g(Xh + (r H_prev) Rh^T + Rbh + Wbh)
 *           (linear_before_reset: g(Xh + r (H_prev Rh^T + Rbh) + Wbh)),
 *           H = h + z (H_prev - h)  [= (1 - z) h + z H_prev]
 *     RNN   H = f(.)
 *   clip bounds every activation's input to [-clip, clip] (onnxruntime's
 *   reading: gate inputs; not the cell state fed to h).
 *   The products are MatMulT (Gemm's product: W and R read transposed where
 *   they lie, no transposed copy) with every node's version pinned, so the
 *   expansion is the same in a model of any opset.
 *   Y    Concat of the steps' H in time order (reverse: computed from the last
 *        step back), [S, D, B, H]; Y_h, Y_c the last states, [D, B, H]
 *        (layout 1: batch first, by Transposes at both ends).
 *
 * sequence_lens (streamed or constant) masks each step: a batch entry past
 * its length keeps its state (Where) and writes zeros to Y; the reverse
 * direction thus starts at each entry's own last step, as onnxruntime does.
 * A constant sequence_lens of all S is dropped.
 *
 * Cost: each step is a handful of small ops (about 15 for an LSTM). The
 * gradient of the projection is the sum of the steps' SliceGrads, each the
 * size of P, so its elements grow as S^2 B G H; spread over the tiles it
 * stays small beside the steps up to about a hundred steps (docs/onnx.md has
 * cycles), and its memory is what limits much longer sequences.
 */
import type { DType } from '../ir/dtype.js';
import type { ExpandArgs, Expansion, OpDefinition, AttributeDef } from '../ir/registry.js';
import { fmtInfo, type TensorInfo } from '../ir/tensorinfo.js';
import { GRAPHCORE_DOMAIN } from '../ir/opid.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

type Kind = 'LSTM' | 'GRU' | 'RNN';

const MATMUL_T = 'MatMulT';
/** Gates per kind (rows of W per direction are gates x hidden) and activations per direction. */
const GATES: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };
const DEFAULT_ACTS: Record<Kind, string[]> = { LSTM: ['Sigmoid', 'Tanh', 'Tanh'], GRU: ['Sigmoid', 'Tanh'], RNN: ['Tanh'] };

/**
 * Activation functions ONNX allows in the recurrent ops, with the alpha and
 * beta each consumes from activation_alpha / activation_beta (in order) and
 * the values when the list runs out: onnxruntime's table (rnn_helpers).
 */
const ACTIVATIONS: Record<string, { alpha: number | undefined; beta: number | undefined }> = {
  relu: { alpha: undefined, beta: undefined },
  tanh: { alpha: undefined, beta: undefined },
  sigmoid: { alpha: undefined, beta: undefined },
  softsign: { alpha: undefined, beta: undefined },
  softplus: { alpha: undefined, beta: undefined },
  affine: { alpha: 0, beta: 0 },
  leakyrelu: { alpha: 0.01, beta: undefined },
  thresholdedrelu: { alpha: 0, beta: undefined },
  scaledtanh: { alpha: 0, beta: 0 },
  hardsigmoid: { alpha: 0.2, beta: 0.5 },
  elu: { alpha: 1, beta: undefined },
};

interface Activation {
  name: string;
  alpha: number;
  beta: number;
}

interface Ctx {
  b: Builder;
  dtype: DType;
  /** The clip bounds' constants (-clip, clip), made once. */
  clip: [string, string] | undefined;
}

function scalar(c: Ctx, base: string, v: number): string {
  return c.b.tensor(base, c.dtype, [], Float32Array.of(v));
}

/**
 * x w^T (+ c): what Gemm with transB expands into, written directly (MatMulT
 * reads w transposed in place) so every node has its version pinned and the
 * op works in a model of any opset.
 */
function linear(b: Builder, x: string, w: string, c?: string): string {
  const y = b.tmp('matmult');
  b.nodes.push({ op: MATMUL_T, domain: GRAPHCORE_DOMAIN, name: b.tmp('linear'), inputs: [x, w], outputs: [y], attributes: { transA: 0, transB: 1 }, loc: b.node.loc });
  return c ? b.add('Add', 14, [y, c]) : y;
}

/** act(clip(x)). */
function activate(c: Ctx, a: Activation, x: string): string {
  const { b } = c;
  const v = c.clip === undefined ? x : b.add('Clip', 13, [x, ...c.clip]);
  switch (a.name) {
    case 'relu':
      return b.add('Relu', 14, [v]);
    case 'tanh':
      return b.add('Tanh', 13, [v]);
    case 'sigmoid':
      return b.add('Sigmoid', 13, [v]);
    case 'softsign':
      return b.add('Softsign', 1, [v]);
    case 'softplus':
      return b.add('Softplus', 1, [v]);
    case 'affine':
      return b.add('Add', 14, [b.add('Mul', 14, [v, scalar(c, 'alpha', a.alpha)]), scalar(c, 'beta', a.beta)]);
    case 'leakyrelu':
      return b.add('LeakyRelu', 16, [v], { alpha: a.alpha });
    case 'thresholdedrelu':
      return b.add('ThresholdedRelu', 10, [v], { alpha: a.alpha });
    case 'scaledtanh':
      return b.add('Mul', 14, [b.add('Tanh', 13, [b.add('Mul', 14, [v, scalar(c, 'beta', a.beta)])]), scalar(c, 'alpha', a.alpha)]);
    case 'hardsigmoid':
      return b.add('HardSigmoid', 6, [v], { alpha: a.alpha, beta: a.beta });
    default:
      return b.add('Elu', 6, [v], { alpha: a.alpha });
  }
}

/** The activations per direction, alpha and beta consumed in order as onnxruntime does. */
function activations(b: Builder, kind: Kind, args: ExpandArgs, D: number): Activation[][] {
  const given = args.attributes.strings('activations');
  const n = DEFAULT_ACTS[kind].length;
  const names = given.length === 0 ? Array.from({ length: D }, () => DEFAULT_ACTS[kind]).flat() : given;
  if (names.length !== n * D) {
    b.fail(`activations [${given.join(', ')}] must name ${n * D} functions (${n} per direction: ${DEFAULT_ACTS[kind].join(', ')} by default)`);
  }
  const alphas = [...args.attributes.floats('activation_alpha')];
  const betas = [...args.attributes.floats('activation_beta')];
  const acts = names.map((raw) => {
    const name = raw.toLowerCase();
    const t = ACTIVATIONS[name];
    if (!t) b.fail(`activation '${raw}' is not one ONNX allows (${Object.keys(ACTIVATIONS).join(', ')}; any case)`);
    const alpha = t.alpha === undefined ? 0 : (alphas.shift() ?? t.alpha);
    const beta = t.beta === undefined ? 0 : (betas.shift() ?? t.beta);
    return { name, alpha, beta };
  });
  return Array.from({ length: D }, (_, d) => acts.slice(d * n, (d + 1) * n));
}

function expandRecurrent(kind: Kind, version: number) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const { attributes: at, node } = args;
    const [xIn, wIn, rIn, bIn = '', lensIn = '', h0In = '', c0In = '', pIn = ''] = node.inputs;
    const out = (i: number) => node.outputs[i] ?? '';
    const x = b.info(0);
    const dtype = x.dtype;
    if (dtype !== 'float32' && dtype !== 'float16') b.fail(`supports float32 and float16 X, got ${fmtInfo(x)}`);
    const layout = version >= 14 ? at.int('layout') : 0;
    if (layout !== 0 && layout !== 1) b.fail(`layout ${layout} must be 0 ([seq, batch, ...]) or 1 ([batch, seq, ...])`);
    if (x.shape.length !== 3) b.fail(`X must be 3-D (${layout ? '[batch, seq, input]' : '[seq, batch, input]'}), got ${fmtInfo(x)}`);
    const [S, B] = layout ? [x.shape[1], x.shape[0]] : [x.shape[0], x.shape[1]];
    const I = x.shape[2];
    const direction = at.string('direction');
    if (!['forward', 'reverse', 'bidirectional'].includes(direction)) b.fail(`direction '${direction}' must be forward, reverse or bidirectional`);
    const D = direction === 'bidirectional' ? 2 : 1;
    const G = GATES[kind];
    const H = at.int('hidden_size') || b.info(2).shape[2];
    if (!(H >= 1)) b.fail(`hidden_size ${H} must be >= 1`);
    const clipAttr = at.float('clip');
    if (!(clipAttr >= 0)) b.fail(`clip ${clipAttr} must be > 0 (or 0 for none)`);
    const clip = clipAttr > 0 ? clipAttr : undefined;
    const c: Ctx = { b, dtype, clip: undefined };
    if (clip !== undefined) c.clip = [scalar(c, 'clip_min', -clip), scalar(c, 'clip_max', clip)];
    const acts = activations(b, kind, args, D);
    const lbr = kind === 'GRU' ? at.int('linear_before_reset') : 0;
    const inputForget = kind === 'LSTM' ? at.int('input_forget') : 0;

    const expect = (i: number, what: string, shape: number[]) => {
      const t = b.info(i);
      if (t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, k) => d !== shape[k])) {
        b.fail(`${what} must be ${dtype}[${shape.join(', ')}], got ${fmtInfo(t)}`);
      }
    };
    expect(1, 'W', [D, G * H, I]);
    expect(2, 'R', [D, G * H, H]);
    if (bIn) expect(3, 'B', [D, 2 * G * H]);
    const stateShape = layout ? [B, D, H] : [D, B, H];
    if (h0In) expect(5, 'initial_h', stateShape);
    if (c0In) expect(6, 'initial_c', stateShape);
    if (pIn) expect(7, 'P', [D, 3 * H]);

    // Masks from sequence_lens (none when every entry is full length).
    let lens: string | undefined;
    if (lensIn) {
      const li: TensorInfo = b.info(4);
      if (li.dtype !== 'int32' || li.shape.length !== 1 || li.shape[0] !== B) b.fail(`sequence_lens must be int32[${B}] (one length per batch entry), got ${fmtInfo(li)}`);
      const data = args.inputData[4];
      if (data && Array.from(data).some((v) => v < 1 || v > S)) b.fail(`sequence_lens [${Array.from(data).join(', ')}] must lie in 1..${S}`);
      if (!data || Array.from(data).some((v) => v !== S)) lens = b.reshape(lensIn, [B, 1]);
    }

    const slice = (t: string, starts: number[], ends: number[], axes: number[]) =>
      b.add('Slice', 13, [t, b.ints('starts', starts), b.ints('ends', ends), b.ints('axes', axes)]);
    /** Direction d of a [D, ...] tensor (axis `axis`), reshaped. */
    const pick = (t: string, axis: number, d: number, shape: number[]) => b.reshape(D === 1 ? t : slice(t, [d], [d + 1], [axis]), shape);

    // Input projection, every step and direction in one matmul.
    const xs = layout ? b.add('Transpose', 13, [xIn], { perm: [1, 0, 2] }) : xIn;
    let bias: string | undefined;
    if (bIn) {
      const wb = slice(bIn, [0], [G * H], [1]);
      let rb = slice(bIn, [G * H], [2 * G * H], [1]);
      // GRU with linear_before_reset: Rbh is multiplied by r, so it is added per step instead (rbh below).
      if (lbr) rb = b.add('Mul', 14, [rb, b.tensor('rb_keep', dtype, [1, G * H], Float32Array.from({ length: G * H }, (_, k) => (k < 2 * H ? 1 : 0)))]);
      bias = b.reshape(b.add('Add', 14, [wb, rb]), [D * G * H]);
    }
    const proj = linear(b, b.reshape(xs, [S * B, I]), b.reshape(wIn, [D * G * H, I]), bias);
    /** Columns [from, to) of direction d's gates at step t: [B, to - from]. */
    const stepProj = (t: number, d: number, from: number, to: number) => slice(proj, [t * B, d * G * H + from], [(t + 1) * B, d * G * H + to], [0, 1]);

    const zeros = () => b.tensor('zeros', dtype, [B, H], new Float32Array(B * H));
    const padding = lens && out(0) ? b.tensor('padding', dtype, [1, 1], new Float32Array(1)) : '';
    const stateAxis = layout ? 1 : 0;
    const ys: string[] = [];
    const hs: string[] = [];
    const cs: string[] = [];
    for (let d = 0; d < D; d++) {
      const [f, g, h] = acts[d];
      const reverse = direction === 'reverse' || d === 1;
      const r = pick(rIn, 0, d, [G * H, H]);
      let hPrev = h0In ? pick(h0In, stateAxis, d, [B, H]) : zeros();
      let cPrev = kind === 'LSTM' ? (c0In ? pick(c0In, stateAxis, d, [B, H]) : zeros()) : '';
      const peep = kind === 'LSTM' && pIn ? [0, 1, 2].map((k) => slice(pick(pIn, 0, d, [3 * H]), [k * H], [(k + 1) * H], [0])) : undefined;
      // GRU: R split into the z, r rows and the h rows (the h product is taken after the reset).
      const [rZR, rH] = kind === 'GRU' ? [slice(r, [0], [2 * H], [0]), slice(r, [2 * H], [3 * H], [0])] : ['', ''];
      const rbh = kind === 'GRU' && lbr ? (bIn ? b.reshape(slice(bIn, [d, 5 * H], [d + 1, 6 * H], [0, 1]), [H]) : undefined) : undefined;
      const steps: string[] = new Array<string>(S);
      for (let k = 0; k < S; k++) {
        const t = reverse ? S - 1 - k : k;
        let hNew: string;
        let cNew = '';
        if (kind === 'RNN') {
          hNew = activate(c, f, linear(b, hPrev, r, stepProj(t, d, 0, H)));
        } else if (kind === 'GRU') {
          const zr = activate(c, f, linear(b, hPrev, rZR, stepProj(t, d, 0, 2 * H)));
          const z = slice(zr, [0], [H], [1]);
          const rg = slice(zr, [H], [2 * H], [1]);
          const xh = stepProj(t, d, 2 * H, 3 * H);
          const pre = lbr
            ? b.add('Add', 14, [xh, b.add('Mul', 14, [rg, linear(b, hPrev, rH, rbh)])])
            : linear(b, b.add('Mul', 14, [rg, hPrev]), rH, xh);
          const hh = activate(c, g, pre);
          hNew = b.add('Add', 14, [hh, b.add('Mul', 14, [z, b.add('Sub', 14, [hPrev, hh])])]);
        } else {
          const pre = linear(b, hPrev, r, stepProj(t, d, 0, 4 * H));
          const gate = (k2: number) => slice(pre, [k2 * H], [(k2 + 1) * H], [1]);
          const withPeep = (x: string, k2: number, state: string) => (peep ? b.add('Add', 14, [x, b.add('Mul', 14, [peep[k2], state])]) : x);
          const i = activate(c, f, withPeep(gate(0), 0, cPrev));
          const fg = inputForget ? b.add('Sub', 14, [scalar(c, 'one', 1), i]) : activate(c, f, withPeep(gate(2), 2, cPrev));
          const cc = activate(c, g, gate(3));
          cNew = b.add('Add', 14, [b.add('Mul', 14, [fg, cPrev]), b.add('Mul', 14, [i, cc])]);
          const o = activate(c, f, withPeep(gate(1), 1, cNew));
          hNew = b.add('Mul', 14, [o, activate({ ...c, clip: undefined }, h, cNew)]);
        }
        if (lens) {
          const m = b.add('Less', 13, [b.ints('t', [t], []), lens]);
          // Only when Y is wanted: nothing prunes unread nodes.
          if (out(0)) steps[t] = b.add('Where', 16, [m, hNew, padding]);
          hNew = b.add('Where', 16, [m, hNew, hPrev]);
          if (kind === 'LSTM') cNew = b.add('Where', 16, [m, cNew, cPrev]);
        } else steps[t] = hNew;
        hPrev = hNew;
        cPrev = cNew;
      }
      if (out(0)) ys.push(b.reshape(S === 1 ? steps[0] : b.add('Concat', 13, steps, { axis: 0 }), [S, 1, B, H]));
      if (out(1)) hs.push(b.reshape(hPrev, [1, B, H]));
      if (kind === 'LSTM' && out(2)) cs.push(b.reshape(cPrev, [1, B, H]));
    }

    /** Directions joined on `axis`, written to `name` (batch first for layout 1 by `perm`). */
    const emit = (parts: string[], axis: number, perm: number[], name: string) => {
      const joined = parts.length === 1 ? parts[0] : b.add('Concat', 13, parts, { axis });
      if (layout) b.add('Transpose', 13, [joined], { perm }, name);
      else b.add('Identity', 13, [joined], {}, name);
    };
    if (out(0)) emit(ys, 1, [2, 0, 1, 3], out(0));
    if (out(1)) emit(hs, 0, [1, 0, 2], out(1));
    if (kind === 'LSTM' && out(2)) emit(cs, 0, [1, 0, 2], out(2));
    return b.done();
  };
}

function definitions(kind: Kind): OpDefinition[] {
  const what = {
    LSTM: 'Long short-term memory (gates i, o, f, c; peepholes, input_forget)',
    GRU: 'Gated recurrent unit (gates z, r, h; linear_before_reset)',
    RNN: 'Simple recurrent network H = f(X W^T + H R^T + Wb + Rb)',
  }[kind];
  return versions(kind, [7, 14, 22], (id) => {
    const attributes: Record<string, AttributeDef> = {
      activation_alpha: { type: 'floats', default: [], description: 'alpha of the activations that take one, in order' },
      activation_beta: { type: 'floats', default: [], description: 'beta of the activations that take one, in order' },
      activations: { type: 'strings', default: [], description: `${DEFAULT_ACTS[kind].length} per direction (default ${DEFAULT_ACTS[kind].join(', ')})` },
      clip: { type: 'float', default: 0, description: "bound on the activations' inputs (0 or absent: none)" },
      direction: { type: 'string', default: 'forward', description: 'forward, reverse or bidirectional' },
      hidden_size: { type: 'int', default: 0, description: "H (absent: R's last axis)" },
      ...(id.version >= 14 ? { layout: { type: 'int' as const, default: 0, description: '0: [seq, batch, ...]; 1: [batch, seq, ...]' } } : {}),
      ...(kind === 'LSTM' ? { input_forget: { type: 'int' as const, default: 0, description: '1: f = 1 - i' } } : {}),
      ...(kind === 'GRU' ? { linear_before_reset: { type: 'int' as const, default: 0, description: '1: r multiplies H R_h^T + Rb_h' } } : {}),
    };
    return {
      description: `${what}: unrolled over the static sequence into MatMulT, Slice, activations, Mul, Add, Concat (one projection matmul for all steps); gradients through the parts`,
      inputs: [
        { name: 'X' },
        { name: 'W' },
        { name: 'R' },
        { name: 'B', optional: true },
        { name: 'sequence_lens', optional: true },
        { name: 'initial_h', optional: true },
        ...(kind === 'LSTM' ? [{ name: 'initial_c', optional: true }, { name: 'P', optional: true }] : []),
      ],
      outputs: [{ name: 'Y', optional: true }, { name: 'Y_h', optional: true }, ...(kind === 'LSTM' ? [{ name: 'Y_c', optional: true }] : [])],
      attributes,
      grad: true,
      expand: expandRecurrent(kind, id.version),
    };
  });
}

export const rnnDefinitions: OpDefinition[] = [...definitions('LSTM'), ...definitions('GRU'), ...definitions('RNN')];
