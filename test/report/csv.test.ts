import { describe, expect, it } from 'vitest';
import { profileCsvs, toCsv } from '../../src/report/csv.js';

/** A small RFC 4180 parser, to check that what toCsv writes reads back. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
      } else if (c === '"') {
        quoted = false;
        i++;
      } else {
        field += c;
        i++;
      }
    } else if (c === '"') {
      quoted = true;
      i++;
    } else if (c === ',') {
      row.push(field);
      field = '';
      i++;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i += c === '\r' ? 2 : 1;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

describe('toCsv', () => {
  it('quotes commas, quotes and newlines per RFC 4180', () => {
    const csv = toCsv([{ name: 'a,b', note: 'say "hi"', text: 'line1\nline2', cr: 'x\ry', plain: 'ok' }]);
    expect(csv).toBe('name,note,text,cr,plain\n"a,b","say ""hi""","line1\nline2","x\ry",ok\n');
  });

  it('writes numbers, booleans and empty values', () => {
    expect(toCsv([{ a: 1.5, b: true, c: null, d: undefined, e: -0, f: 1e21 }])).toBe('a,b,c,d,e,f\n1.5,true,,,0,1e+21\n');
  });

  it('uses the given columns in order and fills missing keys', () => {
    expect(toCsv([{ b: 2, a: 1, z: 9 }, { a: 3 }], ['a', 'b'])).toBe('a,b\n1,2\n3,\n');
  });

  it('defaults to the union of keys in first-seen order', () => {
    expect(toCsv([{ a: 1 }, { b: 2, a: 3 }])).toBe('a,b\n1,\n3,2\n');
  });

  it('quotes header names too, and reads back with an RFC 4180 parser', () => {
    const rows = [{ 'x,y': 'he said "a,b"\r\nthen left', n: 3 }];
    expect(parseCsv(toCsv(rows))).toEqual([['x,y', 'n'], ['he said "a,b"\r\nthen left', '3']]);
  });

  it('writes just the header for no rows', () => {
    expect(toCsv([], ['a', 'b'])).toBe('a,b\n');
  });
});

describe('profileCsvs', () => {
  it('returns the three tables with fixed columns', () => {
    const m = profileCsvs({
      steps: [
        { step: 0, loss: 2.5, cycles: 100, compute: 60, exchange: 20, sync: 15, streamCopy: 5 },
        { step: 1, cycles: 90, compute: 60, exchange: 20, sync: 10, streamCopy: 0 },
      ],
      ops: [{ name: 'MatMul,1', type: 'MatMul', domain: 'ai.onnx', compute: 50, exchange: 10, sync: 5, flops: 1024, memoryBytes: 4096 }],
      tiles: [],
    });
    expect([...m.keys()]).toEqual(['profile/steps.csv', 'profile/ops.csv', 'profile/tiles.csv']);
    expect(m.get('profile/steps.csv')).toBe('step,loss,cycles,compute,exchange,sync,streamCopy\n0,2.5,100,60,20,15,5\n1,,90,60,20,10,0\n');
    expect(m.get('profile/ops.csv')).toBe('name,type,domain,compute,exchange,sync,flops,memoryBytes\n"MatMul,1",MatMul,ai.onnx,50,10,5,1024,4096\n');
    expect(m.get('profile/tiles.csv')).toBe('tile,bytes,computeCycles,exchangeBytes,alwaysLive,temporaries,code,vertexState,sentBytes,receivedBytes\n');
  });

  it('adds a streamingMemory column after streamCopy (steps) and sync (ops) only when a row has one', () => {
    const m = profileCsvs({
      steps: [
        { step: 0, cycles: 100, compute: 50, exchange: 20, sync: 15, streamCopy: 5, streamingMemory: 10 },
        { step: 1, cycles: 90, compute: 60, exchange: 20, sync: 10, streamCopy: 0 },
      ],
      ops: [
        { name: 'Adam', type: 'AdamUpdater', domain: 'ai.graphcore', compute: 50, exchange: 10, sync: 5, streamingMemory: 7, flops: 8, memoryBytes: 64 },
        { name: 'Relu', type: 'Relu', domain: 'ai.onnx', compute: 5, exchange: 0, sync: 1, flops: 4, memoryBytes: 16 },
      ],
      tiles: [],
    });
    expect(m.get('profile/steps.csv')).toBe('step,loss,cycles,compute,exchange,sync,streamCopy,streamingMemory\n0,,100,50,20,15,5,10\n1,,90,60,20,10,0,\n');
    expect(m.get('profile/ops.csv')).toBe('name,type,domain,compute,exchange,sync,streamingMemory,flops,memoryBytes\nAdam,AdamUpdater,ai.graphcore,50,10,5,7,8,64\nRelu,Relu,ai.onnx,5,0,1,,4,16\n');
  });
});
