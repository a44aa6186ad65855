/**
 * ONNX operator versions: for the ops tilesim has or is getting, every
 * version of the op's schema in the default domain (its "since versions") and
 * what each one changed, from the ONNX changelog (docs/Changelog.md) up to
 * opset 25. The importer uses it two ways:
 *
 * - Upgrading (import): a node of an older opset is rewritten to the form the
 *   op has at opset 18 (or the model's opset, if newer), so ops registered at
 *   their opset-11..18 versions also take models exported at opset 6 or 9.
 *   A change is either harmless going up ('types': new element types;
 *   'additive': a new attribute, input or output whose default keeps the old
 *   behaviour), or removes legacy attributes ('legacy'), or needs a rewrite
 *   (an adapter: attributes that became inputs, Softmax's axis, ...).
 *   A node that cannot be upgraded keeps its own version; the registry then
 *   decides, and the error explains why the upgrade was refused.
 * - Checking (import, after the registry resolved an op): when the version
 *   tilesim implements is older than the node's schema, every change between
 *   them must be harmless going down ('types', 'additive': a new attribute or
 *   input the node uses is still caught by the attribute and arity checks).
 *
 * Ops missing from the table are left alone and resolved at the model's
 * opset, as for a YAML graph.
 */
import type { AttributeValue, NodeDecl } from '../config/types.js';
import type { DTypeName } from '../config/types.js';

/** The newest default-domain opset whose changes this table knows. */
export const MAX_KNOWN_OPSET = 25;
/** Older nodes are upgraded to their form at this opset. */
export const UPGRADE_TARGET_OPSET = 18;

export interface UpgradeContext {
  /** The shape of a tensor when the model says it (inputs, initializers, value_info, outputs). */
  shapeOf(name: string): readonly number[] | undefined;
  /** Add an integer or float constant the rewritten node reads; returns its name. */
  addConstant(base: string, dtype: DTypeName, shape: number[], values: number[]): string;
}

/** A rewrite of a node from the previous version of its op to this one; returns why it cannot, or undefined. */
type Rewrite = (node: NodeDecl, ctx: UpgradeContext) => string | undefined;

export type Change =
  | { kind: 'types' }
  | { kind: 'additive'; what: string }
  | { kind: 'legacy'; what: string; rewrite: Rewrite }
  | { kind: 'signature'; what: string; rewrite: Rewrite }
  | { kind: 'semantic'; what: string; rewrite?: Rewrite };

const T: Change = { kind: 'types' };
const add = (what: string): Change => ({ kind: 'additive', what });

function dropAttrs(names: string[], refuse?: (node: NodeDecl) => string | undefined): Rewrite {
  return (node) => {
    const why = refuse?.(node);
    if (why) return why;
    for (const n of names) delete node.attributes[n];
    return undefined;
  };
}

const CONSUMED = { kind: 'legacy', what: "removed the legacy 'consumed_inputs' attribute", rewrite: dropAttrs(['consumed_inputs']) } as const;
const LEGACY_BROADCAST: Change = {
  kind: 'legacy',
  what: "replaced the 'broadcast' and 'axis' attributes by NumPy broadcasting",
  rewrite: dropAttrs(['broadcast', 'axis'], (n) =>
    n.attributes.broadcast !== undefined && n.attributes.broadcast !== 0
      ? "it uses the pre-opset-7 'broadcast' attribute (broadcasting along 'axis'), which later versions replaced by NumPy broadcasting; re-export the model at opset 7 or later"
      : undefined,
  ),
};
const IS_TEST: Change = { kind: 'legacy', what: "removed the 'is_test' attribute", rewrite: dropAttrs(['is_test']) };
const OUTPUT_SEQUENCE: Change = { kind: 'legacy', what: "removed the 'output_sequence' attribute", rewrite: dropAttrs(['output_sequence']) };

function ints(v: AttributeValue | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v as number[]) : [v as number];
}

