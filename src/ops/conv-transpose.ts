/**
 * ConvTranspose (ONNX 1 and 11): NCHW with 1 to 3 spatial dims, group,
 * strides, pads, output_padding, output_shape, dilations, auto_pad NOTSET /
 * VALID / SAME_UPPER / SAME_LOWER, optional bias.
 *
 * A transposed convolution is the input gradient of a convolution: with W
 * [C, M / group, k...] read as a Conv weight (C output channels, M input
 * channels), Y = ConvTranspose(X, W) is dX of the Conv from an input of Y's
 * shape to one of X's, with the same strides, dilations, begin pads and
 * group, given dY = X. So ConvTranspose lowers through Conv's planned dX
 * lowering (src/lower/conv-grad-planner.ts: blocks of output rows x
 * channels, each tile gathering only the X box and the weights its block
 * reads; taps that land between strides are skipped, so no zero-inserted or
 * padded copy of X is ever made and no MAC is spent on inserted zeros).
 * Its gradients are the other two convolution lowerings of the same spec:
 *   dX = Conv(dY, W)            (the forward Conv, planned)
 *   dW = ConvGradW(X, dY)       (dY of the Conv is our X, its input our dY)
 * output_padding, and an output_shape up to stride - 1 past the natural
 * size, are end rows that no tap reaches (the Conv's floor), left 0.
 *
 * The ONNX node expands into the bias-free op (ai.graphcore
 * ConvTransposeNoBias) plus an Add of B reshaped to [M, 1, ...].
 */
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type AttributeDef, type ExpandArgs, type Expansion, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { UserError } from '../errors.js';
import type { NodeDecl } from '../config/types.js';
import type { MatMulDType } from '../lower/matmul-planner.js';
import { lowerConvGradWSpec, lowerConvGradXSpec, lowerConvSpec, type ConvSpec } from './conv.js';
import { floatInput, gid, product, sameDTypeAs, versions, withoutEmpty } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOf, gradOut } from './arg-grad.js';
import { AUTO_PADS, type Geometry } from './spatial.js';

export interface ConvTransposeAttrs {
  autoPad: string;
  dilations: number[];
  group: number;
  kernelShape: number[];
  outputPadding: number[];
  outputShape: number[];
  pads: number[];
  strides: number[];
}

const NO_BIAS = gid('ConvTransposeNoBias');

