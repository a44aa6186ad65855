/** Graph.schedule (src/ir/graph.ts): deterministic topological order, in-place ordering, cycles. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { Graph } from '../../src/ir/graph.js';
import { Op } from '../../src/ir/op.js';

/** An op with any inputs and outputs (float32[1]) that may write some inputs in place. */
class T extends Op {
  constructor(
    name: string,
    private readonly modifies: number[] = [],
  ) {
    super({ domain: 'test', type: 'T', version: 1 }, { name });
  }
  setup(): void {
    for (let i = 0; i < this.outputs.length; i++) this.setOutInfo(i, { dtype: 'float32', shape: [1] });
  }
  override modifiedInputs(): number[] {
    return this.modifies;
  }
}

function graph(...variables: string[]): Graph {
  const g = new Graph();
  for (const v of variables) g.addTensor(v, { dtype: 'float32', shape: [1] }, 'variable');
  return g;
}

const names = (g: Graph) => g.schedule().map((o) => o.name);

describe('Graph.schedule', () => {
  it('keeps independent ops in the order they were added', () => {
    const g = graph('x');
    g.addOp(new T('C'), ['x'], ['c']);
    g.addOp(new T('A'), ['x'], ['a']);
    g.addOp(new T('B'), ['x'], ['b']);
    expect(names(g)).toEqual(['C', 'A', 'B']);
  });

  it('runs the smallest ready op first, not the first one that became ready', () => {
    const g = graph('x');
    g.addOp(new T('p'), ['x'], ['a']);
    g.addOp(new T('q'), ['a'], ['b']);
    g.addOp(new T('r'), ['x'], ['c']);
    g.addOp(new T('s'), ['b', 'c'], ['d']);
    // ready: p, r. p runs and frees q (id 1), which goes before r (id 2): a FIFO would give p, r, q, s
    expect(names(g)).toEqual(['p', 'q', 'r', 's']);
  });

  it('runs an op that writes a tensor in place after every other reader, even readers added later', () => {
    const g = graph('w', 'g', 'x');
    g.addOp(new T('upd', [0]), ['w', 'g'], ['u']);
    g.addOp(new T('read1'), ['w'], ['r1']);
    g.addOp(new T('other'), ['x'], ['o']);
    g.addOp(new T('read2'), ['w'], ['r2']);
    g.addOp(new T('afterUpd'), ['u'], ['z']);
    // upd waits for read1 and read2; ties between ready ops go by insertion order
    expect(names(g)).toEqual(['read1', 'other', 'read2', 'upd', 'afterUpd']);
  });

  it('waits for the whole chain of a late reader of the modified tensor', () => {
    const g = graph('w');
    g.addOp(new T('upd', [0]), ['w'], ['u']);
    g.addOp(new T('f'), ['w'], ['a']);
    g.addOp(new T('g'), ['a'], ['b']);
    g.addOp(new T('h'), ['b', 'w'], ['c']);
    expect(names(g)).toEqual(['f', 'g', 'h', 'upd']);
  });

  it('only the modified input orders readers: other inputs of an in-place op do not', () => {
    const g = graph('w', 'x');
    g.addOp(new T('upd', [0]), ['w', 'x'], ['u']); // writes w, only reads x
    g.addOp(new T('readX'), ['x'], ['y']);
    expect(names(g)).toEqual(['upd', 'readX']);
  });

  it('is deterministic: the same order every time and for the same graph built again', () => {
    const build = () => {
      const g = graph('w', 'x');
      g.addOp(new T('e'), ['x'], ['e1']);
      g.addOp(new T('m', [0]), ['w', 'e1'], ['m1']);
      g.addOp(new T('d'), ['w'], ['d1']);
      g.addOp(new T('c'), ['d1', 'e1'], ['c1']);
      g.addOp(new T('b'), ['x'], ['b1']);
      return g;
    };
    const g = build();
    const first = names(g);
    // e and d free m (id 1) and c (id 3), which go before b (id 4)
    expect(first).toEqual(['e', 'd', 'm', 'c', 'b']);
    expect(names(g)).toEqual(first);
    expect(names(build())).toEqual(first);
  });

  it('reports a cycle made by an in-place write, naming the ops that could not be scheduled', () => {
    const g = graph('w', 'x');
    g.addOp(new T('M', [0]), ['w'], ['m']); // must run after every other reader of w ...
    g.addOp(new T('R'), ['w', 'm'], ['r']); // ... but R reads w and needs M's output
    g.addOp(new T('ok'), ['x'], ['y']);
    let err: unknown;
    try {
      g.schedule();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe('the graph has a cycle through ops: M, R');
  });

  it('is a valid order that always takes the smallest ready op, or reports a cycle (property)', () => {
    // Each op reads 1-3 earlier tensors (or the two variables) and may write its first input in place.
    const opSpec = fc.record({ picks: fc.array(fc.nat(1000), { minLength: 1, maxLength: 3 }), inPlace: fc.boolean() });
    fc.assert(
      fc.property(fc.array(opSpec, { minLength: 1, maxLength: 12 }), fc.boolean(), (specs, allowInPlace) => {
        const g = graph('v0', 'v1');
        const tensors = ['v0', 'v1'];
        specs.forEach((s, i) => {
          const inputs = [...new Set(s.picks.map((p) => tensors[p % tensors.length]))];
          g.addOp(new T(`op${i}`, allowInPlace && s.inPlace ? [0] : []), inputs, [`t${i}`]);
          tensors.push(`t${i}`);
        });
        // Predecessors, restated from the rules: producers of inputs; other readers of a modified input.
        const preds = new Map<Op, Set<Op>>(g.ops.map((o) => [o, new Set<Op>()]));
        for (const o of g.ops) {
          for (const id of o.inputs) {
            const p = g.tensor(id).producer;
            if (p) preds.get(o)!.add(p);
          }
          for (const idx of o.modifiedInputs()) for (const c of g.tensor(o.inputs[idx]).consumers) if (c.op !== o) preds.get(o)!.add(c.op);
        }
        // Reference: repeatedly take the smallest-id op whose predecessors have all run.
        const done = new Set<Op>();
        const expected: Op[] = [];
        for (;;) {
          const next = g.ops.find((o) => !done.has(o) && [...preds.get(o)!].every((p) => done.has(p)));
          if (!next) break;
          done.add(next);
          expected.push(next);
        }
        if (expected.length < g.ops.length) {
          expect(() => g.schedule()).toThrow(/the graph has a cycle through ops/);
          return;
        }
        const order = g.schedule();
        expect(order).toEqual(expected);
        // with no in-place writes every dependency points backwards: the order is insertion order
        if (!allowInPlace) expect(order).toEqual(g.ops);
      }),
      { numRuns: 300 },
    );
  });
});