/** An attribute that became an input (axes, shape, starts, ...): an int32 or float constant in that input slot. */
function attrsToInputs(slots: { attr: string; index: number; dtype: DTypeName; scalar?: boolean; fill?: number }[]): Rewrite {
  return (node, ctx) => {
    const given = slots.filter((s) => node.attributes[s.attr] !== undefined);
    if (given.length === 0) return undefined;
    const last = Math.max(...given.map((s) => s.index));
    for (const s of slots) {
      if (s.index > last) continue;
      const v = node.attributes[s.attr];
      if (v === undefined && s.fill === undefined) return `its '${s.attr}' attribute must become input ${s.index}, and an earlier input is missing`;
      const values = v === undefined ? [s.fill as number] : (ints(v) as number[]);
      const name = ctx.addConstant(`${node.name}_${s.attr}`, s.dtype, s.scalar ? [] : [values.length], values);
      while (node.inputs.length < s.index) node.inputs.push('');
      node.inputs[s.index] = name;
      delete node.attributes[s.attr];
    }
    return undefined;
  };
}

const AXES_TO_INPUT: Change = {
  kind: 'signature',
  what: "moved 'axes' from an attribute to an input",
  rewrite: attrsToInputs([{ attr: 'axes', index: 1, dtype: 'int32' }]),
};

/** Softmax, LogSoftmax, Hardmax before 13 flatten the input to 2-D at `axis`; from 13 they work along `axis` alone. */
const SOFTMAX_13: Change = {
  kind: 'semantic',
  what: "works along 'axis' alone (before 13 the input was flattened to 2-D at 'axis'; the default axis changed from 1 to -1)",
  rewrite: (node, ctx) => {
    const axis = (node.attributes.axis as number | undefined) ?? 1;
    const shape = ctx.shapeOf(node.inputs[0]) ?? ctx.shapeOf(node.outputs[0]);
    if (!shape) return `before opset 13 it flattens its input to 2-D at axis ${axis}, and the model does not say the input's shape, so tilesim cannot tell whether that equals working along axis ${axis} alone; re-export the model at opset 13 or later`;
    const a = axis < 0 ? axis + shape.length : axis;
    if (shape.slice(a + 1).every((d) => d === 1)) {
      node.attributes.axis = a;
      return undefined;
    }
    return `before opset 13 it flattens its input [${shape.join(', ')}] to 2-D at axis ${axis}, which differs from working along axis ${axis} alone; re-export the model at opset 13 or later`;
  },
};

const CAST_TO_NAMES: Record<string, number> = { FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13 };

const UNARY: Record<number, Change> = { 6: CONSUMED, 13: T };
const BINARY: Record<number, Change> = { 6: CONSUMED, 7: LEGACY_BROADCAST, 13: T, 14: T };
const VARIADIC: Record<number, Change> = { 6: CONSUMED, 8: add('NumPy broadcasting'), 13: T };
const REDUCE_18: Record<number, Change> = { 11: add('negative axes'), 13: T, 18: AXES_TO_INPUT };
const LATER_TYPES: Record<number, Change> = { 21: T, 23: T, 24: T, 25: T };

