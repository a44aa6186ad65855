/**
 * Einsum (ONNX 12) for the matmul-like equations, as a composite of ops
 * tilesim lowers already, so its gradients come from theirs:
 *
 *   1. per operand, ReduceSum over the labels no other operand and not the
 *      output name (a sum over a label);
 *   2. operands contracted left to right, two at a time: labels in both and
 *      still needed later are batch, labels in both and not needed are
 *      contracted, the others free; each side is Transposed to
 *      [batch, free, contracted] ([batch, contracted, free] on the right),
 *      Reshaped to 3-D and multiplied by one batched MatMul (an outer
 *      product when nothing is contracted), then Reshaped back;
 *   3. the result Transposed to the output's label order.
 *
 * This covers batched matmul, transposes, bilinear forms (3 operands), inner
 * and outer products, sums over labels and scalar operands. The ellipsis is
 * taken when every operand's ellipsis dimensions agree (no broadcasting of
 * size-1 dimensions). Refused with a UserError naming the node and the
 * equation: a label repeated within one operand (a diagonal or trace), a
 * label whose dimensions differ between operands (broadcasting), and
 * malformed equations.
 */
import type { NodeDecl } from '../config/types.js';
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

/** A tensor of the expansion with one label per axis. */
interface Labelled {
  name: string;
  labels: string[];
}

/** Ellipsis dimensions get labels no equation can write. */
const ELLIPSIS = (k: number) => `…${k}`;

/** The parsed equation: each operand's labels (ellipsis expanded) and the output's. */
export function parseEinsum(equation: string, ranks: readonly number[], fail: (m: string) => never): { inputs: string[][]; output: string[] } {
  const eq = equation.replace(/\s+/g, '');
  const [lhs, rhs, extra] = eq.split('->');
  if (extra !== undefined) fail(`has more than one '->'`);
  const terms = lhs.split(',');
  if (terms.length !== ranks.length) fail(`names ${terms.length} operand(s) but the node has ${ranks.length} input(s)`);
  let ellipsisRank = -1;
  const labelsOf = (term: string, rank: number | undefined, what: string): string[] => {
    const parts = term.split('...');
    if (parts.length > 2) fail(`${what} '${term}' has more than one ellipsis`);
    for (const ch of parts.join('')) if (!/[A-Za-z]/.test(ch)) fail(`${what} '${term}' has '${ch}'; labels are letters (and one '...')`);
    if (parts.length === 1) {
      if (rank !== undefined && parts[0].length !== rank) fail(`${what} '${term}' has ${parts[0].length} label(s) but the input has rank ${rank}`);
      return [...parts[0]];
    }
    const named = parts[0].length + parts[1].length;
    let e: number;
    if (rank === undefined) {
      e = Math.max(ellipsisRank, 0);
    } else {
      e = rank - named;
      if (e < 0) fail(`${what} '${term}' names ${named} label(s) besides '...' but the input has rank ${rank}`);
      if (ellipsisRank >= 0 && e !== ellipsisRank) fail(`the ellipsis covers ${ellipsisRank} dimension(s) in one operand and ${e} in another: broadcasting across '...' is not supported`);
      ellipsisRank = e;
    }
    return [...parts[0], ...Array.from({ length: e }, (_, k) => ELLIPSIS(k)), ...parts[1]];
  };
  const inputs = terms.map((t, i) => labelsOf(t, ranks[i], `operand ${i}`));
  for (const [i, ls] of inputs.entries()) {
    const seen = new Set<string>();
    for (const l of ls) {
      if (seen.has(l)) fail(`label '${l}' appears twice in operand ${i} ('${terms[i]}'): diagonals and traces are not supported; take the diagonal with Gather or Mul by an identity mask first`);
      seen.add(l);
    }
  }
  let output: string[];
  if (rhs === undefined) {
    // Implicit output: the ellipsis dimensions, then the labels used once, in alphabetical order.
    const count = new Map<string, number>();
    for (const l of inputs.flat()) count.set(l, (count.get(l) ?? 0) + 1);
    const ell = Array.from({ length: Math.max(ellipsisRank, 0) }, (_, k) => ELLIPSIS(k));
    output = [...ell, ...[...count].filter(([l, c]) => c === 1 && !l.startsWith('…')).map(([l]) => l).sort()];
  } else {
    output = labelsOf(rhs, undefined, 'the output');
    const all = new Set(inputs.flat());
    const seen = new Set<string>();
    for (const l of output) {
      if (!all.has(l)) fail(`output label '${l}' is in no operand`);
      if (seen.has(l)) fail(`output label '${l}' appears twice`);
      seen.add(l);
    }
  }
  return { inputs, output };
}

