/** ctx.vertex with a codelet made by defineCodelet is checked when placed, naming op, codelet and field. */
import { describe, expect, it } from 'vitest';
import { defineCodelet } from '../../sim/define.js';
import { checkVertex } from '../../src/lower/vertex-check.js';
import { sumCodelet } from '../../sim/codelets/binary.js';

const scale = defineCodelet({
  domain: 'test.ops',
  name: 'Scale',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ['float32'] }, out: { direction: 'output', dtypes: ['float32'] }, acc: { direction: 'inout', vector: true } },
  params: { k: 'float', n: 'int' },
  compute() {},
  cycles: () => 1,
});
const s = (tensor: number) => ({ tensor, begin: 0, end: 4 });
const tensors = [{ name: 'x', dtype: 'float32' as const }, { name: 'h', dtype: 'float16' as const }];
const check = (fields: Record<string, unknown>, params: Record<string, number> = { k: 1, n: 2 }) => () =>
  checkVertex('Scale_3', scale, fields as never, params, (x) => tensors[x.tensor]);

describe('checkVertex', () => {
  it('passes a vertex that matches, inout fields optional', () => {
    expect(check({ in: s(0), out: s(0) })).not.toThrow();
    expect(check({ in: s(0), out: s(0), acc: [s(0), s(1)] })).not.toThrow();
  });

  it('names op, codelet and field for each mistake', () => {
    const at = "the lowering of op 'Scale_3' is wrong: its vertex of codelet 'test.ops::Scale' ";
    expect(check({ in: s(1), out: s(0) })).toThrow(`${at}gets float16 tensor 'h' for field 'in', which takes float32`);
    expect(check({ in: s(0), out: s(0), inn: s(0) })).toThrow(`${at}connects field 'inn', which the codelet does not have (it has in, out, acc)`);
    expect(check({ in: s(0) })).toThrow(`${at}leaves field 'out' (output) unconnected`);
    expect(check({ in: [s(0)], out: s(0) })).toThrow(`${at}gives field 'in' a list of slices, but it takes one slice`);
    expect(check({ in: s(0), out: s(0), acc: s(0) })).toThrow(`${at}gives field 'acc' one slice, but it is a vector field: give a list of slices`);
    expect(check({ in: s(0), out: s(0) }, { k: 1 })).toThrow(`${at}does not give param 'n' (int)`);
    expect(check({ in: s(0), out: s(0) }, { k: 1, n: 2.5 })).toThrow(`${at}gives int param 'n' the value 2.5`);
    expect(check({ in: s(0), out: s(0) }, { k: 1, n: 2, m: 0 })).toThrow(`${at}gives param 'm', which the codelet does not declare (it takes k, n)`);
  });

  it('checks indexed keys against the vector field they are per slice of (Sum: in<j>Base, in<j>)', () => {
    const at = "the lowering of op 'Sum_1' is wrong: its vertex of codelet 'Sum' ";
    const three = { in: [s(0), s(0), s(0)], out: s(0) };
    const sum = (params: Record<string, number>, arrays?: Record<string, number[]>) => () => checkVertex('Sum_1', sumCodelet, three, params, (x) => tensors[x.tensor], arrays);
    expect(sum({ begin: 0, in0Base: 0, in2Base: 4 }, { shape: [2, 2], in0: [2, 1], in2: [0, 1] })).not.toThrow();
    expect(sum({ in3Base: 0 })).toThrow(`${at}gives param 'in3Base' (in<j>Base), but field 'in' has 3 slices`);
    expect(sum({ in01Base: 0 })).toThrow(`${at}gives param 'in01Base', which the codelet does not declare (it takes begin, offset, in<j>Base)`);
    expect(sum({}, { in1: [1.5] })).toThrow(`${at}gives array 'in1' the element 1.5 at 0; it holds integers`);
    expect(sum({}, { strides: [1] })).toThrow(`${at}gives array 'strides', which the codelet does not declare (it takes shape, in<j>)`);
  });

  it('refuses an indexed key on a single field, or a required one, when the codelet is defined', () => {
    const base = { name: 'V', kind: 'multi' as const, compute() {}, cycles: () => 1 };
    expect(() => defineCodelet({ ...base, fields: { x: { direction: 'input' } }, params: { 'x<j>Base': 'int?' } })).toThrow(
      "codelet 'V': param 'x<j>Base' is one per slice of 'x', which is not a vector field",
    );
    expect(() => defineCodelet({ ...base, fields: { x: { direction: 'input', vector: true } }, arrays: { 'x<j>': 'ints' } })).toThrow(
      "codelet 'V': array 'x<j>' is one per slice of 'x' and must be optional ('ints?')",
    );
  });
});