/** Since versions (the first is the op's first version) and what each later one changed. */
const HISTORY: Record<string, { first: number; changes: Record<number, Change> }> = {
  Abs: { first: 1, changes: UNARY },
  Neg: { first: 1, changes: UNARY },
  Sqrt: { first: 1, changes: UNARY },
  Exp: { first: 1, changes: UNARY },
  Log: { first: 1, changes: UNARY },
  Sigmoid: { first: 1, changes: UNARY },
  Tanh: { first: 1, changes: UNARY },
  Reciprocal: { first: 1, changes: UNARY },
  Floor: { first: 1, changes: UNARY },
  Ceil: { first: 1, changes: UNARY },
  Relu: { first: 1, changes: { ...UNARY, 14: T } },
  Erf: { first: 9, changes: { 13: T } },
  Sin: { first: 7, changes: { 22: T } },
  Cos: { first: 7, changes: { 22: T } },
  Add: { first: 1, changes: BINARY },
  Sub: { first: 1, changes: BINARY },
  Mul: { first: 1, changes: BINARY },
  Div: { first: 1, changes: BINARY },
  Pow: { first: 1, changes: { 7: LEGACY_BROADCAST, 12: T, 13: T, 15: T } },
  Sum: { first: 1, changes: VARIADIC },
  Mean: { first: 1, changes: VARIADIC },
  Max: { first: 1, changes: { ...VARIADIC, 12: T } },
  Min: { first: 1, changes: { ...VARIADIC, 12: T } },
  LeakyRelu: { first: 1, changes: { 6: CONSUMED, 16: T } },
  Elu: { first: 1, changes: { 6: CONSUMED, 22: T } },
  Selu: { first: 1, changes: { 6: CONSUMED, 22: T } },
  HardSigmoid: { first: 1, changes: { 6: CONSUMED, 22: T } },
  Softplus: { first: 1, changes: { 22: T } },
  Softsign: { first: 1, changes: { 22: T } },
  PRelu: { first: 1, changes: { 6: CONSUMED, 7: add('unidirectional broadcasting of the slope'), 9: T, 16: T } },
  Gelu: { first: 20, changes: {} },
  Softmax: { first: 1, changes: { 11: add('negative axis'), 13: SOFTMAX_13 } },
  LogSoftmax: { first: 1, changes: { 11: add('negative axis'), 13: SOFTMAX_13 } },
  Hardmax: { first: 1, changes: { 11: add('negative axis'), 13: SOFTMAX_13 } },
  MatMul: { first: 1, changes: { 9: T, 13: T } },
  Gemm: {
    first: 1,
    changes: {
      6: CONSUMED,
      7: { kind: 'legacy', what: "removed the 'broadcast' attribute (C broadcasts unidirectionally)", rewrite: dropAttrs(['broadcast']) },
      9: T,
      11: add('C optional'),
      13: T,
    },
  },
  ReduceSum: { first: 1, changes: { 11: add('negative axes'), 13: AXES_TO_INPUT } },
  ReduceMean: { first: 1, changes: REDUCE_18 },
  ReduceMax: { first: 1, changes: { ...REDUCE_18, 12: T, 20: T } },
  ReduceMin: { first: 1, changes: { ...REDUCE_18, 12: T, 20: T } },
  ReduceProd: { first: 1, changes: REDUCE_18 },
  ReduceL1: { first: 1, changes: REDUCE_18 },
  ReduceL2: { first: 1, changes: REDUCE_18 },
  ReduceLogSum: { first: 1, changes: REDUCE_18 },
  ReduceLogSumExp: { first: 1, changes: REDUCE_18 },
  ReduceSumSquare: { first: 1, changes: REDUCE_18 },
  ArgMax: { first: 1, changes: { 11: add('negative axis'), 12: add("'select_last_index'"), 13: T } },
  ArgMin: { first: 1, changes: { 11: add('negative axis'), 12: add("'select_last_index'"), 13: T } },
  Reshape: {
    first: 1,
    changes: {
      5: {
        kind: 'signature',
        what: "moved 'shape' from an attribute to an input",
        rewrite: (node, ctx) => {
          if (node.attributes.shape === undefined) return "it has no 'shape' attribute";
          delete node.attributes.consumed_inputs;
          return attrsToInputs([{ attr: 'shape', index: 1, dtype: 'int32' }])(node, ctx);
        },
      },
      13: T,
      14: add("'allowzero'"),
      19: T,
      ...LATER_TYPES,
    },
  },
  Flatten: { first: 1, changes: { 9: T, 11: add('negative axis'), 13: T, ...LATER_TYPES } },
  Transpose: { first: 1, changes: { 13: T, ...LATER_TYPES } },
  Squeeze: { first: 1, changes: { 11: add('negative axes'), 13: AXES_TO_INPUT, ...LATER_TYPES } },
  Unsqueeze: { first: 1, changes: { 11: add('negative axes'), 13: AXES_TO_INPUT, ...LATER_TYPES } },
  Concat: {
    first: 1,
    changes: {
      4: {
        kind: 'legacy',
        what: "made 'axis' required (it was 1 by default)",
        rewrite: (node) => {
          if (node.attributes.axis === undefined) node.attributes.axis = 1;
          return undefined;
        },
      },
      11: add('negative axis'),
      13: T,
    },
  },
  Slice: {
    first: 1,
    changes: {
      10: {
        kind: 'signature',
        what: "moved 'starts', 'ends' and 'axes' from attributes to inputs (and added 'steps')",
        rewrite: attrsToInputs([
          { attr: 'starts', index: 1, dtype: 'int32' },
          { attr: 'ends', index: 2, dtype: 'int32' },
          { attr: 'axes', index: 3, dtype: 'int32' },
        ]),
      },
      11: add('negative indices'),
      13: T,
    },
  },
  Gather: { first: 1, changes: { 11: add('negative indices'), 13: T } },
  Cast: {
    first: 1,
    changes: {
      6: {
        kind: 'signature',
        what: "made 'to' an integer (it was a type name)",
        rewrite: (node) => {
          const to = node.attributes.to;
          if (typeof to !== 'string') return undefined;
          const code = CAST_TO_NAMES[to.toUpperCase()];
          if (code === undefined) return `its 'to' attribute names an unknown type '${to}'`;
          node.attributes.to = code;
          return undefined;
        },
      },
      9: T,
      13: T,
      19: add("'saturate' (float8 only)"),
      ...LATER_TYPES,
      24: add("'round_mode' (float8e8m0 only)"),
    },
  },
  Identity: { first: 1, changes: { 13: T, 14: T, 16: T, 19: T, ...LATER_TYPES } },
  Where: { first: 9, changes: { 16: T } },
  Expand: { first: 8, changes: { 13: T } },
  Dropout: {
    first: 1,
    changes: {
      6: CONSUMED,
      7: IS_TEST,
      10: T,
      12: {
        kind: 'signature',
        what: "moved 'ratio' from an attribute to an input (and added 'training_mode')",
        rewrite: attrsToInputs([{ attr: 'ratio', index: 1, dtype: 'float32', scalar: true }]),
      },
      13: T,
      22: T,
    },
  },
  LayerNormalization: { first: 17, changes: {} },
  BatchNormalization: {
    first: 1,
    changes: {
      6: CONSUMED,
      7: IS_TEST,
      9: {
        kind: 'legacy',
        what: "removed 'spatial' (always per channel)",
        rewrite: dropAttrs(['spatial'], (n) =>
          n.attributes.spatial !== undefined && n.attributes.spatial !== 1 ? "it uses spatial=0 (statistics per element), which later versions removed" : undefined,
        ),
      },
      14: {
        kind: 'signature',
        what: "added 'training_mode' (training was said by the outputs: Y, mean, var, saved_mean, saved_var)",
        rewrite: (node) => {
          const outs = node.outputs;
          if (!outs.slice(1).some((o) => o !== '')) return undefined;
          // A 9 in training form: its saved_mean / saved_var exist only at 9, so a node using them stays a 9.
          if ((outs[3] ?? '') !== '' || (outs[4] ?? '') !== '') return 'it uses saved_mean or saved_var, which BatchNormalization-14 removed';
          node.attributes.training_mode = 1;
          node.outputs = outs.slice(0, 3);
          return undefined;
        },
      },
      15: T,
    },
  },
  InstanceNormalization: { first: 1, changes: { 6: CONSUMED, 22: T } },
  GroupNormalization: { first: 18, changes: { 21: { kind: 'semantic', what: "takes 'scale' and 'bias' per channel (they were per group)" } } },
  Conv: { first: 1, changes: { 11: T, 22: T } },
  ConvTranspose: { first: 1, changes: { 11: T, 22: T } },
  MaxPool: { first: 1, changes: { 8: add("'storage_order' and the Indices output"), 10: add("'ceil_mode' and 'dilations'"), 11: T, 12: T, 22: T } },
  AveragePool: { first: 1, changes: { 7: add("'count_include_pad'"), 10: add("'ceil_mode'"), 11: T, 19: add("'dilations'"), 22: T } },
  GlobalAveragePool: { first: 1, changes: { 22: T } },
  GlobalMaxPool: { first: 1, changes: { 22: T } },
  LRN: { first: 1, changes: { 13: T } },
  // The recurrent ops: output_sequence (1 to 6) only said whether Y was wanted, which the node's outputs say too.
  LSTM: { first: 1, changes: { 7: OUTPUT_SEQUENCE, 14: add("'layout'"), 22: T } },
  GRU: { first: 1, changes: { 3: add("'linear_before_reset'"), 7: OUTPUT_SEQUENCE, 14: add("'layout'"), 22: T } },
  RNN: { first: 1, changes: { 7: OUTPUT_SEQUENCE, 14: add("'layout'"), 22: T } },
  Clip: {
    first: 1,
    changes: {
      6: CONSUMED,
      11: {
        kind: 'signature',
        what: "moved 'min' and 'max' from attributes to inputs",
        rewrite: attrsToInputs([
          { attr: 'min', index: 1, dtype: 'float32', scalar: true, fill: -3.4028234663852886e38 },
          { attr: 'max', index: 2, dtype: 'float32', scalar: true },
        ]),
      },
      12: T,
      13: T,
    },
  },
  Pad: {
    first: 1,
    changes: {
      2: {
        kind: 'legacy',
        what: "renamed 'paddings' to 'pads'",
        rewrite: (node) => {
          if (node.attributes.paddings !== undefined) {
            node.attributes.pads = node.attributes.paddings;
            delete node.attributes.paddings;
          }
          return undefined;
        },
      },
      11: {
        kind: 'signature',
        what: "moved 'pads' and 'value' from attributes to inputs",
        rewrite: attrsToInputs([
          { attr: 'pads', index: 1, dtype: 'int32' },
          { attr: 'value', index: 2, dtype: 'float32', scalar: true },
        ]),
      },
      13: T,
      18: add("the 'axes' input"),
      19: add("mode 'wrap'"),
      ...LATER_TYPES,
    },
  },
  Split: {
    first: 1,
    changes: {
      2: T,
      11: add('negative axis'),
      13: { kind: 'signature', what: "moved 'split' from an attribute to an input", rewrite: attrsToInputs([{ attr: 'split', index: 1, dtype: 'int32' }]) },
      18: add("'num_outputs'"),
    },
  },
  Tile: { first: 1, changes: { 6: { kind: 'semantic', what: "takes 'repeats' per axis (it took 'tiles' and 'axis')" }, 13: T } },
  Shape: { first: 1, changes: { 13: T, 15: add("'start' and 'end'"), 19: T, ...LATER_TYPES } },
  Size: { first: 1, changes: { 13: T, 19: T, ...LATER_TYPES } },
  Equal: { first: 1, changes: { 7: LEGACY_BROADCAST, 11: T, 13: T, 19: T } },
  Greater: { first: 1, changes: { 7: LEGACY_BROADCAST, 9: T, 13: T } },
  Less: { first: 1, changes: { 7: LEGACY_BROADCAST, 9: T, 13: T } },
  Not: { first: 1, changes: {} },
  And: { first: 1, changes: { 7: LEGACY_BROADCAST } },
  Or: { first: 1, changes: { 7: LEGACY_BROADCAST } },
  GreaterOrEqual: { first: 12, changes: { 16: T } },
  LessOrEqual: { first: 12, changes: { 16: T } },
  Sign: { first: 9, changes: { 13: T } },
  Round: { first: 11, changes: { 22: T } },
  Sinh: { first: 9, changes: { 22: T } },
  Cosh: { first: 9, changes: { 22: T } },
  GatherElements: { first: 11, changes: { 13: T } },
  GatherND: { first: 11, changes: { 12: add("'batch_dims'"), 13: T } },
  ScatterElements: { first: 11, changes: { 13: T, 16: add("'reduction'"), 18: add("reductions 'max' and 'min'") } },
  ScatterND: { first: 11, changes: { 13: T, 16: add("'reduction'"), 18: add("reductions 'max' and 'min'") } },
  DepthToSpace: { first: 1, changes: { 11: add("'mode'"), 13: T } },
  SpaceToDepth: { first: 1, changes: { 13: T } },
  OneHot: { first: 9, changes: { 11: add('negative axis and indices') } },
  Resize: {
    first: 10,
    changes: {
      11: { kind: 'semantic', what: "takes 'roi' and 'sizes' inputs and coordinate transformation modes" },
      13: add("'roi' optional"),
      18: add("'antialias', 'axes' and 'keep_aspect_ratio_policy'"),
      19: add("mode 'half_pixel_symmetric'"),
    },
  },
  NegativeLogLikelihoodLoss: { first: 12, changes: { 13: T, 22: T } },
  SoftmaxCrossEntropyLoss: { first: 12, changes: { 13: T } },
  CumSum: { first: 11, changes: { 14: T } },
  Einsum: { first: 12, changes: {} },
  Mish: { first: 18, changes: { 22: T } },
  HardSwish: { first: 14, changes: { 22: T } },
  ThresholdedRelu: { first: 10, changes: { 22: T } },
  Celu: { first: 12, changes: {} },
};

