/**
 * PassTimer's per-op times and formatTimings' list of the ops slowest to
 * lower, on a clock the test drives (performance.now stubbed): each op's time
 * runs from the event before it, pass changes included.
 */
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { formatTimings, PassTimer, SLOWEST_OPS } from '../../src/cli/timings.js';
import { compile } from '../../src/compile.js';
import { loadConfig } from '../../src/config/load.js';
import { BEFORE_FIRST_OP } from '../../src/lower/lower.js';
import { ROOT } from '../helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** A timer fed `events` ([ms at, pass, op?]) on a stubbed clock. */
function timed(events: [number, string, string?][]): PassTimer {
  let now = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => now);
  const timer = new PassTimer();
  for (const [at, pass, op] of events) {
    now = at;
    timer.onProgress(pass, op);
  }
  now = events[events.length - 1][0];
  timer.finish();
  return timer;
}

describe('sim compile --timings: the ops slowest to lower', () => {
  it("times each op from the event before it, the pass's start for the first", () => {
    const t = timed([
      [0, 'scheduling'],
      [10, 'lowering ops'],
      [12, 'lowering ops', '(laying out inputs, weights and constants)'],
      [40, 'lowering ops', 'MatMul_0'],
      [45, 'lowering ops', 'Relu_1'],
      [105, 'lowering ops', 'AddArg1Grad(Add_2)'],
      [130, 'finding tensor lifetimes'],
    ]);
    expect(t.ops).toEqual([
      { op: '(laying out inputs, weights and constants)', ms: 2 },
      { op: 'MatMul_0', ms: 28 },
      { op: 'Relu_1', ms: 5 },
      { op: 'AddArg1Grad(Add_2)', ms: 60 },
    ]);
    expect(t.passes.find((p) => p.pass === 'lowering ops')!.ms).toBe(120);
  });

  it('lists the slowest first, with their share of the ops timed, and at most SLOWEST_OPS of them', () => {
    const events: [number, string, string?][] = [[0, 'lowering ops']];
    // Op k takes k + 1 ms: 1 + 2 + ... + 15 = 120 ms in all.
    let at = 0;
    for (let k = 0; k < 15; k++) events.push([(at += k + 1), 'lowering ops', `Op_${k}`]);
    const t = timed(events);
    const text = formatTimings(t.passes, t.ops);
    const list = text.slice(text.indexOf('ops slowest to lower'));
    expect(list.split('\n')[0]).toBe(`ops slowest to lower (${SLOWEST_OPS} of 15 timed; host time, share of their sum):`);
    const rows = [...list.matchAll(/^ {2}(Op_\d+) +(\d+\.\d) ms +(\d+\.\d)%$/gm)].map((m) => ({ op: m[1], ms: Number(m[2]), share: Number(m[3]) }));
    expect(rows.map((r) => r.op)).toEqual(['Op_14', 'Op_13', 'Op_12', 'Op_11', 'Op_10', 'Op_9', 'Op_8', 'Op_7', 'Op_6', 'Op_5']);
    expect(rows[0]).toEqual({ op: 'Op_14', ms: 15, share: 12.5 });
    expect(rows[9]).toEqual({ op: 'Op_5', ms: 6, share: 5 });
  });

  it("the compile names each op as it is lowered, in schedule order, after the work before the first", async () => {
    const ops: string[] = [];
    const c = await compile(loadConfig(path.join(ROOT, 'configs/examples/mlp-adam.yaml')), {
      onProgress: (pass, _done, _total, op) => {
        if (op !== undefined) {
          expect(pass).toBe('lowering ops');
          ops.push(op);
        }
      },
    });
    expect(ops).toEqual([BEFORE_FIRST_OP, ...c.schedule.map((op) => op.name)]);
  });

  it('prints no list when no op was timed', () => {
    const t = timed([
      [0, 'scheduling'],
      [5, 'lowering ops'],
    ]);
    expect(formatTimings(t.passes, t.ops)).not.toMatch(/ops slowest/);
  });
});
