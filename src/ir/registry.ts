/**
 * The op registry, keyed by OperatorIdentifier. An OpDefinition says what a
 * node may carry (inputs, outputs, attributes with types and defaults), how to
 * create the Op, and how to lower it to vertices: PopART's OpCreator and
 * OpxCreator in one record. Grad ops have definitions too (no `create`: the
 * autodiff transform makes them through getGradOps()).
 */
import type { PlanOverrides } from '../lower/plan-overrides.js';
import { UserError, closest } from '../errors.js';
import type { NodeDecl, SourceLocation } from '../config/types.js';
import type { DType } from './dtype.js';
import type { TensorInfo } from './tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { TileRange } from '../lower/devicegraph.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { AttributeValue, Op, OpSettings } from './op.js';
import { fmtOpid, normDomain, opidKey, type OperatorIdentifier } from './opid.js';

export type AttributeType = 'float' | 'int' | 'string' | 'floats' | 'ints' | 'strings';

export interface AttributeDef {
  type: AttributeType;
  /** Absent means the attribute is required. */
  default?: AttributeValue;
  description?: string;
}

export interface TensorDef {
  name: string;
  optional?: boolean;
  /** The last input may repeat (ONNX variadic). */
  variadic?: boolean;
}

/** Typed access to a node's attributes, already checked against the definition. */
export class Attributes {
  constructor(private readonly values: Record<string, AttributeValue>) {}
  float(name: string): number {
    return this.values[name] as number;
  }
  int(name: string): number {
    return this.values[name] as number;
  }
  string(name: string): string {
    return this.values[name] as string;
  }
  ints(name: string): number[] {
    return this.values[name] as number[];
  }
  floats(name: string): number[] {
    return this.values[name] as number[];
  }
  strings(name: string): string[] {
    return this.values[name] as string[];
  }
  has(name: string): boolean {
    return this.values[name] !== undefined;
  }
  all(): Record<string, AttributeValue> {
    return { ...this.values };
  }
}

export interface OpCreateArgs {
  attributes: Attributes;
  settings: OpSettings;
}

/** An op's lowering (PopART's Opx::grow); defineOp gives it the op's own class, checked. */
export type Lowering<O extends Op = Op> = (op: O, ctx: LowerContext) => void;

/**
 * PopLibs' createInput family (createMatMulInputLHS/RHS, createWeights and
 * createInput for convolutions, createSliceableTensor): the tile mapping an op
 * wants for its input `index`. Asked of the first consumer, in schedule
 * order, of a tensor nothing produces (a variable, constant or streamed
 * input); the first answer wins, so a planned op reads its resident operands
 * where they already are. Undefined: no preference (the next consumer is
 * asked; with no answer the tensor is mapped linearly). The answer must cover
 * the tensor's elements once, on the device's tiles.
 */
export type InputLayout<O extends Op = Op> = (op: O, index: number, device: DeviceSpec, plans: PlanOverrides, use: InputUse) => TileRange[] | undefined;

/** What a createInput is told of the tensor's other readers. */
export interface InputUse {
  /**
   * Every reader of the tensor is an op with a createInput (a planned
   * consumer, as an inference's constant weight): none reads it per interval,
   * so a strided layout costs no extra vertices (an elementwise reader, the
   * optimizer's update among them, would run one per interval).
   */
  allReadersPlanned: boolean;
}

export interface ExpandArgs {
  node: NodeDecl;
  attributes: Attributes;
  /** Infos of the node's inputs ('' for an omitted optional input). */
  inputInfos: (TensorInfo | undefined)[];
  /**
   * The values of the node's constant inputs (initializers with trainable:
   * false, Constant nodes, and whatever constant folding made), undefined for
   * the others: a composite that needs an input at compile time (ConstantOfShape's
   * shape) reads it here.
   */
  inputData: (Float32Array | Int32Array | undefined)[];
  /** A fresh tensor or node name derived from `base`. */
  fresh(base: string): string;
}

export interface Expansion {
  nodes: NodeDecl[];
  /** Constants the new nodes use (row-major data). */
  constants?: { name: string; dtype: DType; shape: number[]; data: Float32Array | Int32Array }[];
}

