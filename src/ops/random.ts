/**
 * RandomUniform, RandomNormal and their Like forms (ONNX 1) and Multinomial (7):
 * each run draws fresh values from a seeded counter-based hash on the device
 * (sim/codelets/random.ts), the same however the output is split over tiles.
 * The `seed` attribute seeds it; without one, the seed comes from run.seed and
 * the node's name, as Dropout's does. No gradient: the values do not depend on
 * an input (a Like op reads only its input's shape and dtype).
 */
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { DType } from '../ir/dtype.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type Attributes, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { multinomialCodelet, randomCodelet } from '../../sim/codelets/random.js';
import { derivedSeed } from './dropout.js';
import { versions } from './shape-util.js';

/** ONNX TensorProto codes of the float types a random op may make. */
const FLOAT_CODES: Record<number, DType> = { 1: 'float32', 10: 'float16' };

interface RandomParams {
  normal: boolean;
  /** low or mean; high or scale. */
  a: number;
  b: number;
  /** The `seed` attribute, undefined when none is given. */
  seed: number | undefined;
  /** The dtype code, 0 when not given (a Like op then takes its input's). */
  dtype: number;
  /** The output shape (non-Like ops). */
  shape: number[] | undefined;
}

export class RandomOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly params: RandomParams,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const p = this.params;
    const like = p.shape === undefined;
    if (p.dtype !== 0 && !FLOAT_CODES[p.dtype]) this.fail(`dtype ${p.dtype} is not a float type tilesim has (FLOAT 1, FLOAT16 10)`);
    const x = like ? this.inInfo(0) : undefined;
    const dtype = p.dtype !== 0 ? FLOAT_CODES[p.dtype] : (x?.dtype ?? 'float32');
    if (dtype !== 'float32' && dtype !== 'float16') this.fail(`draws float values: give dtype 1 (FLOAT) or 10 (FLOAT16), since the input is ${fmtInfo(x!)}`);
    const shape = like ? [...x!.shape] : p.shape!;
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) this.fail(`shape [${shape.join(', ')}] must have non-negative integer dims`);
    if (p.normal && !(p.b >= 0)) this.fail(`scale must be >= 0, got ${p.b}`);
    this.setOutInfo(0, { dtype, shape });
  }
  /** The seed the device uses. */
  get seed(): number {
    return this.params.seed !== undefined ? Math.trunc(this.params.seed) >>> 0 : derivedSeed(this.graph.randomSeed, this.name);
  }
  override attributes(): Record<string, AttributeValue> {
    const p = this.params;
    return {
      ...(p.normal ? { mean: p.a, scale: p.b } : { low: p.a, high: p.b }),
      ...(p.seed !== undefined ? { seed: p.seed } : {}),
      ...(p.dtype !== 0 ? { dtype: p.dtype } : {}),
      ...(p.shape ? { shape: p.shape } : {}),
    };
  }
  override flops(): number {
    return nelms(this.outInfo(0).shape);
  }
}

