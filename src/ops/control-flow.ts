/**
 * Control flow (ai.onnx If and Loop), lowered as Poplar does it: If is a
 * switch over two programs, Loop a repeat with a counter.
 *
 * The ops of a branch or a loop body live in the main graph, each marked
 * with its region (Graph.regions: the If or Loop that owns it and which
 * branch), so shape inference, constant folding and the scheduler treat them
 * like any op; src/model/control-flow.ts builds them from the ONNX
 * subgraphs. The schedule puts a region's ops just before their owner, and
 * the lowering (src/lower/lower.ts) collects their program steps in the
 * owner's region instead of the batch program; the owner's lowering then
 * emits the switch or the repeat around them.
 *
 * If   inputs: cond, the then-branch's outputs, the else-branch's outputs,
 *      and every outer tensor the branches read (so nothing overwrites them
 *      before the switch runs). Each branch ends by copying its outputs into
 *      the If's outputs (an exchange), then a switch picks the branch.
 * Loop (a trip count M known at compile time; with a condition computed at
 *      run time, a repeatWhile step, Poplar's RepeatWhileTrue: at most M
 *      passes, the condition copied back like a carried value, read before
 *      each pass; no scan outputs then)
 *      LoopStart (in the body's region) names the body's inputs: iteration
 *      number, condition, carried values. Loop's inputs: those, the body's
 *      carried and scan outputs, the initial values, the constants 0 and 1,
 *      and the outer tensors the body reads. Before the repeat: initial
 *      values copied into the carried inputs, counter = 0, condition = 1.
 *      Each pass: the body, then the scan values written into their slot
 *      (SlotUpdate at the counter), the carried outputs copied into the
 *      carried inputs, the counter incremented. The final carried values are
 *      the carried inputs after the repeat.
 *
 * IfGrad (PopART's IfGradOp) is an If over the grad ops of the two branches,
 *      with the same condition: its outputs are the gradients of the outer
 *      tensors the branches read, zero from a branch that does not read one.
 *      The autodiff transform builds it (src/autodiff/if-grad.ts).
 * LoopGrad (PopART's LoopGradOp) is a counted Loop over the grad ops of the
 *      body, one pass per forward pass, last first. The forward body
 *      stashes every value its grad ops read (LoopStash: slot `iter` of a
 *      [trip, ...] tensor, as a scan output), and the grad body reads them
 *      back (LoopRestore: slot trip - 1 - iter), with the scan outputs'
 *      gradients. Carried: the carried values' gradients (from the Loop's
 *      final outputs' to the initial values') and the sums of the outer
 *      tensors' gradients. The autodiff transform builds it
 *      (src/autodiff/loop-grad.ts). A loop whose passes depend on data has
 *      none: training through it is an error naming the op.
 */
import { Op, type AttributeValue, type GradOp } from '../ir/op.js';
import { GRAPHCORE_DOMAIN, ONNX_DOMAIN, type OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import type { ProgramStep } from '../../sim/program.js';
import { loopCounterCodelet, slotReadCodelet, slotUpdateCodelet } from '../../sim/codelets/control.js';
import { UserError } from '../errors.js';

export const IF_VERSIONS = [1, 11, 13, 16, 19, 21];
export const LOOP_VERSIONS = [1, 11, 13, 16, 19, 21];
const LOOP_START: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'LoopStart', version: 1 };
const IF_GRAD: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'IfGrad', version: 1 };
const LOOP_GRAD: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'LoopGrad', version: 1 };
const LOOP_STASH: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'LoopStash', version: 1 };
const LOOP_RESTORE: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'LoopRestore', version: 1 };
const LOOP_RELAYOUT: OperatorIdentifier = { domain: GRAPHCORE_DOMAIN, type: 'LoopRelayout', version: 1 };


const onlyFromOnnx = (type: string) => (): never => {
  throw new UserError(`${type} takes its ${type === 'If' ? 'branches' : 'body'} as graph attributes, which only an ONNX model can give`);
};

