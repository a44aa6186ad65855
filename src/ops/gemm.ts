/**
 * Gemm (ONNX 11 and 13): Y = alpha op(A) op(B) + beta C, op = transpose when
 * transA / transB is set, C optional and unidirectionally broadcast to
 * [M, N]. A composite: it expands at import into
 *   [Transpose A] [Transpose B] -> MatMul -> [Mul alpha] -> [Add (C or Mul(C, beta))]
 * (each bracketed node only when needed; beta = 0 drops C as onnxruntime
 * does), so its gradients and lowering are those of Transpose, MatMul, Mul
 * and Add, with NumPy broadcasting (the Add grad sums over C's broadcast
 * axes). alpha and beta become constants of A's dtype.
 */
import type { NodeDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import type { Expansion, ExpandArgs, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { versions } from './nn-util.js';

function expandGemm({ node, attributes, inputInfos, fresh }: ExpandArgs): Expansion {
  const fail = (msg: string): never => {
    throw new UserError(`node '${node.name}' (Gemm): ${msg}`, node.loc);
  };
  const [a, b] = inputInfos;
  const c = inputInfos[2];
  if (!a || !b) return fail('needs inputs A and B');
  const alpha = attributes.float('alpha');
  const beta = attributes.float('beta');
  const transA = attributes.int('transA') !== 0;
  const transB = attributes.int('transB') !== 0;
  if (a.shape.length !== 2 || b.shape.length !== 2) fail(`A and B must be 2-D, got A ${fmtInfo(a)} and B ${fmtInfo(b)}`);
  if (a.dtype !== 'float32' && a.dtype !== 'float16') fail(`A must be float32 or float16, got ${fmtInfo(a)}`);
  if (b.dtype !== a.dtype || (c && c.dtype !== a.dtype)) fail(`A, B and C must share one dtype, got ${a.dtype}, ${b.dtype}${c ? `, ${c.dtype}` : ''}`);
  const [M, K] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [K2, N] = transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (K !== K2) fail(`op(A) is [${M}, ${K}] but op(B) is [${K2}, ${N}] (transA ${transA ? 1 : 0}, transB ${transB ? 1 : 0}): inner dimensions differ`);
  const useC = c !== undefined && beta !== 0;
  if (c && useC) {
    const ok = c.shape.length <= 2 && c.shape.every((d, i) => d === 1 || d === [M, N][2 - c.shape.length + i]);
    if (!ok) fail(`C ${fmtInfo(c)} does not broadcast to the output [${M}, ${N}]`);
  }

  const dtype = a.dtype as DType;
  const nodes: NodeDecl[] = [];
  const constants: Expansion['constants'] = [];
  const out = node.outputs[0];
  const add = (op: string, inputs: string[], output: string, suffix: string, attrs: NodeDecl['attributes'] = {}): string => {
    nodes.push({ op, domain: '', name: `${node.name}/${suffix}`, inputs, outputs: [output], attributes: attrs, loc: node.loc });
    return output;
  };
  const scalar = (name: string, v: number): string => {
    const id = fresh(`${node.name}/${name}`);
    constants.push({ name: id, dtype, shape: [1], data: Float32Array.of(v) });
    return id;
  };
  const A = transA ? add('Transpose', [node.inputs[0]], fresh(`${node.name}/At`), 'transA', { perm: [1, 0] }) : node.inputs[0];
  const B = transB ? add('Transpose', [node.inputs[1]], fresh(`${node.name}/Bt`), 'transB', { perm: [1, 0] }) : node.inputs[1];
  const scaled = alpha !== 1;
  const last = !scaled && !useC;
  let y = add('MatMul', [A, B], last ? out : fresh(`${node.name}/AB`), 'matmul');
  if (scaled) y = add('Mul', [y, scalar('alpha', alpha)], useC ? fresh(`${node.name}/alphaAB`) : out, 'alpha');
  if (useC) {
    const C = beta !== 1 ? add('Mul', [node.inputs[2], scalar('beta', beta)], fresh(`${node.name}/betaC`), 'beta') : node.inputs[2];
    add('Add', [y, C], out, 'add');
  }
  return { nodes, constants };
}

export const gemmDefinitions: OpDefinition[] = versions('Gemm', [11, 13], () => ({
  description: 'Y = alpha op(A) op(B) + beta C; a composite of Transpose, MatMul, Mul and Add',
  inputs: [{ name: 'A' }, { name: 'B' }, { name: 'C', optional: true }],
  outputs: [{ name: 'Y' }],
  attributes: {
    alpha: { type: 'float', default: 1 },
    beta: { type: 'float', default: 1 },
    transA: { type: 'int', default: 0 },
    transB: { type: 'int', default: 0 },
  },
  grad: true,
  expand: expandGemm,
}));
