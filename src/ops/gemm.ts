/**
 * Gemm (ONNX 11 and 13): Y = alpha op(A) op(B) + beta C, op = transpose when
 * transA / transB is set, C optional and unidirectionally broadcast to
 * [M, N]. A composite: it expands at import into
 *   MatMul or MatMulT -> [Mul alpha] -> [Add (C or Mul(C, beta))]
 * (each bracketed node only when needed; beta = 0 drops C as onnxruntime
 * does), so its gradients and lowering are those of MatMul, Mul and Add,
 * with NumPy broadcasting (the Add grad sums over C's broadcast axes). alpha
 * and beta become constants of A's dtype.
 *
 * MatMulT (ai.graphcore) is op(A) op(B) for 2-D operands as stored: the
 * matmul lowering reads a transposed operand by gathering its blocks in the
 * order the AMP reads them, so no transposed copy of a weight is ever made
 * (PyTorch writes every Linear layer as Gemm with transB = 1). Its grads are
 * matmuls with transposed operands too. ONNX export writes it back as Gemm.
 */
import type { NodeDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type Expansion, type ExpandArgs, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { lowerMatMul, matMulCreateInput, problem2d } from './matmul.js';
import { gid, versions } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOf, gradOut } from './arg-grad.js';

/** Y [M, N] = op(A) op(B) for 2-D A and B as stored (op = transpose where the flag is set). */
export class MatMulTOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly transA: boolean,
    readonly transB: boolean,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (a.shape.length !== 2 || b.shape.length !== 2) this.fail(`A and B must be 2-D, got ${fmtInfo(a)} and ${fmtInfo(b)}`);
    if (a.dtype !== b.dtype || (a.dtype !== 'float32' && a.dtype !== 'float16')) this.fail(`A and B must share one float dtype, got ${a.dtype} and ${b.dtype}`);
    const [M, K] = this.transA ? [a.shape[1], a.shape[0]] : a.shape;
    const [K2, N] = this.transB ? [b.shape[1], b.shape[0]] : b.shape;
    if (K !== K2) this.fail(`op(A) is [${M}, ${K}] but op(B) is [${K2}, ${N}]: inner dimensions differ`);
    this.setOutInfo(0, { dtype: a.dtype, shape: [M, N] });
  }
  private macs(): number {
    const [M, N] = this.outInfo(0).shape;
    const a = this.inInfo(0).shape;
    return M * N * (this.transA ? a[0] : a[1]);
  }
  override getGradOps(): ArgGradOp[] {
    return [
      new ArgGradOp(gid('MatMulTGradA'), this, 0, [gradOut(0), fwdIn(1, 1)], () => 2 * this.macs()),
      new ArgGradOp(gid('MatMulTGradB'), this, 1, [gradOut(0), fwdIn(1, 0)], () => 2 * this.macs()),
    ];
  }
  override attributes(): Record<string, AttributeValue> {
    return { transA: this.transA ? 1 : 0, transB: this.transB ? 1 : 0 };
  }
  override onnxForm() {
    return { opid: { domain: '', type: 'Gemm', version: 13 }, attributes: { transA: this.transA ? 1 : 0, transB: this.transB ? 1 : 0 } };
  }
  override flops(): number {
    return 2 * this.macs();
  }
}

/** dA (as stored) = dY op(B)^T, or for transA its transpose op(B) dY^T. Inputs: 0 dY, 1 B. */
function lowerGradA(op: ArgGradOp<MatMulTOp>, ctx: LowerContext): void {
  const { transA, transB } = op.fwd;
  if (!transA) lowerMatMul(ctx, 0, 1, false, !transB);
  else lowerMatMul(ctx, 1, 0, transB, true);
}

/** dB (as stored) = op(A)^T dY, or for transB its transpose dY^T op(A). Inputs: 0 dY, 1 A. */
function lowerGradB(op: ArgGradOp<MatMulTOp>, ctx: LowerContext): void {
  const { transA, transB } = op.fwd;
  if (!transB) lowerMatMul(ctx, 1, 0, !transA, false);
  else lowerMatMul(ctx, 0, 1, true, transA);
}

const MATMUL_T = gid('MatMulT');

const matMulTDefinitions: OpDefinition[] = [
  defineOp({
    op: MatMulTOp,
    id: MATMUL_T,
    description: "op(A) x op(B) for 2-D operands, op = transpose where transA / transB is set (Gemm's product, no transposed copy)",
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'Y' }],
    attributes: { transA: { type: 'int', default: 0 }, transB: { type: 'int', default: 0 } },
    grad: true,
    create: ({ attributes, settings }) => new MatMulTOp(MATMUL_T, attributes.int('transA') !== 0, attributes.int('transB') !== 0, settings),
    // A Linear layer's weight (transB) laid out where the planned matmul reads it, as MatMul's.
    createInput: (m, index, device, plans, use) => matMulCreateInput(m, index, device, plans, problem2d(m.inInfo(0).shape, m.inInfo(1).shape, m.transA, m.transB), use),
    lower: (m, ctx) => lowerMatMul(ctx, 0, 1, m.transA, m.transB),
  }),
  defineOp({ op: gradOf(MatMulTOp), id: gid('MatMulTGradA'), description: 'dA of MatMulT: a matmul of dY and B, transposed as needed', lower: lowerGradA }),
  defineOp({ op: gradOf(MatMulTOp), id: gid('MatMulTGradB'), description: 'dB of MatMulT: a matmul of A and dY, transposed as needed', lower: lowerGradB }),
];

/** The versions of Gemm's parts (those registered whose semantics Gemm needs). */
const PART_VERSIONS: Record<string, number> = { MatMul: 13, Mul: 14, Add: 14 };

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
  // Each part names its version: resolved at the model's opset instead, an opset-6 model's Gemm would get an Add-6.
  const add = (op: string, inputs: string[], output: string, suffix: string, attrs: NodeDecl['attributes'] = {}, domain = ''): string => {
    const version = domain === MATMUL_T.domain ? MATMUL_T.version : PART_VERSIONS[op];
    nodes.push({ op, domain, version, name: `${node.name}/${suffix}`, inputs, outputs: [output], attributes: attrs, loc: node.loc });
    return output;
  };
  const scalar = (name: string, v: number): string => {
    const id = fresh(`${node.name}/${name}`);
    constants.push({ name: id, dtype, shape: [1], data: Float32Array.of(v) });
    return id;
  };
  const scaled = alpha !== 1;
  const last = !scaled && !useC;
  const product = last ? out : fresh(`${node.name}/AB`);
  let y =
    transA || transB
      ? add(MATMUL_T.type, [node.inputs[0], node.inputs[1]], product, 'matmul', { transA: transA ? 1 : 0, transB: transB ? 1 : 0 }, MATMUL_T.domain)
      : add('MatMul', [node.inputs[0], node.inputs[1]], product, 'matmul');
  if (scaled) y = add('Mul', [y, scalar('alpha', alpha)], useC ? fresh(`${node.name}/alphaAB`) : out, 'alpha');
  if (useC) {
    const C = beta !== 1 ? add('Mul', [node.inputs[2], scalar('beta', beta)], fresh(`${node.name}/betaC`), 'beta') : node.inputs[2];
    add('Add', [y, C], out, 'add');
  }
  return { nodes, constants };
}

export const gemmDefinitions: OpDefinition[] = [
  ...matMulTDefinitions,
  ...versions('Gemm', [11, 13], () => ({
    description: 'Y = alpha op(A) op(B) + beta C; a composite of MatMul (or MatMulT), Mul and Add',
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
  })),
];