export class IfOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    settings: Op['settings'],
    /** Outputs of each branch (= outputs of the If). */
    readonly numOutputs: number,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const c = this.inInfo(0);
    if (nelms(c.shape) !== 1) this.fail(`its condition '${this.inId(0)}' must hold one element, it is ${fmtInfo(c)}`);
    for (let k = 0; k < this.numOutputs; k++) {
      const a = this.inInfo(1 + k);
      const b = this.inInfo(1 + this.numOutputs + k);
      if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join())
        this.fail(`output ${k} is ${fmtInfo(a)} in then_branch but ${fmtInfo(b)} in else_branch; tilesim needs both branches to give the same type and shape`);
      this.setOutInfo(k, a);
    }
  }
  /** None: the autodiff transform grows an If's gradient itself, from its branches (src/autodiff/if-grad.ts). */
  override getGradOps(): GradOp[] {
    return [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { outputs: this.numOutputs };
  }
}

/**
 * The gradient of an If: an If on the same condition whose branches hold the
 * grad ops of the forward's branches. Inputs: cond, the then-branch's
 * gradients of the outer tensors, the else-branch's, then every outer tensor
 * the grad branches read.
 */
export class IfGradOp extends IfOp {
  constructor(
    readonly fwdOp: IfOp,
    numOutputs: number,
  ) {
    super(IF_GRAD, { name: `IfGrad(${fwdOp.name})`, loc: fwdOp.settings.loc }, numOutputs);
  }
}

/** Names the loop body's inputs: iteration number, condition, carried values (mapped like the initial values). */
export class LoopStartOp extends Op {
  constructor(settings: Op['settings']) {
    super(LOOP_START, settings);
  }
  setup(): void {
    this.setOutInfo(0, { dtype: 'int32', shape: [] });
    this.setOutInfo(1, { dtype: 'int32', shape: [] });
    this.inputs.forEach((_, k) => this.setOutInfo(2 + k, this.inInfo(k)));
  }
}

export interface LoopShape {
  trip: number;
  carried: number;
  scans: number;
  /** Outer tensors the body reads (after the fixed inputs). */
  outer: number;
  /** The condition is computed at run time: a repeat while it holds (at most `trip` passes), no scan outputs. */
  dynamic: boolean;
}

export class LoopOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    settings: Op['settings'],
    readonly shape: LoopShape,
  ) {
    super(opid, settings);
  }
  /** Input index of group `what`'s element k. */
  at(what: 'iter' | 'cond' | 'carriedIn' | 'carriedOut' | 'scan' | 'initial' | 'zero' | 'one' | 'condOut' | 'condInit', k = 0): number {
    const { carried: n, scans: s } = this.shape;
    const one = 3 + 3 * n + s;
    const base = { iter: 0, cond: 1, carriedIn: 2, carriedOut: 2 + n, scan: 2 + 2 * n, initial: 2 + 2 * n + s, zero: 2 + 3 * n + s, one, condOut: one + 1, condInit: one + 2 }[what];
    return base + k;
  }
  setup(): void {
    const { carried, scans, trip } = this.shape;
    for (let k = 0; k < carried; k++) {
      const a = this.inInfo(this.at('carriedIn', k));
      const b = this.inInfo(this.at('carriedOut', k));
      if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join())
        this.fail(`loop-carried value ${k} enters the body as ${fmtInfo(a)} but leaves it as ${fmtInfo(b)}; tilesim needs carried values to keep their type and shape`);
      this.setOutInfo(k, a);
    }
    for (let k = 0; k < scans; k++) {
      const v = this.inInfo(this.at('scan', k));
      this.setOutInfo(carried + k, { dtype: v.dtype, shape: [trip, ...v.shape] });
    }
  }
  /** None: the autodiff transform grows a Loop's gradient itself, from its body (src/autodiff/loop-grad.ts). */
  override getGradOps(): GradOp[] {
    return [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { trip_count: this.shape.trip };
  }
}

/** The gradient of a counted Loop: a counted Loop over its body's grad ops, last pass first (no scan outputs). */
export class LoopGradOp extends LoopOp {
  constructor(
    readonly fwdOp: LoopOp,
    shape: LoopShape,
  ) {
    super(LOOP_GRAD, { name: `LoopGrad(${fwdOp.name})`, loc: fwdOp.settings.loc }, shape);
  }
}

/**
 * In a loop body: value (input 0) written into slot `iter` (input 1) of a
 * [trip, ...] tensor that outlives the loop. Inputs after those only order
 * it after the op that makes them (an If whose branch made the value).
 */