export interface OpDefinition {
  id: OperatorIdentifier;
  description?: string;
  inputs?: TensorDef[];
  outputs?: TensorDef[];
  attributes?: Record<string, AttributeDef>;
  /** Makes the Op from a node; absent for grad ops and composites. */
  create?: (args: OpCreateArgs) => Op;
  /**
   * A composite: rewrites the node into simpler nodes (and constants) at
   * import, so it needs no grad ops or lowering of its own (ONNX Gemm, say).
   * Undefined from it: this node is not expanded but created (`create`), as
   * BatchNormalization is outside training mode.
   */
  expand?: (args: ExpandArgs) => Expansion | undefined;
  /** Whether the op has grad ops (for `sim ops`; the truth is getGradOps()). */
  grad?: boolean;
  /** Emits the op's compute sets, vertices and exchanges (PopART's Opx::grow); absent for composites. */
  lower?: Lowering;
  /** The mapping this op wants for an input nothing produces (see InputLayout). */
  createInput?: InputLayout;
}

/**
 * What a custom-op module exports as default: its op definitions and its
 * codelet module (a path relative to the op module, or several): the file
 * that holds its codelets, importing only 'tilesim/device', which is all the
 * pool workers load.
 */
export interface OpModule {
  ops?: OpDefinition[];
  codelets?: string | string[];
}

/** Makes the default export of an op module (the identity, for its types). */
export function defineOpModule(m: OpModule): OpModule {
  return m;
}

/** An Op class: what defineOp checks an op against before its lowering sees it. */
export type OpClass<O extends Op> = (abstract new (...args: never[]) => O) & { readonly name: string; readonly defaultOperatorId?: OperatorIdentifier };

/**
 * A kind of op no class alone names, checked by `is`: a generic grad op of a
 * given forward class (gradOf in src/ops/arg-grad.ts), for one.
 */
export interface OpGuard<O extends Op> {
  readonly name: string;
  readonly defaultOperatorId?: OperatorIdentifier;
  is(op: Op): op is O;
  /** What an op is, in the guard's terms, for the error when `is` says no (default: its class). */
  describe?(op: Op): string;
}

/** defineOp's argument: an OpDefinition whose functions see the op's own class. */
export interface TypedOpDefinition<O extends Op> extends Omit<OpDefinition, 'id' | 'create' | 'lower' | 'createInput'> {
  /** The Op (or GradOp) class the definition is for, or a guard for a kind of op (gradOf). */
  op: OpClass<O> | OpGuard<O>;
  /** Default: the class's static `defaultOperatorId`. */
  id?: OperatorIdentifier;
  create?: (args: OpCreateArgs) => O;
  lower?: Lowering<O>;
  createInput?: InputLayout<O>;
}

/**
 * An OpDefinition typed by its op class, as PopART's Opx gets its op with
 * `getOp<LeakyReluOp>()`, checked: `lower` and `createInput` receive the op as
 * that class (an op of another class is an error naming both), and the
 * identifier defaults to the class's `defaultOperatorId`.
 */
export function defineOp<O extends Op>(def: TypedOpDefinition<O>): OpDefinition {
  const { op: cls, id: given, lower, createInput, ...rest } = def;
  const id = given ?? cls.defaultOperatorId;
  if (!id) throw new UserError(`defineOp(${cls.name}): the class has no static defaultOperatorId; give the definition an id`);
  const is = typeof cls === 'function' ? (op: Op): op is O => op instanceof cls : (op: Op): op is O => cls.is(op);
  const what = (op: Op): string => (typeof cls === 'function' ? undefined : cls.describe?.(op)) ?? op.constructor.name;
  const asO = (op: Op): O => {
    if (is(op)) return op;
    throw new UserError(`op '${op.name}' (${fmtOpid(op.opid)}) reached the definition of ${fmtOpid(id)}, which is for ${cls.name}, but it is a ${what(op)}: give each op class its own identifier`);
  };
  return {
    ...rest,
    id,
    ...(lower ? { lower: (op: Op, ctx: LowerContext) => lower(asO(op), ctx) } : {}),
    ...(createInput ? { createInput: (op: Op, index: number, device: DeviceSpec, plans: PlanOverrides, use: InputUse) => createInput(asO(op), index, device, plans, use) } : {}),
  };
}