export function knowsOp(op: string): boolean {
  return HISTORY[op] !== undefined;
}

function versionsOf(op: string): number[] {
  const h = HISTORY[op];
  return [h.first, ...Object.keys(h.changes).map(Number)].sort((a, b) => a - b);
}

/** The version of `op`'s schema in force at `opset` (undefined: the op does not exist yet at that opset, or is unknown). */
export function schemaVersion(op: string, opset: number): number | undefined {
  if (!HISTORY[op]) return undefined;
  return versionsOf(op)
    .filter((v) => v <= opset)
    .pop();
}

/** The op's first version (undefined for an unknown op). */
export function firstVersion(op: string): number | undefined {
  return HISTORY[op]?.first;
}

/** Changes of `op` in (from, to], oldest first. */
export function changesBetween(op: string, from: number, to: number): { version: number; change: Change }[] {
  const h = HISTORY[op];
  if (!h) return [];
  return Object.entries(h.changes)
    .map(([v, change]) => ({ version: Number(v), change }))
    .filter((c) => c.version > from && c.version <= to)
    .sort((a, b) => a.version - b.version);
}

export interface UpgradeResult {
  /** The schema version the node now has (its own, or the one it was upgraded to). */
  schemaVersion?: number;
  /** Why the node could not be upgraded (it keeps its own version). */
  refused?: string;
}