function lowerRandom(op: RandomOp, ctx: LowerContext): void {
  const out = ctx.output(0);
  const ranges = ctx.ranges(out);
  // The run counter lives on the device, one copy per vertex, all advanced together (as Dropout's).
  const counter = ctx.addTensor('counter', 'int32', [ranges.length], 'variable');
  ctx.graph.setTileMapping(counter, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  ctx.computeSet('random');
  const params = { normal: op.params.normal ? 1 : 0, a: op.params.a, b: op.params.b, seed: op.seed };
  for (const [i, r] of ranges.entries()) {
    ctx.vertex(randomCodelet, r.tile, { out: ctx.slice(out, r.begin, r.end), counter: ctx.slice(counter, i, i + 1) }, { ...params, offset: r.begin });
  }
}

/** The seed attribute (a float in ONNX), undefined when absent. */
const seedOf = (a: Attributes): number | undefined => (a.has('seed') ? a.float('seed') : undefined);

function randomDefinition(type: string, normal: boolean, like: boolean): OpDefinition[] {
  const [aName, bName] = normal ? ['mean', 'scale'] : ['low', 'high'];
  return versions(type, [1], (id) => defineOp({
    op: RandomOp,
    id,
    description: `${normal ? 'normal (mean, scale)' : 'uniform [low, high)'} random values${like ? " of the input's shape (and dtype, unless given)" : ' of `shape`'}, fresh each run, seeded; no gradient`,
    inputs: like ? [{ name: 'input' }] : [],
    outputs: [{ name: 'output' }],
    attributes: {
      [aName]: { type: 'float', default: 0, description: normal ? 'mean' : 'lower bound' },
      [bName]: { type: 'float', default: 1, description: normal ? 'standard deviation' : 'upper bound' },
      seed: { type: 'float', default: Number.NaN, description: 'seed; none: derived from run.seed and the node name' },
      dtype: { type: 'int', default: like ? 0 : 1, description: `output type: FLOAT 1 or FLOAT16 10${like ? "; 0: the input's" : ''}` },
      ...(like ? {} : { shape: { type: 'ints' as const, description: 'the output shape' } }),
    },
    grad: false,
    create: ({ attributes, settings }) => {
      const seed = seedOf(attributes);
      return new RandomOp(
        id,
        { normal, a: attributes.float(aName), b: attributes.float(bName), seed: seed === undefined || Number.isNaN(seed) ? undefined : seed, dtype: attributes.int('dtype'), shape: like ? undefined : attributes.ints('shape') },
        settings,
      );
    },
    lower: lowerRandom,
  }));
}

/** Multinomial (7): `sample_size` classes per row of unnormalised log-probabilities, drawn by the same hash. */
export class MultinomialOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly samples: number,
    readonly seedAttr: number | undefined,
    readonly dtypeCode: number,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    if ((x.dtype !== 'float32' && x.dtype !== 'float16') || x.shape.length !== 2) this.fail(`input must be float [batch_size, class_size], got ${fmtInfo(x)}`);
    if (!(Number.isInteger(this.samples) && this.samples >= 1)) this.fail(`sample_size must be a positive integer, got ${this.samples}`);
    if (this.dtypeCode !== 6 && this.dtypeCode !== 7) this.fail(`dtype must be INT32 (6) or INT64 (7, held as int32), got ${this.dtypeCode}`);
    this.setOutInfo(0, { dtype: 'int32', shape: [x.shape[0], this.samples] });
  }
  get seed(): number {
    return this.seedAttr !== undefined ? Math.trunc(this.seedAttr) >>> 0 : derivedSeed(this.graph.randomSeed, this.name);
  }
  override attributes(): Record<string, AttributeValue> {
    return { sample_size: this.samples, dtype: this.dtypeCode, ...(this.seedAttr !== undefined ? { seed: this.seedAttr } : {}) };
  }
  override flops(): number {
    return 2 * nelms(this.inInfo(0).shape);
  }
}

function lowerMultinomial(op: MultinomialOp, ctx: LowerContext): void {
  const x = ctx.input(0);
  const out = ctx.output(0);
  const ranges = ctx.ranges(out);
  const classes = op.inInfo(0).shape[1];
  const counter = ctx.addTensor('counter', 'int32', [ranges.length], 'variable');
  ctx.graph.setTileMapping(counter, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  ctx.computeSet('multinomial');
  for (const [i, r] of ranges.entries()) {
    const row0 = Math.floor(r.begin / op.samples);
    const row1 = Math.floor((r.end - 1) / op.samples);
    ctx.vertex(
      multinomialCodelet,
      r.tile,
      { in: ctx.onTile(x, row0 * classes, (row1 + 1) * classes, r.tile), out: ctx.slice(out, r.begin, r.end), counter: ctx.slice(counter, i, i + 1) },
      { classes, samples: op.samples, row0, begin: r.begin, seed: op.seed },
    );
  }
}

export const randomDefinitions: OpDefinition[] = [
  ...versions('Multinomial', [7], (id) => defineOp({
    op: MultinomialOp,
    id,
    description: 'sample_size classes per row of unnormalised log-probabilities, drawn anew each run (seeded as the random ops); int32 out; no gradient',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: {
      dtype: { type: 'int', default: 6, description: 'INT32 (6) or INT64 (7, held as int32)' },
      sample_size: { type: 'int', default: 1, description: 'draws per row' },
      seed: { type: 'float', default: Number.NaN, description: 'seed; none: derived from run.seed and the node name' },
    },
    grad: false,
    create: ({ attributes, settings }) => {
      const seed = attributes.float('seed');
      return new MultinomialOp(id, attributes.int('sample_size'), Number.isNaN(seed) ? undefined : seed, attributes.int('dtype'), settings);
    },
    lower: lowerMultinomial,
  })),
  ...randomDefinition('RandomUniform', false, false),
  ...randomDefinition('RandomNormal', true, false),
  ...randomDefinition('RandomUniformLike', false, true),
  ...randomDefinition('RandomNormalLike', true, true),
];
