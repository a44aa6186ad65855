import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeNpy, npyChunks } from '../../src/report/npy.js';
import { safeFileName, writeRunFolder, type RunFileContent } from '../../src/report/runfolder.js';
import { UserError } from '../../src/errors.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tilesim-runfolder-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1).replace(/\\/g, '/'))
    .sort();
}

describe('writeRunFolder', () => {
  it('writes files, including ones in subfolders, and no temp folder remains', async () => {
    const dir = join(root, 'sim-out', 'run');
    await writeRunFolder(
      dir,
      new Map<string, Buffer | string>([
        ['summary.json', '{"schemaVersion":1}'],
        ['outputs/x.npy', Buffer.from([1, 2, 3])],
        ['profile/ops.csv', 'a,b\n'],
        ['profile/steps.csv', 'c\n'],
      ]),
    );
    expect(await listTree(dir)).toEqual(['outputs/x.npy', 'profile/ops.csv', 'profile/steps.csv', 'summary.json']);
    expect(await readFile(join(dir, 'outputs/x.npy'))).toEqual(Buffer.from([1, 2, 3]));
    expect(await readFile(join(dir, 'summary.json'), 'utf8')).toBe('{"schemaVersion":1}');
    expect(await readdir(join(root, 'sim-out'))).toEqual(['run']);
  });

  it('replaces a previous folder completely', async () => {
    const dir = join(root, 'run');
    await writeRunFolder(dir, new Map([['old.txt', 'old'], ['summary.json', '1']]));
    await writeRunFolder(dir, new Map([['summary.json', '2']]));
    expect(await listTree(dir)).toEqual(['summary.json']);
    expect(await readFile(join(dir, 'summary.json'), 'utf8')).toBe('2');
    expect(await readdir(root)).toEqual(['run']);
  });

  it('streams iterable contents chunk by chunk', async () => {
    const dir = join(root, 'run');
    function* chunks(): Generator<string | Buffer> {
      for (let i = 0; i < 3000; i++) yield `${'x'.repeat(500)}${i}\n`;
      yield Buffer.from('end');
    }
    await writeRunFolder(dir, new Map([['trace.json', chunks()]]));
    const text = await readFile(join(dir, 'trace.json'), 'utf8');
    expect(text.startsWith('x'.repeat(500) + '0\n')).toBe(true);
    expect(text.endsWith('2999\nend')).toBe(true);
    expect(text.split('\n')).toHaveLength(3001);
  });

  it('writes an .npy as its header and a view of the data, small chunks and large ones in order', async () => {
    const dir = join(root, 'run');
    const data = Float32Array.from({ length: 600_000 }, (_, i) => i * 0.5 - 7);
    const small = new Int32Array([1, -2, 3]);
    const [head, body] = npyChunks(data, [600, 1000], 'float32');
    // the data chunk is the array's own bytes, not a copy
    expect(body.buffer).toBe(data.buffer);
    await writeRunFolder(
      dir,
      new Map<string, RunFileContent>([
        ['a.npy', [head, body]],
        ['b.npy', npyChunks(small, [3], 'int32')],
        ['mixed.bin', ['ab', new Uint8Array(2 << 20).fill(7), 'cd', Buffer.from('ef')]],
      ]),
    );
    expect(await readFile(join(dir, 'a.npy'))).toEqual(encodeNpy(data, [600, 1000], 'float32'));
    expect(await readFile(join(dir, 'b.npy'))).toEqual(encodeNpy(small, [3], 'int32'));
    const mixed = await readFile(join(dir, 'mixed.bin'));
    expect(mixed.length).toBe(6 + (2 << 20));
    expect(mixed.subarray(0, 3).toString('latin1')).toBe('ab\x07');
    expect(mixed.subarray(-5).toString('latin1')).toBe('\x07cdef');
  });

  it('on a failed write leaves no partial folder and the previous folder intact', async () => {
    const dir = join(root, 'run');
    await writeRunFolder(dir, new Map([['summary.json', 'previous'], ['outputs/y.npy', 'Y']]));
    // 'outputs' is a file, so writing 'outputs/x.npy' must fail after summary.json was written.
    const bad = new Map<string, string>([
      ['summary.json', 'new'],
      ['outputs', 'i am a file'],
      ['outputs/x.npy', 'x'],
    ]);
    await expect(writeRunFolder(dir, bad)).rejects.toThrow();
    expect(await readdir(root)).toEqual(['run']);
    expect(await listTree(dir)).toEqual(['outputs/y.npy', 'summary.json']);
    expect(await readFile(join(dir, 'summary.json'), 'utf8')).toBe('previous');
  });

  it('on a failed write with no previous folder leaves nothing', async () => {
    const dir = join(root, 'run');
    await expect(writeRunFolder(dir, new Map([['a', 'x'], ['a/b', 'y']]))).rejects.toThrow();
    expect(await readdir(root)).toEqual([]);
  });

  it('a throwing chunk iterator leaves nothing behind', async () => {
    const dir = join(root, 'run');
    function* failing(): Generator<string> {
      yield 'partial';
      throw new Error('engine crashed');
    }
    await expect(writeRunFolder(dir, new Map([['trace.json', failing()]]))).rejects.toThrow('engine crashed');
    expect(await readdir(root)).toEqual([]);
  });

  it('rejects paths that escape the folder', async () => {
    for (const p of ['../evil', '/abs', 'a/../b', '', 'a//b']) {
      await expect(writeRunFolder(join(root, 'run'), new Map([[p, 'x']]))).rejects.toThrow(/bad relative path/);
    }
    expect(await readdir(root)).toEqual([]);
  });

  it('refuses to replace a file with a folder', async () => {
    const dir = join(root, 'run');
    await writeFile(dir, 'not a folder');
    await expect(writeRunFolder(dir, new Map([['a', 'b']]))).rejects.toThrow(UserError);
    expect(await readFile(dir, 'utf8')).toBe('not a folder');
    expect(await readdir(root)).toEqual(['run']);
  });

  it('creates missing parent folders', async () => {
    const dir = join(root, 'deep', 'er', 'run');
    await mkdir(join(root, 'deep'));
    await writeRunFolder(dir, new Map([['a', 'b']]));
    expect(await readFile(join(dir, 'a'), 'utf8')).toBe('b');
  });
});