export class LoopStashOp extends Op {
  constructor(
    settings: Op['settings'],
    readonly trip: number,
  ) {
    super(LOOP_STASH, settings);
  }
  setup(): void {
    const v = this.inInfo(0);
    this.setOutInfo(0, { dtype: v.dtype, shape: [this.trip, ...v.shape] });
  }
}

/** In a LoopGrad's body: slot trip - 1 - iter (input 1) of a [trip, ...] tensor (input 0): the forward pass this pass undoes. */
export class LoopRestoreOp extends Op {
  constructor(settings: Op['settings']) {
    super(LOOP_RESTORE, settings);
  }
  setup(): void {
    const v = this.inInfo(0);
    this.setOutInfo(0, { dtype: v.dtype, shape: v.shape.slice(1) });
  }
}

/** Exchange copies of src into dst, element for element (both whole tensors of one size). */
function copyAll(ctx: LowerContext, pairs: [BuildTensor, BuildTensor][], name: string): ProgramStep[] {
  const todo = pairs.filter(([s, d]) => s !== d && d.size > 0);
  if (todo.length === 0) return [];
  const ex = ctx.graph.addExchange(`${ctx.op.name}/${name}`, ctx.op.name);
  for (const [s, d] of todo) {
    if (s.size !== d.size) throw new Error(`internal: ${ctx.op.name} copies ${s.size} elements into ${d.size}`);
    ctx.graph.addCopy(ex, ctx.slice(s), ctx.slice(d));
  }
  return [{ kind: 'exchange', exchange: ex }];
}

function lowerIf(op: IfOp, ctx: LowerContext): void {
  const n = op.numOutputs;
  const outs = Array.from({ length: n }, (_, k) => ctx.output(k, { like: ctx.input(1 + k) }));
  const [whenTrue = [], whenFalse = []] = ctx.regionSteps;
  const branch = (steps: ProgramStep[], first: number, name: string) => [...steps, ...copyAll(ctx, outs.map((o, k) => [ctx.input(first + k), o]), name)];
  ctx.emit({
    kind: 'switch',
    condition: ctx.input(0).id,
    op: op.name,
    whenTrue: branch(whenTrue, 1, 'then-outputs'),
    whenFalse: branch(whenFalse, 1 + n, 'else-outputs'),
  });
  ctx.note('control', `switch over two programs (then: ${whenTrue.length} steps, else: ${whenFalse.length} steps); the condition is read at run time`);
}

function lowerLoopStart(op: LoopStartOp, ctx: LowerContext): void {
  ctx.output(0);
  ctx.output(1);
  op.inputs.forEach((_, k) => ctx.output(2 + k, { like: ctx.input(k) }));
}

