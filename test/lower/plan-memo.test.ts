/**
 * Plans and layouts made once per device and problem (src/lower/plan-memo.ts,
 * used by the matmul and the convolution): made on the first ask, the same
 * value after, a new device plans afresh, and an operand layout handed out
 * twice is equal but not shared (each tensor owns its mapping's ranges).
 */
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { DeviceMemo } from '../../src/lower/plan-memo.js';
import { matMulInputLayout, matMulPlan, problem2d } from '../../src/ops/matmul.js';

describe('DeviceMemo', () => {
  it('makes a value once per device and key', () => {
    const memo = new DeviceMemo<number[]>();
    const d1 = loadDevicePreset('mk2');
    const d2 = { ...d1 };
    let made = 0;
    const make = () => [++made];
    const a = memo.get(d1, 'k', make);
    expect(memo.get(d1, 'k', make)).toBe(a);
    expect(memo.get(d1, 'other', make)).toEqual([2]);
    expect(memo.get(d2, 'k', make)).toEqual([3]);
    expect(made).toBe(3);
  });
});

describe('matmul plans and createInput layouts, memoised', () => {
  const device = { ...loadDevicePreset('mk2'), tilesPerIpu: 64 };
  const p = problem2d([64, 96], [96, 128], false, false);
  const o = { aElems: 64 * 96, bElems: 96 * 128, inDtype: 'float32', outDtype: 'float32' } as const;

  it('plans a repeated problem once, and a forced split each time', () => {
    expect(matMulPlan(p, o, device, {})).toBe(matMulPlan(p, o, device, {}));
    expect(matMulPlan(p, o, device, {}, { a: 3, b: 5 })).not.toBe(matMulPlan(p, o, device, {}));
    let asked = 0;
    const force = () => (asked++, undefined);
    matMulPlan(p, o, device, { matmul: force });
    matMulPlan(p, o, device, { matmul: force });
    expect(asked).toBe(2);
  });

  it('hands each operand its own copy of an equal layout', () => {
    const a = matMulInputLayout(p, 'b', o, device, {}, Infinity)!;
    const b = matMulInputLayout(p, 'b', o, device, {}, Infinity)!;
    expect(a.length).toBeGreaterThan(1);
    expect(b).toEqual(a);
    expect(b).not.toBe(a);
    expect(b[0]).not.toBe(a[0]);
  });
});
