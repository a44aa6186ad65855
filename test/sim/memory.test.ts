/** TileMemory: one shared buffer, every tile's bytes back to back at 8-byte-aligned bases. */
import { describe, expect, it } from 'vitest';
import { TileMemory, makeView } from '../../sim/memory.js';

describe('TileMemory layout', () => {
  it('places each tile at an 8-byte-aligned base and sizes the buffer to fit', () => {
    // tile 0: 10 bytes -> padded to 16; tile 1 at 16, 24 bytes; tile 2 at 40, 0 bytes; tile 3 at 40, 5 bytes -> 8
    const m = new TileMemory([10, 24, 0, 5]);
    expect(m.tileBase).toEqual([0, 16, 40, 40]);
    expect(m.buffer.byteLength).toBe(48);
    expect(m.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('has a non-empty buffer even with nothing allocated', () => {
    expect(new TileMemory([]).buffer.byteLength).toBe(8);
    expect(new TileMemory([0, 0]).buffer.byteLength).toBe(8);
  });

  it('shares a buffer it is given (how pool workers see the same memory)', () => {
    const a = new TileMemory([8, 8]);
    const b = new TileMemory([8, 8], a.buffer);
    (a.view(1, { offset: 4, count: 1, dtype: 'float32' }) as Float32Array)[0] = 2.5;
    expect((b.view(1, { offset: 4, count: 1, dtype: 'float32' }) as Float32Array)[0]).toBe(2.5);
  });
});

describe('TileMemory.view', () => {
  const m = new TileMemory([10, 24, 0, 5]);

  it('returns a view at tile base + offset with the element type of the region', () => {
    const f = m.view(1, { offset: 4, count: 2, dtype: 'float32' });
    expect(f).toBeInstanceOf(Float32Array);
    expect(f.byteOffset).toBe(16 + 4);
    expect(f.length).toBe(2);

    const h = m.view(1, { offset: 12, count: 6, dtype: 'float16' });
    expect(h).toBeInstanceOf(Uint16Array); // float16 as raw bits
    expect(h.byteOffset).toBe(28);
    expect(h.length).toBe(6); // ends exactly at the tile's 24 bytes

    const i = m.view(0, { offset: 0, count: 2, dtype: 'int32' });
    expect(i).toBeInstanceOf(Int32Array);
    expect(i.byteOffset).toBe(0);

    const u = m.view(3, { offset: 1, count: 4, dtype: 'uint8' });
    expect(u).toBeInstanceOf(Uint8Array);
    expect(u.byteOffset).toBe(41);
  });

  it('writes through a view land in the tile\'s bytes, and nowhere else', () => {
    const mem = new TileMemory([8, 16]);
    (mem.view(1, { offset: 8, count: 2, dtype: 'float32' }) as Float32Array).set([1, -2]);
    const expected = new Float32Array([1, -2]);
    expect([...mem.bytes(1, 8, 8)]).toEqual([...new Uint8Array(expected.buffer)]);
    expect([...mem.bytes(1, 0, 8)]).toEqual(new Array(8).fill(0));
    expect([...mem.bytes(0, 0, 8)]).toEqual(new Array(8).fill(0));
  });

  it('names the tile, the byte range and the tile size when a region runs past the end', () => {
    // tile 1 has 24 bytes: [20, 28) is out
    expect(() => m.view(1, { offset: 20, count: 2, dtype: 'float32' })).toThrow(
      'memory access out of bounds: tile 1, bytes [20, 28) but the tile has 24 bytes allocated',
    );
    // tile 0 has 10 bytes; a 1-byte overrun is caught
    expect(() => m.view(0, { offset: 0, count: 11, dtype: 'uint8' })).toThrow(/tile 0, bytes \[0, 11\).*10 bytes/);
  });

  it('rejects negative offsets and tiles that do not exist', () => {
    expect(() => m.view(1, { offset: -4, count: 1, dtype: 'float32' })).toThrow(/tile 1, bytes \[-4, 0\)/);
    expect(() => m.view(4, { offset: 0, count: 1, dtype: 'uint8' })).toThrow('memory access out of bounds: tile 4, bytes [0, 1) but the tile has 0 bytes allocated');
    expect(() => m.view(-1, { offset: 0, count: 1, dtype: 'uint8' })).toThrow(/tile -1/);
    // a tile with 0 bytes allocated has no room for anything
    expect(() => m.view(2, { offset: 0, count: 1, dtype: 'uint8' })).toThrow(/tile 2.*0 bytes allocated/);
  });

  it('allows an empty view at the very end of a tile', () => {
    expect(m.view(1, { offset: 24, count: 0, dtype: 'float32' }).length).toBe(0);
  });
});

describe('makeView', () => {
  it('maps each device dtype to its typed array', () => {
    const buf = new ArrayBuffer(16);
    expect(makeView('float32', buf, 4, 3)).toBeInstanceOf(Float32Array);
    expect(makeView('int32', buf, 0, 4)).toBeInstanceOf(Int32Array);
    expect(makeView('float16', buf, 2, 7)).toBeInstanceOf(Uint16Array);
    expect(makeView('uint8', buf, 5, 11)).toBeInstanceOf(Uint8Array);
    expect(makeView('float16', buf, 2, 7).byteOffset).toBe(2);
  });
});

describe('TileMemory.release', () => {
  it('hands a released WebAssembly memory to the next one of its size, every byte its user could write zeroed', async () => {
    const { kernelModule } = await import('../../sim/wasm/kernels.js');
    const kernels = await kernelModule();
    const tiles = [70000, 1000, 123456];
    const a = new TileMemory(tiles, { kernels, threads: 2, slot: 0, planRecords: 100 });
    const used = a.plans.byteOffset + a.plans.byteLength;
    new Uint8Array(a.buffer, 0, used).fill(0xff);
    a.release();
    a.release(); // twice is once
    const b = new TileMemory(tiles, { kernels, threads: 2, slot: 0, planRecords: 100 });
    expect(b.shared).toBe(a.shared);
    expect(new Uint8Array(b.buffer).every((x) => x === 0)).toBe(true);
    // Taken: the next memory of that size is a fresh one.
    const c = new TileMemory(tiles, { kernels, threads: 2, slot: 0, planRecords: 100 });
    expect(c.shared).not.toBe(a.shared);
    // Another size does not take it.
    b.release();
    const d = new TileMemory([64], { kernels, threads: 1, slot: 0 });
    expect(d.shared).not.toBe(b.shared);
  });
});