/** Y = ConvTranspose(X, W) without bias: the input gradient of the Conv `spec()` describes. */
export class ConvTransposeOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly attrs: ConvTransposeAttrs,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    floatInput(this, 0);
    sameDTypeAs(this, 0, [1]);
    const x = this.inInfo(0);
    const w = this.inInfo(1);
    const { group } = this.attrs;
    if (x.shape.length < 3) this.fail(`X must be [N, C, spatial...], got ${fmtInfo(x)}`);
    if (w.shape.length !== x.shape.length) this.fail(`W ${fmtInfo(w)} must have the rank of X ${fmtInfo(x)}: [C, M / group, kernel...]`);
    const C = x.shape[1];
    if (!Number.isInteger(group) || group < 1 || C % group !== 0) this.fail(`group ${group} must divide the input channels (${C})`);
    if (w.shape[0] !== C) this.fail(`W ${fmtInfo(w)} must have X's ${C} channels first ([C, M / group, kernel...])`);
    const kernel = w.shape.slice(2);
    if (this.attrs.kernelShape.length && this.attrs.kernelShape.join() !== kernel.join()) {
      this.fail(`kernel_shape [${this.attrs.kernelShape.join(', ')}] differs from W's spatial dims [${kernel.join(', ')}]`);
    }
    const { g, rank } = this.geometry();
    this.setOutInfo(0, { dtype: x.dtype, shape: [g.xs[0], g.xs[1], ...g.xs.slice(2, 2 + rank)] });
  }
  /**
   * The Conv whose dX this is: input [N, M, out...] (our output), output
   * [N, C, in...] (our input), W as given.
   */
  geometry(): { g: Geometry; rank: number } {
    const xs = this.inInfo(0).shape;
    const ws = this.inInfo(1).shape;
    const rank = xs.length - 2;
    if (rank < 1 || rank > 3) this.fail(`supports 1 to 3 spatial dims (input rank 3 to 5), got X [${xs.join(', ')}]`);
    const a = this.attrs;
    const list = (name: string, v: number[], def: number, len = rank): number[] => {
      if (v.length === 0) return new Array<number>(len).fill(def);
      if (v.length !== len) this.fail(`${name} [${v.join(', ')}] must have ${len} entries for ${rank} spatial dims`);
      if (v.some((e) => !Number.isInteger(e) || e < 0)) this.fail(`${name} [${v.join(', ')}] must be non-negative integers`);
      return v;
    };
    const k = ws.slice(2);
    const s = list('strides', a.strides, 1);
    const d = list('dilations', a.dilations, 1);
    for (const [name, v] of [['strides', s], ['dilations', d]] as const) if (v.some((e) => e < 1)) this.fail(`${name} [${v.join(', ')}] must be positive`);
    const adj = list('output_padding', a.outputPadding, 0);
    const pads = a.autoPad === 'VALID' ? new Array<number>(2 * rank).fill(0) : list('pads', a.pads, 0, 2 * rank);
    if (!AUTO_PADS.includes(a.autoPad)) this.fail(`auto_pad '${a.autoPad}' is not supported; supported: ${AUTO_PADS.join(', ')}`);
    // output_shape may list the spatial dims or all dims (onnxruntime takes both).
    const os = a.outputShape.length === rank + 2 ? a.outputShape.slice(2) : a.outputShape;
    if (os.length !== 0 && os.length !== rank) this.fail(`output_shape [${a.outputShape.join(', ')}] must have ${rank} entries for ${rank} spatial dims`);
    const same = a.autoPad === 'SAME_UPPER' || a.autoPad === 'SAME_LOWER';
    const out: number[] = [];
    const pb: number[] = [];
    const pe: number[] = [];
    for (let i = 0; i < rank; i++) {
      const span = (k[i] - 1) * d[i] + 1;
      const D = xs[2 + i];
      if (adj[i] >= Math.max(s[i], d[i])) this.fail(`output_padding [${adj.join(', ')}] must be smaller than the stride or the dilation in each dim`);
      const full = s[i] * (D - 1) + adj[i] + span;
      let o: number;
      let begin: number;
      if (same || os.length) {
        // The ONNX reference: with output_shape (or SAME's D x stride), the total padding is split, the odd one at the end for SAME_UPPER.
        o = os.length ? os[i] : D * s[i];
        if (same) {
          const total = full - o;
          begin = a.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
        } else begin = pads[i];
      } else {
        begin = pads[i];
        o = full - pads[i] - pads[rank + i];
      }
      if (begin < 0) this.fail(`output_shape or auto_pad asks for a begin pad of ${begin} in spatial dim ${i}, larger than the full output (${full})`);
      if (o < 1) this.fail(`output spatial dim ${i} would be ${o}`);
      // The Conv's end pad: whatever makes its output exactly D long; rows past the last tap are the output padding.
      const end = Math.max(0, s[i] * (D - 1) + span - begin - o);
      if (o + begin + end - span > s[i] * (D - 1) + s[i] - 1) {
        this.fail(`output spatial dim ${i} of ${o} is more than stride - 1 past the ${full - begin} the kernel reaches; tilesim does not pad ConvTranspose's output further`);
      }
      out.push(o);
      pb.push(begin);
      pe.push(end);
    }
    const pad3 = (v: number[], fill: number) => [...v, ...new Array<number>(3 - rank).fill(fill)];
    const M = ws[1] * this.attrs.group;
    return {
      rank,
      g: { xs: [xs[0], M, ...pad3(out, 1)], ys: [xs[0], xs[1], ...pad3(xs.slice(2), 1)], k: pad3(k, 1), s: pad3(s, 1), d: pad3(d, 1), pb: pad3(pb, 0), pe: pad3(pe, 0) },
    };
  }
  spec(): ConvSpec {
    return { g: this.geometry().g, group: this.attrs.group, dtype: this.inInfo(0).dtype as MatMulDType };
  }
  /** MACs of one forward pass (every X element times its kernel taps into its group's M / group channels). */
  macs(): number {
    return product(this.inInfo(0).shape) * product(this.inInfo(1).shape.slice(1));
  }
  override getGradOps(): ArgGradOp[] {
    return [
      new ArgGradOp(gid('ConvTransposeGradX'), this, 0, [gradOut(0), fwdIn(1, 1)], () => 2 * this.macs()),
      new ArgGradOp(gid('ConvTransposeGradW'), this, 1, [fwdIn(0, 0), gradOut(1)], () => 2 * this.macs()),
    ];
  }
  override attributes(): Record<string, AttributeValue> {
    const a = this.attrs;
    return withoutEmpty({
      auto_pad: a.autoPad,
      dilations: a.dilations,
      group: a.group,
      kernel_shape: a.kernelShape,
      output_padding: a.outputPadding,
      output_shape: a.outputShape,
      pads: a.pads,
      strides: a.strides,
    });
  }
  override onnxForm() {
    return { opid: { domain: '', type: 'ConvTranspose', version: 11 }, attributes: this.attributes() };
  }
  override flops(): number {
    return 2 * this.macs();
  }
}

