/**
 * BatchNormalization in training mode (ONNX 14, 15 with training_mode = 1;
 * 9 with more than one output, saved_mean the batch's mean and saved_var
 * its inverse standard deviation, as onnxruntime computes them):
 * a composite, so its gradient is the full one through the batch statistics
 * (autodiff of the parts), plus PopART's in-place update of the running
 * statistics.
 *
 *   mean = ReduceMean(X) over every axis but 1;  var = ReduceMean((X - mean)^2) (population, as ONNX and onnxruntime)
 *   Y = (X - mean) / sqrt(var + epsilon) scale + B
 *   running_mean = input_mean momentum + mean (1 - momentum)
 *   running_var  = input_var momentum + var (1 - momentum)
 *
 * The running outputs come from `ai.graphcore::BatchNormRunningUpdate`
 * (input_mean or input_var, the new value). When its first input is a
 * device variable (a weight of a training run) it writes the new value into
 * that variable in place, as PopART's BatchNormOp modifies its mean and var
 * inputs, so each step of `sim run` normalises with the batch's statistics
 * and leaves the running ones updated for the next step and for the saved
 * model; the output is the variable itself. When it is a constant or a
 * streamed input (an inference run) nothing is written and the output is the
 * new value.
 */
import { Op, type OnnxForm } from '../ir/op.js';
import { defineOp, type ExpandArgs, type Expansion, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { Builder } from './composites.js';
import { copyCodelet } from '../../sim/codelets/elementwise.js';
import { GC } from './shape-util.js';

const RUNNING_UPDATE = { domain: GC, type: 'BatchNormRunningUpdate', version: 1 };

export class BatchNormRunningUpdateOp extends Op {
  static readonly defaultOperatorId = RUNNING_UPDATE;
  setup(): void {
    const [v, n] = [this.inInfo(0), this.inInfo(1)];
    if (v.dtype !== n.dtype || v.shape.length !== n.shape.length || v.shape.some((d, i) => d !== n.shape[i])) {
      this.fail(`the running statistic ${fmtInfo(v)} and its new value ${fmtInfo(n)} must have one shape and type`);
    }
    this.setOutInfo(0, v);
  }
  /** Whether the running statistic is a weight a training run keeps (not frozen: an inference run leaves weights alone), written in place. */
  writesVariable(): boolean {
    return this.graph.tensor(this.inId(0)).kind === 'variable' && !this.graph.frozenWeights;
  }
  override modifiedInputs(): number[] {
    return this.writesVariable() ? [0] : [];
  }
  /**
   * Written in place, the statistic after training is the variable the saved
   * model holds, so a graph output `running_*` is written as Identity of it
   * (the BatchNormalization written back is in inference form, with no
   * running outputs). Otherwise the op itself, whose output is the new value.
   */
  override onnxForm(): OnnxForm | undefined {
    if (!this.writesVariable()) return undefined;
    return { opid: { domain: '', type: 'Identity', version: 13 }, attributes: {}, inputs: [this.inId(0)], outputs: [this.outId(0)] };
  }
  override flops(): number {
    return 0;
  }
}

function lowerRunningUpdate(op: BatchNormRunningUpdateOp, ctx: LowerContext): void {
  const fresh = ctx.input(1);
  if (!op.writesVariable()) {
    ctx.aliasOutput(0, fresh);
    return;
  }
  const v = ctx.input(0);
  ctx.computeSet('running-update');
  for (const r of ctx.ranges(v)) ctx.vertex(copyCodelet, r.tile, { in: ctx.onTile(fresh, r.begin, r.end, r.tile), out: ctx.slice(v, r.begin, r.end) });
  ctx.aliasOutput(0, v);
}

/**
 * Whether a BatchNormalization node runs in training mode: from 14 its
 * training_mode attribute says so; before (opset 9), its outputs do: ONNX's
 * case 1 (Y, mean, var, saved_mean, saved_var) is training, case 2 (Y alone)
 * inference, as PopART and PyTorch's exporter read a 9's outputs.
 */
function trainingMode(args: ExpandArgs, version: number): boolean {
  if (version >= 14) return args.attributes.has('training_mode') && args.attributes.int('training_mode') !== 0;
  return args.node.outputs.slice(1).some((o) => o !== '');
}

/** The training-mode expansion; undefined (the op itself, inference form) when not training. */
export function expandBatchNormTraining(args: ExpandArgs, version: number): Expansion | undefined {
  if (!trainingMode(args, version)) return undefined;
  const b = new Builder(args);
  const { node, attributes } = args;
  const x = b.info(0);
  if (x.dtype !== 'float32' && x.dtype !== 'float16') b.fail(`X must be float32 or float16, got ${fmtInfo(x)}`);
  if (x.shape.length < 2) b.fail(`X must have at least 2 dims [N, C, ...], got ${fmtInfo(x)}`);
  const C = x.shape[1];
  const names = ['X', 'scale', 'B', 'input_mean', 'input_var'];
  for (let i = 1; i < 5; i++) {
    const t = b.info(i);
    if (t.shape.length !== 1 || t.shape[0] !== C) b.fail(`${names[i]} '${node.inputs[i]}' must be [${C}] (the channels of X ${fmtInfo(x)}), got ${fmtInfo(t)}`);
    if (t.dtype !== x.dtype) b.fail(`${names[i]} '${node.inputs[i]}' must be ${x.dtype} like X, got ${fmtInfo(t)}`);
  }
  const [X, scale, bias, inMean, inVar] = node.inputs;
  const eps = attributes.float('epsilon');
  const momentum = attributes.float('momentum');
  const scalar = (base: string, v: number) => b.tensor(base, x.dtype, [], Float32Array.of(v));
  const axes = b.ints('axes', [0, ...x.shape.slice(2).map((_, k) => k + 2)]);
  const perChannel = [1, C, ...x.shape.slice(2).map(() => 1)];

  const mean = b.add('ReduceMean', 18, [X, axes], { keepdims: 1 });
  const centred = b.add('Sub', 14, [X, mean]);
  const variance = b.add('ReduceMean', 18, [b.add('Mul', 14, [centred, centred]), axes], { keepdims: 1 });
  const std = b.add('Sqrt', 13, [b.add('Add', 14, [variance, scalar('epsilon', eps)])]);
  const normed = b.add('Div', 14, [centred, std]);
  b.add('Add', 14, [b.add('Mul', 14, [normed, b.reshape(scale, perChannel)]), b.reshape(bias, perChannel)], {}, node.outputs[0]);
  // Export writes the composite back as one BatchNormalization in inference form (see docs/onnx.md):
  // when the running statistics are variables (a training run), they hold what training made of
  // them, and the saved model normalises with them, as a model exported for inference does. A
  // constant mean or var (an inference build, or trainable: false) is not updated: then the parts.
  if (args.inputData[3] === undefined && args.inputData[4] === undefined) {
    b.nodes[b.nodes.length - 1].onnxForm = {
      opid: { domain: '', type: 'BatchNormalization', version: 15 },
      attributes: { epsilon: attributes.float('epsilon'), momentum: attributes.float('momentum') },
      name: node.name,
      inputs: [X, scale, bias, inMean, inVar],
      outputs: [node.outputs[0]],
    };
  }

  const keep = scalar('momentum', momentum);
  const take = scalar('one_minus_momentum', 1 - momentum);
  const running = (label: string, input: string, batch: string, out: string | undefined) => {
    const fresh = b.add('Add', 14, [b.add('Mul', 14, [input, keep]), b.add('Mul', 14, [b.reshape(batch, [C]), take])]);
    const name = out && out !== '' ? out : b.tmp('running');
    b.nodes.push({ op: RUNNING_UPDATE.type, domain: GC, version: 1, name: `${node.name}/${label}_update`, inputs: [input, fresh], outputs: [name], attributes: {}, loc: node.loc });
  };
  running('running_mean', inMean, mean, node.outputs[1]);
  running('running_var', inVar, variance, node.outputs[2]);
  // Opset 9's saved_mean and saved_var, per channel: the batch's mean and its inverse standard deviation
  // 1 / sqrt(var + epsilon), what the gradient reuses (onnxruntime's, cuDNN's and PopART's invSd).
  if (node.outputs[3]) b.reshape(mean, [C], node.outputs[3]);
  if (node.outputs[4]) b.reshape(b.add('Reciprocal', 13, [std]), [C], node.outputs[4]);
  return b.done();
}

export const batchNormTrainingDefinitions: OpDefinition[] = [
  defineOp({
    op: BatchNormRunningUpdateOp,
    description: "running statistic of BatchNormalization's training mode: the new value, written into the statistic in place when it is a device variable (PopART's modified mean and var inputs)",
    inputs: [{ name: 'running' }, { name: 'new' }],
    outputs: [{ name: 'updated' }],
    create: ({ settings }) => new BatchNormRunningUpdateOp(RUNNING_UPDATE, settings),
    lower: lowerRunningUpdate,
  }),
];