function lowerLoop(op: LoopOp, ctx: LowerContext): void {
  const { trip, carried, scans } = op.shape;
  const iter = ctx.input(op.at('iter'));
  const cond = ctx.input(op.at('cond'));
  const carriedIn = Array.from({ length: carried }, (_, k) => ctx.input(op.at('carriedIn', k)));
  const carriedOut = Array.from({ length: carried }, (_, k) => ctx.input(op.at('carriedOut', k)));
  // A carried output that is another carried input's memory (a swap through an alias) goes through a copy
  // first, so the copies back into the inputs do not read what they just wrote.
  const ins = new Set(carriedIn);
  const staged = carriedOut.map((t, k) => (ins.has(t) && t !== carriedIn[k] ? ctx.addTensor(`carried${k}`, t.dtype, t.shape) : t));
  staged.forEach((t, k) => {
    if (t !== carriedOut[k]) ctx.graph.mapLike(t, carriedOut[k]);
  });

  const init = copyAll(
    ctx,
    [
      ...carriedIn.map((t, k): [BuildTensor, BuildTensor] => [ctx.input(op.at('initial', k)), t]),
      [ctx.input(op.at('zero')), iter],
      [ctx.input(op.at(op.shape.dynamic ? 'condInit' : 'one')), cond],
    ],
    'init',
  );

  // Scan outputs: slot s of output k holds the body's value at iteration s, each slot mapped like the value.
  const tail: ProgramStep[] = [];
  if (scans > 0 && trip > 0) {
    ctx.computeSet('scan');
    for (let k = 0; k < scans; k++) {
      const v = ctx.input(op.at('scan', k));
      const ranges = ctx.ranges(v);
      const mapping: TileRange[] = [];
      for (let s = 0; s < trip; s++) for (const r of ranges) mapping.push({ tile: r.tile, begin: s * v.size + r.begin, end: s * v.size + r.end });
      const out = ctx.output(carried + k, { mapping });
      for (const r of ranges) {
        const slots: Slice[] = [];
        for (let s = 0; s < trip; s++) slots.push(ctx.slice(out, s * v.size + r.begin, s * v.size + r.end));
        ctx.vertex(slotUpdateCodelet, r.tile, { index: ctx.onTile(iter, 0, 1, r.tile), in: ctx.slice(v, r.begin, r.end), out: slots });
      }
    }
    tail.push(...ctx.takeSteps());
  } else for (let k = 0; k < scans; k++) ctx.output(carried + k);
  tail.push(...copyAll(ctx, carriedOut.map((t, k) => [t, staged[k]]), 'stage'));
  tail.push(...copyAll(ctx, [...staged.map((t, k): [BuildTensor, BuildTensor] => [t, carriedIn[k]]), ...(op.shape.dynamic ? [[ctx.input(op.at('condOut')), cond] as [BuildTensor, BuildTensor]] : [])], 'carry'));
  const tile = ctx.ranges(iter)[0]?.tile ?? 0;
  ctx.computeSet('counter');
  ctx.vertex(loopCounterCodelet, tile, { counter: ctx.slice(iter) });
  tail.push(...ctx.takeSteps());

  const [body = []] = ctx.regionSteps;
  if (op.shape.dynamic) ctx.emit(...init, { kind: 'repeatWhile', condition: cond.id, maxCount: trip, op: op.name, body: [...body, ...tail] });
  else ctx.emit(...init, { kind: 'repeat', count: trip, body: [...body, ...tail] });
  // After the repeat the carried inputs hold the final values.
  carriedIn.forEach((t, k) => ctx.aliasOutput(k, t));
  ctx.note('control', `${op.shape.dynamic ? `repeat while the condition holds, at most ${trip} times` : `repeat ${trip} times`} (body: ${body.length} steps), a counter for the iteration number${scans ? `, ${scans} scan output(s) written at the counter` : ''}`);
}

/**
 * Input 0 copied into the layout of input 1 (a Loop's scan output, of the
 * same shape): a scan output's gradient laid out slot by slot like the scan,
 * once before the LoopGrad, so each pass's LoopRestore reads its slot on the
 * tile instead of fetching every slot.
 */