/**
 * Rewrite `node` (in the default domain, from a model of `opset`) to its
 * form at max(opset, 18). On refusal the node is left as it was.
 */
export function upgradeNode(node: NodeDecl, opset: number, ctx: UpgradeContext): UpgradeResult {
  if (!HISTORY[node.op]) return {};
  const from = schemaVersion(node.op, opset);
  if (from === undefined) return { refused: `${node.op} does not exist at opset ${opset} (it was added in opset ${firstVersion(node.op)})` };
  const to = schemaVersion(node.op, Math.max(opset, UPGRADE_TARGET_OPSET)) as number;
  const changes = changesBetween(node.op, from, to);
  if (changes.length === 0) return { schemaVersion: from };
  const copy: NodeDecl = { ...node, inputs: [...node.inputs], outputs: [...node.outputs], attributes: { ...node.attributes } };
  const added: string[] = [];
  const trial: UpgradeContext = {
    shapeOf: ctx.shapeOf,
    addConstant: (base, dtype, shape, values) => {
      const name = ctx.addConstant(base, dtype, shape, values);
      added.push(name);
      return name;
    },
  };
  for (const { version, change } of changes) {
    const rewrite = change.kind === 'types' || change.kind === 'additive' ? undefined : change.rewrite;
    if (change.kind === 'semantic' && !rewrite) return { schemaVersion: from, refused: `${node.op}-${version} ${change.what}` };
    const why = rewrite?.(copy, trial);
    if (why) return { schemaVersion: from, refused: `upgrading ${node.op}-${from} to ${node.op}-${version} (which ${'what' in change ? change.what : 'changed types'}) is not possible: ${why}` };
  }
  Object.assign(node, copy);
  return { schemaVersion: to };
}

/**
 * Why running a node of schema `nodeVersion` with tilesim's older
 * implementation `implVersion` would be wrong (undefined when it is fine:
 * only new types or new attributes and inputs, which the attribute and arity
 * checks still catch).
 */
export function downgradeProblem(op: string, implVersion: number, nodeVersion: number): string | undefined {
  for (const { version, change } of changesBetween(op, implVersion, nodeVersion)) {
    if (change.kind === 'semantic' || change.kind === 'signature') return `${op}-${version} ${change.what}`;
  }
  return undefined;
}
