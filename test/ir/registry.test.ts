/** OpRegistry.resolve and checkAttributes (src/ir/registry.ts). */
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { OpRegistry, checkAttributes, defineOp, type OpDefinition } from '../../src/ir/registry.js';
import type { Op } from '../../src/ir/op.js';
import { SoftmaxOp } from '../../src/ops/softmax.js';
import { LrnOp } from '../../src/ops/lrn.js';
import { ArgGradOp, gradOf } from '../../src/ops/arg-grad.js';

const def = (type: string, version: number, domain = 'ai.onnx', attributes?: OpDefinition['attributes']): OpDefinition => ({
  id: { domain, type, version },
  attributes,
  lower: () => {},
});

function registry(): OpRegistry {
  const r = new OpRegistry();
  // added out of order on purpose
  r.add(def('Foo', 6));
  r.add(def('Foo', 1));
  r.add(def('Foo', 13));
  r.add(def('Bar', 7, 'ai.graphcore'));
  return r;
}

function errorOf(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected an error');
}

describe('OpRegistry.resolve', () => {
  it('picks the highest version not above the requested opset', () => {
    const r = registry();
    expect(r.resolve('ai.onnx', 'Foo', 1).id.version).toBe(1);
    expect(r.resolve('ai.onnx', 'Foo', 5).id.version).toBe(1);
    expect(r.resolve('ai.onnx', 'Foo', 6).id.version).toBe(6);
    expect(r.resolve('ai.onnx', 'Foo', 12).id.version).toBe(6);
    expect(r.resolve('ai.onnx', 'Foo', 13).id.version).toBe(13);
    expect(r.resolve('ai.onnx', 'Foo', 99).id.version).toBe(13);
  });

  it('treats the empty domain as ai.onnx and keeps domains apart', () => {
    const r = registry();
    expect(r.resolve('', 'Foo', 7).id).toEqual({ domain: 'ai.onnx', type: 'Foo', version: 6 });
    expect(r.resolve('ai.graphcore', 'Bar', 7).id.version).toBe(7);
    expect(() => r.resolve('ai.onnx', 'Bar', 7)).toThrow(/unknown op 'Bar' in domain 'ai.onnx'/);
  });

  it('suggests a close name for an unknown op', () => {
    const e = errorOf(() => registry().resolve('', 'Fooo', 13));
    expect(e.message).toMatch(/^unknown op 'Fooo' in domain 'ai\.onnx'; did you mean 'ai\.onnx::Foo'\?/);
    expect(e.exitCode).toBe(2);
  });

  it('gives no suggestion when nothing is close', () => {
    const e = errorOf(() => registry().resolve('ai.onnx', 'Convolution', 13));
    expect(e.message).toMatch(/^unknown op 'Convolution' in domain 'ai\.onnx' \(/);
    expect(e.message).not.toContain('did you mean');
  });

  it('says which versions exist when none is low enough', () => {
    const e = errorOf(() => registry().resolve('ai.onnx', 'Foo', 0));
    expect(e.message).toBe('op ai.onnx::Foo has no version <= 0; registered versions: 1, 6, 13');
  });

  it('prefixes the source location', () => {
    const e = errorOf(() => registry().resolve('ai.onnx', 'Foo', 0, { file: 'model.yaml', line: 3, col: 5 }));
    expect(e.message.startsWith('model.yaml:3:5: op ai.onnx::Foo has no version <= 0')).toBe(true);
  });

  it('rejects a version registered twice, and finds exact identifiers', () => {
    const r = registry();
    expect(() => r.add(def('Foo', 6))).toThrow('op ai.onnx::Foo:6 is registered twice');
    expect(r.exact({ domain: 'ai.onnx', type: 'Foo', version: 6 })?.id.version).toBe(6);
    expect(r.exact({ domain: 'ai.onnx', type: 'Foo', version: 7 })).toBeUndefined();
    expect(r.list().map((d) => `${d.id.type}:${d.id.version}`)).toEqual(['Bar:7', 'Foo:1', 'Foo:6', 'Foo:13']);
  });
});

describe('checkAttributes', () => {
  const leaky = def('Leaky', 1, 'ai.onnx', {
    alpha: { type: 'float', default: 0.01 },
    mode: { type: 'string' },
    axes: { type: 'ints', default: [0] },
    count: { type: 'int', default: 1 },
    names: { type: 'strings', default: [] },
    scales: { type: 'floats', default: [1.5] },
  });

  it('applies defaults for attributes not given', () => {
    const a = checkAttributes(leaky, { mode: 'x', count: 3 }, 'n1');
    expect(a.all()).toEqual({ mode: 'x', count: 3, alpha: 0.01, axes: [0], names: [], scales: [1.5] });
    expect(a.float('alpha')).toBe(0.01);
    expect(a.int('count')).toBe(3);
    expect(a.string('mode')).toBe('x');
    expect(a.ints('axes')).toEqual([0]);
  });

  it('accepts values of the declared types (an integer is a float too)', () => {
    const a = checkAttributes(leaky, { mode: 'y', alpha: 2, axes: [1, -1], names: ['a'], scales: [0, 0.5] }, 'n1');
    expect(a.all()).toMatchObject({ alpha: 2, axes: [1, -1], names: ['a'], scales: [0, 0.5] });
  });

  it('names an unknown attribute, suggests the close one and lists what the op takes', () => {
    const e = errorOf(() => checkAttributes(leaky, { mode: 'x', alpah: 0.2 }, 'n1'));
    expect(e.message).toBe(
      "node 'n1' (ai.onnx::Leaky:1): unknown attribute 'alpah'; did you mean 'alpha'? (it takes: alpha, mode, axes, count, names, scales)",
    );
  });

  it('says when an op takes no attributes', () => {
    const e = errorOf(() => checkAttributes(def('Plain', 1), { foo: 1 }, 'p'));
    expect(e.message).toBe("node 'p' (ai.onnx::Plain:1): unknown attribute 'foo' (it takes: no attributes)");
  });

  it('rejects a value of the wrong type', () => {
    const msg = (given: Record<string, number | string | number[] | string[]>) => errorOf(() => checkAttributes(leaky, { mode: 'x', ...given }, 'n1')).message;
    expect(msg({ count: 1.5 })).toBe("node 'n1' (ai.onnx::Leaky:1): attribute 'count' must be int, found 1.5");
    expect(msg({ alpha: 'big' })).toBe(`node 'n1' (ai.onnx::Leaky:1): attribute 'alpha' must be float, found "big"`);
    expect(msg({ axes: [1, 2.5] })).toMatch(/attribute 'axes' must be ints, found \[1,2\.5\]/);
    expect(msg({ axes: 3 })).toMatch(/attribute 'axes' must be ints/);
    expect(msg({ names: [1] })).toMatch(/attribute 'names' must be strings/);
    expect(msg({ scales: ['a'] })).toMatch(/attribute 'scales' must be floats/);
    expect(errorOf(() => checkAttributes(leaky, { mode: 3 }, 'n1')).message).toMatch(/attribute 'mode' must be string, found 3/);
  });

  it('requires attributes that have no default', () => {
    const e = errorOf(() => checkAttributes(leaky, { alpha: 0.5 }, 'n1', { file: 'c.yaml', line: 9, col: 3 }));
    expect(e.message).toBe("c.yaml:9:3: node 'n1' (ai.onnx::Leaky:1): attribute 'mode' (string) is required");
  });
});

describe('registry hints', () => {
  it('gives no suggestion for an unrelated short name', () => {
    const r = new OpRegistry();
    r.add({ id: { domain: 'ai.onnx', type: 'Add', version: 14 }, lower: () => {} });
    expect(() => r.resolve('', 'Relu', 14)).toThrow(/^(?!.*did you mean).*unknown op 'Relu'/);
  });
});

describe('defineOp', () => {
  const settings = { name: 's' };
  const sm = new SoftmaxOp({ domain: 'ai.onnx', type: 'Softmax', version: 13 }, -1, false, settings);
  const lrn = new LrnOp({ domain: 'ai.onnx', type: 'LRN', version: 13 }, { alpha: 1e-4, beta: 0.75, bias: 1, size: 3 }, settings);
  const ctx = undefined as never;

  it('hands the lowering the op as its own class, and refuses another class naming both', () => {
    const seen: Op[] = [];
    const d = defineOp({ op: SoftmaxOp, id: { domain: 'ai.onnx', type: 'Softmax', version: 13 }, lower: (op) => void seen.push(op) });
    d.lower!(sm, ctx);
    expect(seen).toEqual([sm]);
    expect(errorOf(() => d.lower!(lrn, ctx)).message).toMatch(/op 's' \(ai\.onnx::LRN:13\) reached the definition of ai\.onnx::Softmax:13, which is for SoftmaxOp, but it is a LrnOp/);
  });

  it('gradOf checks the grad op and its forward op', () => {
    const id = { domain: 'ai.graphcore', type: 'SoftmaxGrad', version: 1 };
    const seen: SoftmaxOp[] = [];
    const d = defineOp({ op: gradOf(SoftmaxOp), id, lower: (op) => void seen.push(op.fwd) });
    d.lower!(new ArgGradOp(id, sm, 0, []), ctx);
    expect(seen).toEqual([sm]);
    expect(errorOf(() => d.lower!(new ArgGradOp(id, lrn, 0, []), ctx)).message).toMatch(/which is for ArgGradOp<SoftmaxOp>, but it is a ArgGradOp<LrnOp>/);
    expect(errorOf(() => d.lower!(sm, ctx)).message).toMatch(/which is for ArgGradOp<SoftmaxOp>, but it is a SoftmaxOp/);
  });
});