function expandEinsum(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const node: NodeDecl = args.node;
  const equation = args.attributes.string('equation');
  const fail = (m: string): never => b.fail(`equation '${equation}': ${m}`);
  const infos = node.inputs.map((_, i) => b.info(i));
  const { inputs, output } = parseEinsum(equation, infos.map((t) => t.shape.length), fail);
  const dtype = infos[0].dtype;
  if (dtype !== 'float32' && dtype !== 'float16') fail(`supports float32 and float16 operands, got ${fmtInfo(infos[0])}`);
  const size = new Map<string, number>();
  infos.forEach((info, i) => {
    if (info.dtype !== dtype) fail(`operand ${i} is ${fmtInfo(info)} but operand 0 is ${dtype}: all operands must have one type`);
    inputs[i].forEach((l, k) => {
      const d = info.shape[k];
      const prev = size.get(l);
      if (prev !== undefined && prev !== d) fail(`label '${l.startsWith('…') ? '...' : l}' has size ${prev} in one operand and ${d} in operand ${i}: broadcasting a label is not supported`);
      size.set(l, d);
    });
  });
  const dims = (ls: readonly string[]) => ls.map((l) => size.get(l)!);
  const prod = (ls: readonly string[]) => dims(ls).reduce((a, c) => a * c, 1);
  const isIdentity = (perm: readonly number[]) => perm.every((p, i) => p === i);

  const sum = (t: Labelled, drop: readonly string[]): Labelled => {
    if (drop.length === 0) return t;
    const axes = drop.map((l) => t.labels.indexOf(l));
    return { name: b.add('ReduceSum', 13, [t.name, b.ints('axes', axes)], { keepdims: 0 }), labels: t.labels.filter((l) => !drop.includes(l)) };
  };
  const permute = (t: Labelled, order: readonly string[], out?: string): Labelled => {
    const perm = order.map((l) => t.labels.indexOf(l));
    if (isIdentity(perm) && out === undefined) return t;
    return { name: isIdentity(perm) ? b.add('Identity', 13, [t.name], {}, out) : b.add('Transpose', 13, [t.name], { perm }, out), labels: [...order] };
  };
  const reshape = (name: string, shape: number[]) => b.reshape(name, shape);

  /** Labels needed after operand `i`: the output's and those of the operands after it. */
  const neededAfter = (i: number) => new Set([...output, ...inputs.slice(i + 1).flat()]);

  // 1. Sum each operand over the labels that appear nowhere else.
  const ops: Labelled[] = node.inputs.map((name, i) => {
    const elsewhere = new Set([...output, ...inputs.filter((_, j) => j !== i).flat()]);
    return sum({ name, labels: inputs[i] }, inputs[i].filter((l) => !elsewhere.has(l)));
  });

  // 2. Contract left to right.
  let acc = ops[0];
  for (let i = 1; i < ops.length; i++) {
    const right = ops[i];
    const keep = neededAfter(i);
    const inRight = new Set(right.labels);
    const inLeft = new Set(acc.labels);
    const batch = acc.labels.filter((l) => inRight.has(l) && keep.has(l));
    const contracted = acc.labels.filter((l) => inRight.has(l) && !keep.has(l));
    const leftFree = acc.labels.filter((l) => !inRight.has(l));
    const rightFree = right.labels.filter((l) => !inLeft.has(l));
    const lhs = permute(acc, [...batch, ...leftFree, ...contracted]);
    const rhs = permute(right, [...batch, ...contracted, ...rightFree]);
    const [B, M, K, N] = [prod(batch), prod(leftFree), prod(contracted), prod(rightFree)];
    const mm = b.add('MatMul', 13, [reshape(lhs.name, [B, M, K]), reshape(rhs.name, [B, K, N])]);
    const labels = [...batch, ...leftFree, ...rightFree];
    acc = { name: reshape(mm, dims(labels)), labels };
  }

  // 3. Sum what the output does not name (only possible with one operand), then order as the output.
  acc = sum(acc, acc.labels.filter((l) => !output.includes(l)));
  permute(acc, output, node.outputs[0]);
  return b.done();
}

export const einsumDefinitions: OpDefinition[] = versions('Einsum', [12], () => ({
  description: 'Einstein summation for matmul-like equations (batched matmul, transposes, bilinear, inner/outer products, sums over labels): a composite of ReduceSum, Transpose, Reshape and MatMul; diagonals (a label twice in one operand) are refused',
  inputs: [{ name: 'Inputs', variadic: true }],
  outputs: [{ name: 'Output' }],
  attributes: { equation: { type: 'string', description: "e.g. 'bij,bjk->bik' (required)" } },
  grad: true,
  expand: expandEinsum,
}));