export class OpRegistry {
  private readonly defs = new Map<string, OpDefinition[]>();
  /** The codelet modules of the custom-op modules registered (absolute paths): what the device side loads. */
  readonly codeletModules: string[] = [];

  add(def: OpDefinition): void {
    const key = opidKey(def.id);
    const list = this.defs.get(key) ?? [];
    if (list.some((d) => d.id.version === def.id.version)) throw new UserError(`op ${fmtOpid(def.id)} is registered twice`);
    list.push(def);
    list.sort((a, b) => a.id.version - b.id.version);
    this.defs.set(key, list);
  }

  /** The definition with the highest version <= `version` (the opset in force), as PopART picks. */
  resolve(domain: string, type: string, version: number, loc?: SourceLocation): OpDefinition {
    const key = opidKey({ domain, type });
    const list = this.defs.get(key);
    if (!list) {
      // Compare type names (a shared domain prefix would make unrelated names look close), same domain first.
      const types = [...this.defs.values()].map((l) => l[0].id);
      const same = types.filter((id) => normDomain(id.domain) === normDomain(domain));
      const near = closest(type, same.map((id) => id.type)) ?? closest(type, types.map((id) => id.type));
      const match = near ? (same.find((id) => id.type === near) ?? types.find((id) => id.type === near)) : undefined;
      const hint = match ? opidKey(match) : null;
      throw new UserError(
        `unknown op '${type}' in domain '${normDomain(domain)}'${hint ? `; did you mean '${hint}'?` : ''} ` +
          `(see \`sim ops\`; custom ops are loaded from model.customOps)`,
        loc,
      );
    }
    const def = [...list].reverse().find((d) => d.id.version <= version);
    if (!def) {
      throw new UserError(
        `op ${key} has no version <= ${version}; registered versions: ${list.map((d) => d.id.version).join(', ')}`,
        loc,
      );
    }
    return def;
  }

  /** The definition registered under exactly this identifier (how lowering finds an op's Opx). */
  exact(id: OperatorIdentifier): OpDefinition | undefined {
    return this.defs.get(opidKey(id))?.find((d) => d.id.version === id.version);
  }

  list(): OpDefinition[] {
    return [...this.defs.values()].flat().sort((a, b) => opidKey(a.id).localeCompare(opidKey(b.id)) || a.id.version - b.id.version);
  }
}

/** Check a node's attributes against the definition: unknown names, types, defaults. */
export function checkAttributes(def: OpDefinition, given: Record<string, AttributeValue>, nodeName: string, loc?: SourceLocation): Attributes {
  const defs = def.attributes ?? {};
  const out: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(given)) {
    const ad = defs[name];
    if (!ad) {
      const names = Object.keys(defs);
      const hint = closest(name, names);
      throw new UserError(
        `node '${nodeName}' (${fmtOpid(def.id)}): unknown attribute '${name}'` +
          (hint ? `; did you mean '${hint}'?` : '') +
          ` (it takes: ${names.length ? names.join(', ') : 'no attributes'})`,
        loc,
      );
    }
    if (!typeMatches(ad.type, value)) {
      throw new UserError(`node '${nodeName}' (${fmtOpid(def.id)}): attribute '${name}' must be ${ad.type}, found ${JSON.stringify(value)}`, loc);
    }
    out[name] = value;
  }
  for (const [name, ad] of Object.entries(defs)) {
    if (name in out) continue;
    if (ad.default === undefined) throw new UserError(`node '${nodeName}' (${fmtOpid(def.id)}): attribute '${name}' (${ad.type}) is required`, loc);
    out[name] = Array.isArray(ad.default) ? [...ad.default] as AttributeValue : ad.default;
  }
  return new Attributes(out);
}

function typeMatches(type: AttributeType, v: AttributeValue): boolean {
  switch (type) {
    case 'float':
      return typeof v === 'number';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'string':
      return typeof v === 'string';
    case 'floats':
      return Array.isArray(v) && v.every((x) => typeof x === 'number');
    case 'ints':
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x));
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
  }
}