export class LoopRelayoutOp extends Op {
  constructor(settings: Op['settings']) {
    super(LOOP_RELAYOUT, settings);
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
}

function lowerLoopRelayout(_op: LoopRelayoutOp, ctx: LowerContext): void {
  const out = ctx.output(0, { like: ctx.input(1) });
  ctx.emit(...copyAll(ctx, [[ctx.input(0), out]], 'relayout'));
}

function lowerLoopStash(op: LoopStashOp, ctx: LowerContext): void {
  const v = ctx.input(0);
  const iter = ctx.input(1);
  // Slot s of each tile's range of the value on that tile, as the Loop's scan outputs.
  const ranges = ctx.ranges(v);
  const mapping: TileRange[] = [];
  for (let s = 0; s < op.trip; s++) for (const r of ranges) mapping.push({ tile: r.tile, begin: s * v.size + r.begin, end: s * v.size + r.end });
  const out = ctx.output(0, { mapping });
  ctx.computeSet('stash');
  for (const r of ranges) {
    const slots = Array.from({ length: op.trip }, (_, s) => ctx.slice(out, s * v.size + r.begin, s * v.size + r.end));
    ctx.vertex(slotUpdateCodelet, r.tile, { index: ctx.onTile(iter, 0, 1, r.tile), in: ctx.slice(v, r.begin, r.end), out: slots });
  }
}

function lowerLoopRestore(op: LoopRestoreOp, ctx: LowerContext): void {
  const stacked = ctx.input(0);
  const iter = ctx.input(1);
  const trip = op.inInfo(0).shape[0];
  const n = stacked.size / trip;
  // Laid out like slot 0 of the stack: a stash's slots all lie on its tiles, so it reads without an exchange.
  const ranges = ctx.ranges(stacked, 0, n);
  const out = ctx.output(0, { mapping: ranges });
  ctx.computeSet('restore');
  for (const r of ranges) {
    const slots = Array.from({ length: trip }, (_, s) => ctx.onTile(stacked, s * n + r.begin, s * n + r.end, r.tile));
    ctx.vertex(slotReadCodelet, r.tile, { index: ctx.onTile(iter, 0, 1, r.tile), in: slots, out: ctx.slice(out, r.begin, r.end) }, { reverse: 1 });
  }
}

export const controlFlowDefinitions: OpDefinition[] = [
  ...IF_VERSIONS.map((version) =>
    defineOp({
      op: IfOp,
      id: { domain: ONNX_DOMAIN, type: 'If', version },
      description: 'a switch over two subgraphs (then_branch, else_branch) on a one-element condition; a constant condition inlines its branch',
      inputs: [{ name: 'cond' }],
      outputs: [{ name: 'outputs', variadic: true }],
      attributes: {},
      create: onlyFromOnnx('If'),
      lower: lowerIf,
    }),
  ),
  ...LOOP_VERSIONS.map((version) =>
    defineOp({
      op: LoopOp,
      id: { domain: ONNX_DOMAIN, type: 'Loop', version },
      description: 'a repeat of the body subgraph (trip count M known at compile time), with carried values and scan outputs; with a data-dependent condition a repeat while it holds (no scan outputs)',
      inputs: [{ name: 'M', optional: true }, { name: 'cond', optional: true }, { name: 'v_initial', variadic: true, optional: true }],
      outputs: [{ name: 'outputs', variadic: true }],
      attributes: {},
      create: onlyFromOnnx('Loop'),
      lower: lowerLoop,
    }),
  ),
  ...[9, 11, 16, 19, 21].map((version) =>
    defineOp({
      op: LoopOp,
      id: { domain: ONNX_DOMAIN, type: 'Scan', version },
      description: 'a counted Loop over the scan inputs (src/model/control-flow.ts): the body gathers each pass\'s slices, scan outputs are stacked, reversed and moved to their axes',
      inputs: [{ name: 'initial_state_and_scan_inputs', variadic: true }],
      outputs: [{ name: 'final_state_and_scan_outputs', variadic: true }],
      attributes: {
        num_scan_inputs: { type: 'int', description: 'how many of the inputs, the last ones, are scanned' },
        scan_input_axes: { type: 'ints', default: [], description: 'each scan input\'s scan axis (default 0)' },
        scan_input_directions: { type: 'ints', default: [], description: '0 forward, 1 reverse (default 0)' },
        scan_output_axes: { type: 'ints', default: [], description: 'the axis each scan output is stacked along (default 0)' },
        scan_output_directions: { type: 'ints', default: [], description: '0 in pass order, 1 reversed (default 0)' },
      },
      create: onlyFromOnnx('Scan'),
      lower: lowerLoop,
    }),
  ),
  defineOp({
    op: IfGradOp,
    id: IF_GRAD,
    description: "an If's gradient: a switch on its condition over the grad ops of its two branches (zero for an outer tensor a branch does not read)",
    lower: lowerIf,
  }),
  defineOp({
    op: LoopGradOp,
    id: LOOP_GRAD,
    description: "a counted Loop's gradient: a repeat of its body's grad ops, last pass first, reading each pass's stashed forward values",
    lower: lowerLoop,
  }),
  defineOp({ op: LoopStashOp, id: LOOP_STASH, description: "a loop body's value written into its pass's slot, for the LoopGrad", lower: lowerLoopStash }),
  defineOp({ op: LoopRestoreOp, id: LOOP_RESTORE, description: "a LoopGrad pass's forward value (or scan gradient): slot trip - 1 - iter", lower: lowerLoopRestore }),
  defineOp({ op: LoopRelayoutOp, id: LOOP_RELAYOUT, description: "a scan output's gradient copied into the scan's layout, slot by slot, before the LoopGrad", lower: lowerLoopRelayout }),
  defineOp({ op: LoopStartOp, id: LOOP_START, description: "the loop body's inputs (iteration number, condition, carried values)", lower: lowerLoopStart }),
];
