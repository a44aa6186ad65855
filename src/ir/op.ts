/**
 * Op and GradOp in PopART's shape. An Op knows its identifier, its inputs and
 * outputs by index, infers output infos in setup(), and names the grad ops
 * that perform its step of the chain rule in getGradOps(). A GradOp is an Op
 * too, with its own identifier and setup(), plus the two maps the autodiff
 * transform reads: gradInputInfo() and gradOutToNonGradIn().
 */
import type { SourceLocation } from '../config/types.js';
import { UserError } from '../errors.js';
import { fmtOpid, type OperatorIdentifier } from './opid.js';
import type { TensorInfo } from './tensorinfo.js';
import type { Graph } from './graph.js';

export type AttributeValue = number | string | number[] | string[];

export interface OpSettings {
  name: string;
  /** Where the op was written (config node), for error messages. */
  loc?: SourceLocation;
  /** The IPU (PopART's virtual graph) the op runs on; set by the config or src/shard/place.ts. */
  ipu?: number;
  /** The forward pipeline stage (model.pipelining), as the config or `__pipeline_stage` gives it; src/shard/pipeline.ts. */
  pipelineStage?: number;
  /** How ONNX export writes this op, when a composite says so for one of its parts (NodeDecl.onnxForm). */
  onnxForm?: OnnxForm;
  /**
   * PopART's ExecutionContext: 'outerFragment' runs once per step after the
   * gradient-accumulation loop (the optimizer update, the accumulator reset);
   * absent, the op runs in the loop, once per micro-batch (src/train/accumulate.ts).
   */
  executionContext?: 'outerFragment';
}

/**
 * The standard op export writes in an op's place. With `inputs` and
 * `outputs` it stands for a whole composite: the node reads those tensors
 * (instead of the op's inputs) and writes those outputs, so the composite's
 * other parts are not needed and are left out.
 */
export interface OnnxForm {
  opid: OperatorIdentifier;
  attributes: Record<string, AttributeValue>;
  name?: string;
  inputs?: string[];
  outputs?: string[];
}

export abstract class Op {
  /** Set by Graph when the op is added. */
  graph!: Graph;
  id = -1;
  readonly inputs: string[] = [];
  readonly outputs: string[] = [];

  constructor(
    readonly opid: OperatorIdentifier,
    readonly settings: OpSettings,
  ) {}

  get name(): string {
    return this.settings.name;
  }

  inId(i: number): string {
    const id = this.inputs[i];
    if (id === undefined || id === '') this.fail(`has no input ${i}${id === '' ? ' (it was omitted)' : ` (it has ${this.inputs.length})`}`);
    return id;
  }

  /** Whether optional input i was given. */
  hasInput(i: number): boolean {
    return this.inputs[i] !== undefined && this.inputs[i] !== '';
  }

  outId(i: number): string {
    const id = this.outputs[i];
    if (id === undefined) this.fail(`has no output ${i} (it has ${this.outputs.length})`);
    return id;
  }

  inInfo(i: number): TensorInfo {
    return this.graph.tensor(this.inId(i)).info;
  }

  outInfo(i: number): TensorInfo {
    return this.graph.tensor(this.outId(i)).info;
  }

  /** Set the inferred info of output i (call from setup()). */
  setOutInfo(i: number, info: TensorInfo): void {
    this.graph.tensor(this.outId(i)).info = { dtype: info.dtype, shape: [...info.shape] };
  }

  /** Infer output infos from input infos; throw via fail() on bad inputs. */
  abstract setup(): void;

  /** The grad ops of this op; [] means it has no gradient (autodiff reports it if one is needed). */
  getGradOps(): GradOp[] {
    return [];
  }

  /** Attributes, as written in ONNX, for reports and export. */
  attributes(): Record<string, AttributeValue> {
    return {};
  }

  /**
   * How ONNX export writes an op of another domain that a standard op
   * expresses (e.g. a composite's fused part), or the part of a composite
   * that stands for the whole (settings.onnxForm); undefined: as itself.
   */
  onnxForm(): OnnxForm | undefined {
    return this.settings.onnxForm;
  }

  /** Input indices this op writes in place (optimizer updates); the scheduler runs every other reader first. */
  modifiedInputs(): number[] {
    return [];
  }

  /**
   * Input indices whose replica's shard this op's lowering reads (a sharded
   * weight's update): not all-gathered before it, as every other reader's are.
   */
  shardedInputs(): number[] {
    return [];
  }

  /** Floating-point operations of one execution (add = mul = 1, MAC = 2). */
  flops(): number {
    return 0;
  }

  /** Throw a UserError that names this op and where it was written. */
  fail(message: string): never {
    throw new UserError(`op '${this.name}' (${fmtOpid(this.opid)}): ${message}`, this.settings.loc);
  }
}

/** Where a grad op's input comes from, in PopART's terms. */
export enum GradOpInType {
  /** An input of the forward op. */
  In = 'In',
  /** An output of the forward op. */
  Out = 'Out',
  /** The gradient of an output of the forward op. */
  GradOut = 'GradOut',
}

export interface GradInOutMapper {
  gradOpInIndex: number;
  fwdIndex: number;
  type: GradOpInType;
}

export abstract class GradOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly fwdOp: Op,
    settings?: OpSettings,
  ) {
    super(opid, settings ?? { name: `${opid.type}(${fwdOp.name})`, loc: fwdOp.settings.loc });
  }

  /** For each input of this grad op: which forward tensor feeds it. */
  abstract gradInputInfo(): GradInOutMapper[];

  /** For each output of this grad op: the index of the forward input it is the gradient of. */
  abstract gradOutToNonGradIn(): Map<number, number>;

  /** Info of the forward op's input i (what a gradient output must match). */
  fwdInInfo(i: number): TensorInfo {
    return this.fwdOp.inInfo(i);
  }
}

/**
 * The common grad op of a one-input op whose gradient needs only the output's
 * gradient: input 0 is the gradient of forward output 0, output 0 the
 * gradient of forward input 0 (with that input's info). Its lowering says
 * what it computes (an alias for views and Identity, a cast back for Cast).
 */
export class OutputGradOnlyGradOp extends GradOp {
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [{ gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut }];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
}

export function isGradOp(op: Op): op is GradOp {
  return op instanceof GradOp || (typeof (op as Partial<GradOp>).gradInputInfo === 'function' && 'fwdOp' in op);
}