const ATTRIBUTES: Record<string, AttributeDef> = {
  auto_pad: { type: 'string', default: 'NOTSET', description: 'NOTSET, VALID, SAME_UPPER or SAME_LOWER' },
  dilations: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
  group: { type: 'int', default: 1 },
  kernel_shape: { type: 'ints', default: [], description: "W's spatial dims (inferred)" },
  output_padding: { type: 'ints', default: [], description: 'extra end rows of the output per spatial dim (default 0)' },
  output_shape: { type: 'ints', default: [], description: 'the output spatial dims; pads then follow from auto_pad' },
  pads: { type: 'ints', default: [], description: 'begin pads then end pads (default 0), cropped from the full output' },
  strides: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
};

function expandConvTranspose(args: ExpandArgs): Expansion {
  const { node } = args;
  const fail = (m: string): never => {
    throw new UserError(`node '${node.name}' (ConvTranspose): ${m}`, node.loc);
  };
  const attributes: NodeDecl['attributes'] = {};
  for (const name of Object.keys(ATTRIBUTES)) {
    const def = ATTRIBUTES[name];
    attributes[name] = def.type === 'ints' ? args.attributes.ints(name) : def.type === 'int' ? args.attributes.int(name) : args.attributes.string(name);
  }
  const hasBias = node.inputs.length > 2 && node.inputs[2] !== '';
  const y = node.outputs[0];
  const core = hasBias ? args.fresh(`${node.name}/nobias`) : y;
  const nodes: NodeDecl[] = [{ op: NO_BIAS.type, domain: NO_BIAS.domain, name: `${node.name}/convtranspose`, inputs: [node.inputs[0], node.inputs[1]], outputs: [core], attributes, loc: node.loc }];
  const constants: NonNullable<Expansion['constants']> = [];
  if (hasBias) {
    const x = args.inputInfos[0];
    const b = args.inputInfos[2];
    if (!x || !b) return fail('needs X, W and B shapes');
    if (b.shape.length !== 1) fail(`B must be 1-D [M], got ${fmtInfo(b)}`);
    const shape = args.fresh(`${node.name}/bshape`);
    constants.push({ name: shape, dtype: 'int32', shape: [x.shape.length - 1], data: Int32Array.from([b.shape[0], ...new Array<number>(x.shape.length - 2).fill(1)]) });
    const bias = args.fresh(`${node.name}/b`);
    nodes.push({ op: 'Reshape', domain: '', version: 13, name: `${node.name}/reshape`, inputs: [node.inputs[2], shape], outputs: [bias], attributes: {}, loc: node.loc });
    nodes.push({ op: 'Add', domain: '', version: 14, name: `${node.name}/bias`, inputs: [core, bias], outputs: [y], attributes: {}, loc: node.loc });
  }
  return { nodes, constants };
}


export const convTransposeDefinitions: OpDefinition[] = [
  defineOp({
    op: ConvTransposeOp,
    id: NO_BIAS,
    description: "ConvTranspose without bias: lowered as the planned input gradient of the Conv it transposes (Conv's dX)",
    inputs: [{ name: 'X' }, { name: 'W' }],
    outputs: [{ name: 'Y' }],
    attributes: ATTRIBUTES,
    grad: true,
    create: ({ attributes, settings }) =>
      new ConvTransposeOp(
        NO_BIAS,
        {
          autoPad: attributes.string('auto_pad'),
          dilations: attributes.ints('dilations'),
          group: attributes.int('group'),
          kernelShape: attributes.ints('kernel_shape'),
          outputPadding: attributes.ints('output_padding'),
          outputShape: attributes.ints('output_shape'),
          pads: attributes.ints('pads'),
          strides: attributes.ints('strides'),
        },
        settings,
      ),
    lower: (op, ctx) => lowerConvGradXSpec(op.spec(), ctx),
  }),
  defineOp({
    op: gradOf(ConvTransposeOp),
    id: gid('ConvTransposeGradX'),
    description: "dX of ConvTranspose: the Conv of dY with W (the transposed Conv's forward pass, planned)",
    lower: (op, ctx) => lowerConvSpec(op.fwd.spec(), false, ctx),
  }),
  defineOp({
    op: gradOf(ConvTransposeOp),
    id: gid('ConvTransposeGradW'),
    description: "dW of ConvTranspose: the transposed Conv's dW with X as its output gradient and dY as its input (planned)",
    lower: (op, ctx) => lowerConvGradWSpec(op.fwd.spec(), ctx),
  }),
  ...versions('ConvTranspose', [1, 11], () => ({
    description: 'transposed convolution, NCHW, 1-3 spatial dims: group, strides, pads, output_padding, output_shape, dilations, auto_pad; optional bias. A composite: the bias-free op (lowered as Conv\'s planned dX) plus an Add of the bias',
    inputs: [{ name: 'X' }, { name: 'W' }, { name: 'B', optional: true }],
    outputs: [{ name: 'Y' }],
    attributes: ATTRIBUTES,
    grad: true,
    expand: expandConvTranspose,
  })),
];