describe('safeFileName', () => {
  it('keeps safe characters and replaces the rest', () => {
    expect(safeFileName('conv1.weight_0-a')).toBe('conv1.weight_0-a');
    expect(safeFileName('/encoder/layer.0/MatMul:0')).toBe('_encoder_layer.0_MatMul_0');
    expect(safeFileName('Gradient___x')).toBe('Gradient___x');
    expect(safeFileName('a b\u00e9c')).toBe('a_b_c');
  });

  it('never returns an empty or dot-only name', () => {
    expect(safeFileName('')).toBe('_');
    expect(safeFileName('.')).toBe('_.');
    expect(safeFileName('..')).toBe('_..');
  });

  it('limits the length', () => {
    expect(safeFileName('x'.repeat(1000)).length).toBeLessThanOrEqual(200);
  });

  it('disambiguates collisions with a numeric suffix and records the name', () => {
    const taken = new Set<string>();
    expect(safeFileName('a/b', taken)).toBe('a_b');
    expect(safeFileName('a:b', taken)).toBe('a_b_1');
    expect(safeFileName('a_b', taken)).toBe('a_b_2');
    expect(safeFileName('a_b_1', taken)).toBe('a_b_1_1');
    expect([...taken]).toEqual(['a_b', 'a_b_1', 'a_b_2', 'a_b_1_1']);
  });

  it('treats names differing only in case as colliding (case-insensitive file systems)', () => {
    const taken = new Set(['W']);
    expect(safeFileName('w', taken)).toBe('w_1');
    taken.add('X'); // added by the caller
    expect(safeFileName('x', taken)).toBe('x_1');
  });
});
