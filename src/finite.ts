/**
 * run.checkFinite, as PopART's floating-point exception checks: after the
 * last compute set of each op, every float output of the op is scanned, and
 * the first NaN or ±Infinity stops the run naming the op, the step and the
 * ranges of the op's inputs, instead of letting training run on in NaN.
 */
import type { ElemArray } from '../sim/codelet.js';
import type { Engine } from '../sim/engine.js';
import { halfToFloat } from '../sim/half.js';
import type { ComputeSet, ProgramStep } from '../sim/program.js';
import { RunError } from './errors.js';
import type { Op } from './ir/op.js';
import { fmtOpid } from './ir/opid.js';
import type { Compiled } from './session.js';

/** Counts of the values of an array, and the range of its finite ones. */
interface Scan {
  n: number;
  nan: number;
  posInf: number;
  negInf: number;
  /** Index of the first non-finite value, -1 if none. */
  first: number;
  min: number;
  max: number;
}

function scan(a: ElemArray, dtype: string): Scan {
  const s: Scan = { n: a.length, nan: 0, posInf: 0, negInf: 0, first: -1, min: Infinity, max: -Infinity };
  const half = dtype === 'float16';
  for (let i = 0; i < a.length; i++) {
    const x = half ? halfToFloat(a[i]) : a[i];
    if (x - x === 0) {
      if (x < s.min) s.min = x;
      if (x > s.max) s.max = x;
      continue;
    }
    if (s.first < 0) s.first = i;
    if (Number.isNaN(x)) s.nan++;
    else if (x > 0) s.posInf++;
    else s.negInf++;
  }
  return s;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}

function describe(s: Scan): string {
  const bad = [s.nan ? `${s.nan} NaN` : '', s.posInf ? `${s.posInf} +Infinity` : '', s.negInf ? `${s.negInf} -Infinity` : ''].filter((x) => x);
  const range = s.min <= s.max ? `[${fmt(s.min)}, ${fmt(s.max)}]` : 'no finite values';
  return bad.length ? `${range}, ${bad.join(', ')} of ${s.n}` : range;
}

export class FiniteCheck {
  /** Op name -> id of the op's last compute set in the batch program. */
  private readonly lastOf = new Map<string, number>();
  private readonly ops = new Map<string, Op>();

  constructor(
    private readonly compiled: Compiled,
    private readonly engine: Engine,
  ) {
    const walk = (steps: ProgramStep[]): void => {
      for (const s of steps) {
        if (s.kind === 'execute') this.lastOf.set(compiled.program.computeSets[s.computeSet].op, s.computeSet);
        else if (s.kind === 'repeat' || s.kind === 'repeatWhile' || s.kind === 'call') walk(s.body);
        else if (s.kind === 'switch') {
          walk(s.whenTrue);
          walk(s.whenFalse);
        }
      }
    };
    walk(compiled.program.programs.batch ?? []);
    for (const op of compiled.graph.ops) this.ops.set(op.name, op);
  }

  /** Called after each compute set runs; `where` is "step 3" or "step 3, batch 1". */
  after(cs: ComputeSet, where: string): void {
    if (this.lastOf.get(cs.op) !== cs.id) return;
    const op = this.ops.get(cs.op);
    if (!op) return;
    for (const id of op.outputs) {
      const t = this.read(id);
      if (!t) continue;
      const s = scan(t.data, t.dtype);
      if (s.first < 0) continue;
      const what = s.nan ? 'NaN' : s.posInf ? '+Infinity' : '-Infinity';
      const inputs = op.inputs
        .filter((i) => i !== '')
        .map((i) => {
          const x = this.read(i);
          if (!x) return `'${i}'`;
          const inPlace = this.compiled.tensorOf.get(i) === this.compiled.tensorOf.get(id) ? ' (overwritten in place by the op: these are its output values)' : '';
          return `'${i}' ${x.dtype}[${this.compiled.graph.tensor(i).info.shape.join(', ')}] ${describe(scan(x.data, x.dtype))}${inPlace}`;
        });
      throw new RunError(
        `${where}: op '${op.name}' (${fmtOpid(op.opid)}) wrote ${what} to its output '${id}' (first at element ${s.first}; ${describe(s)}). ` +
          `Its inputs: ${inputs.length ? inputs.join('; ') : 'none'}. ` +
          'This is the first op of the step whose output is not finite (run.checkFinite; set it to false to let the run go on).',
      );
    }
  }

  private read(id: string): { data: ElemArray; dtype: string } | undefined {
    const dev = this.compiled.tensorOf.get(id);
    if (dev === undefined) return undefined;
    const t = this.compiled.program.tensors[dev];
    if (t.dtype !== 'float32' && t.dtype !== 'float16') return undefined;
    return { data: this.engine.read(t), dtype: t.dtype };
  }
}
