import { describe, expect, it } from 'vitest';
import { elementsPerTile, firstRowEndingAfter, intervalElements, intervalList, tensorIntervals, tensorIntervalRows, type IntervalTable } from '../../sim/intervals.js';

/** Tensor 0: [0, 4) on tile 2, [4, 10) on tile 5; tensor 1: none; tensor 2: [0, 3) on tile 1. */
const table: IntervalTable = {
  start: Int32Array.from([0, 2, 2, 3]),
  tile: Int32Array.from([2, 5, 1]),
  begin: Int32Array.from([0, 4, 0]),
  end: Int32Array.from([4, 10, 3]),
  offset: Int32Array.from([64, 0, 8]),
};

describe('IntervalTable', () => {
  it('finds the row holding an element within the tensor, or the row after its last', () => {
    expect([0, 3, 4, 9, 10].map((e) => firstRowEndingAfter(table, 0, e))).toEqual([0, 0, 1, 1, 2]);
    expect(firstRowEndingAfter(table, 1, 0)).toBe(2);
    expect(firstRowEndingAfter(table, 2, 2)).toBe(2);
  });

  it("gives a tensor's intervals as the program's records", () => {
    expect(intervalList(tensorIntervalRows(table, 0))).toEqual([
      { tile: 2, begin: 0, end: 4, offset: 64 },
      { tile: 5, begin: 4, end: 10, offset: 0 },
    ]);
    expect(intervalList(tensorIntervalRows(table, 1))).toEqual([]);
    expect(intervalList(tensorIntervalRows(table, 2))).toEqual([{ tile: 1, begin: 0, end: 3, offset: 8 }]);
  });

  it("gives a tensor's rows as views of the table's columns (the DeviceProgram's TensorIntervals)", () => {
    const t0 = tensorIntervalRows(table, 0);
    expect(t0.count).toBe(2);
    expect(t0.tile.buffer).toBe(table.tile.buffer);
    expect([...t0.tile, ...t0.offset]).toEqual([2, 5, 64, 0]);
    expect(tensorIntervalRows(table, 1).count).toBe(0);
    expect(intervalList(tensorIntervalRows(table, 2))).toEqual(intervalList(tensorIntervalRows(table, 2)));
  });

  it('makes columns from records and records from columns, and sums elements (per tile)', () => {
    const records = [
      { tile: 3, begin: 0, end: 2, offset: 8 },
      { tile: 1, begin: 2, end: 7, offset: 0 },
      { tile: 3, begin: 7, end: 8, offset: 16 },
    ];
    const iv = tensorIntervals(records);
    expect(intervalList(iv)).toEqual(records);
    expect(intervalElements(iv)).toBe(8);
    expect([...elementsPerTile(iv)]).toEqual([
      [3, 3],
      [1, 5],
    ]);
  });
});
