import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeNpy, encodeNpy, type NpyDType } from '../../src/report/npy.js';

/** Bytes per the format spec: magic, version, LE header length, header text, data. */
function specBytes(headerDict: string, data: Buffer, version: 1 | 2 = 1): Buffer {
  const pre = version === 1 ? 10 : 12;
  let len = headerDict.length + 1;
  len += 64 - ((pre + len) % 64);
  const header = headerDict + ' '.repeat(len - headerDict.length - 1) + '\n';
  const lenField = Buffer.alloc(version === 1 ? 2 : 4);
  if (version === 1) lenField.writeUInt16LE(header.length);
  else lenField.writeUInt32LE(header.length);
  return Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY', 'latin1'), Buffer.from([version, 0]), lenField, Buffer.from(header, 'latin1'), data]);
}

function f32le(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

const SHAPES: number[][] = [[], [1], [7], [2, 3], [0], [3, 0, 2], [2, 1, 3, 1]];
const count = (s: number[]): number => s.reduce((a, b) => a * b, 1);

function sample(dtype: NpyDType, n: number): Float32Array | Int32Array | Uint16Array {
  if (dtype === 'float32') return Float32Array.from({ length: n }, (_, i) => (i - 3) * 0.37);
  if (dtype === 'int32') return Int32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * i * 1000003);
  return Uint16Array.from({ length: n }, (_, i) => (i * 0x1357) & 0xffff);
}

describe('encodeNpy / decodeNpy', () => {
  it('writes the exact bytes the format spec gives for a small float32 array', () => {
    const enc = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], 'float32');
    // numpy >= 1.24 adds 21 - len(repr(shape[0])) spaces after the dict; here that stays within the first 64-byte block.
    const want = specBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + ' '.repeat(20), f32le([1, 2, 3, 4, 5, 6]));
    expect(enc.subarray(0, 10)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 118, 0]));
    expect(enc.toString('latin1', 10, 128)).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + ' '.repeat(58) + '\n');
    expect(enc).toEqual(want);
  });

  it('matches np.save byte for byte (fixtures from numpy 2.4)', () => {
    const f16 = Buffer.from(
      '934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a003e00c00042007c',
      'hex',
    );
    // np.array([[1.5, -2], [3, inf]], np.float16)
    expect(encodeNpy(new Uint16Array([0x3e00, 0xc000, 0x4200, 0x7c00]), [2, 2], 'float16')).toEqual(f16);
    const i32 = Buffer.from(
      '934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c20322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200afdfffffffeffffffffffffff000000000100000002000000',
      'hex',
    );
    expect(encodeNpy(new Int32Array([-3, -2, -1, 0, 1, 2]), [1, 2, 3], 'int32')).toEqual(i32);
    // Fifteen axes: numpy's growth padding pushes the header into a second 64-byte block.
    const long = Buffer.from(
      '934e554d50590100b6007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c20312c2031292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000080bf',
      'hex',
    );
    expect(encodeNpy(new Float32Array([-1]), Array(15).fill(1), 'float32')).toEqual(long);
  });

  for (const dtype of ['float32', 'int32', 'float16'] as const) {
    for (const shape of SHAPES) {
      it(`round trips ${dtype} shape [${shape.join(', ')}] with data 64-byte aligned`, () => {
        const data = sample(dtype, count(shape));
        const enc = encodeNpy(data, shape, dtype);
        const headerLen = enc.readUInt16LE(8);
        expect((10 + headerLen) % 64).toBe(0);
        expect(enc[10 + headerLen - 1]).toBe(0x0a);
        expect(enc.length).toBe(10 + headerLen + data.byteLength);
        const dec = decodeNpy(enc, 'x.npy');
        expect(dec.dtype).toBe(dtype);
        expect(dec.shape).toEqual(shape);
        expect(dec.data).toEqual(data);
      });
    }
  }

  it('round trips random arrays (property)', () => {
    const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 });
    fc.assert(
      fc.property(shapeArb, fc.constantFrom<NpyDType>('float32', 'int32', 'float16'), fc.integer(), (shape, dtype, seed) => {
        const n = count(shape);
        let data: Float32Array | Int32Array | Uint16Array;
        if (dtype === 'float32') data = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed + i) * 1e6));
        else if (dtype === 'int32') data = Int32Array.from({ length: n }, (_, i) => (seed * 31 + i * 7919) | 0);
        else data = Uint16Array.from({ length: n }, (_, i) => (seed + i * 40503) & 0xffff);
        const enc = encodeNpy(data, shape, dtype);
        expect((10 + enc.readUInt16LE(8)) % 64).toBe(0);
        const dec = decodeNpy(enc);
        expect(dec.shape).toEqual(shape);
        expect(dec.dtype).toBe(dtype);
        expect(Buffer.from(dec.data.buffer)).toEqual(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      }),
    );
  });

  it('round trips float32 bit patterns including NaN, -0 and infinities', () => {
    fc.assert(
      fc.property(fc.array(fc.float()), (values) => {
        const data = Float32Array.from(values);
        const dec = decodeNpy(encodeNpy(data, [data.length], 'float32'));
        expect(Buffer.from(dec.data.buffer)).toEqual(Buffer.from(data.buffer));
      }),
    );
  });

  it('decodes a Buffer slice at an unaligned offset', () => {
    const enc = encodeNpy(new Float32Array([1.25, -7]), [2], 'float32');
    const big = Buffer.concat([Buffer.from([0]), enc]);
    expect(Array.from(decodeNpy(big.subarray(1)).data)).toEqual([1.25, -7]);
  });

  it('reads <f8 as float32 and <i8 as int32 (numpy fixtures)', () => {
    const f8 = Buffer.from(
      '934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000f03f00000000000004c0a55cc3f129633d48',
      'hex',
    );
    const a = decodeNpy(f8, 'f8.npy');
    expect(a.dtype).toBe('float32');
    expect(a.shape).toEqual([3]);
    expect(Array.from(a.data)).toEqual([1, -2.5, Infinity]); // 1e40 overflows float32
    const i8 = Buffer.from(
      '934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0100000000000000feffffffffffffffffffff7f0000000000000080ffffffff',
      'hex',
    );
    const b = decodeNpy(i8, 'i8.npy');
    expect(b.dtype).toBe('int32');
    expect(b.shape).toEqual([2, 2]);
    expect(Array.from(b.data)).toEqual([1, -2, 2147483647, -2147483648]);
  });

  it('rejects <i8 values outside int32, naming the file', () => {
    const data = Buffer.alloc(8);
    data.writeBigInt64LE(1n << 40n);
    expect(() => decodeNpy(specBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", data), 'big.npy')).toThrow(/big\.npy.*does not fit in int32/);
  });

  it('reads version 2.0 headers', () => {
    const buf = specBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32le([3, 4]), 2);
    const a = decodeNpy(buf, 'v2.npy');
    expect(a.shape).toEqual([2]);
    expect(Array.from(a.data)).toEqual([3, 4]);
  });

  it('writes a version 2.0 header when the header does not fit in 64 KiB', () => {
    const shape = Array(25000).fill(1);
    const enc = encodeNpy(new Float32Array([5]), shape, 'float32');
    expect(enc[6]).toBe(2);
    expect((12 + enc.readUInt32LE(8)) % 64).toBe(0);
    const dec = decodeNpy(enc);
    expect(dec.shape).toEqual(shape);
    expect(Array.from(dec.data)).toEqual([5]);
  });

  it('accepts header keys in any order', () => {
    const buf = specBytes("{'shape': (1, 2), 'fortran_order': False, 'descr': '<i4'}", Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]));
    expect(Array.from(decodeNpy(buf).data)).toEqual([1, 2]);
  });

  describe('errors name the file and the problem', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['fortran order', specBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f32le([1, 2, 3, 4])), /fortran_order/],
      ['big endian', specBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", f32le([1])), /big endian/],
      ['unsupported dtype', specBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", Buffer.alloc(8)), /unsupported dtype '<c8'/],
      ['object dtype', specBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", Buffer.alloc(8)), /unsupported dtype '\|O'/],
      ['truncated data', specBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32le([1, 2, 3])), /truncated data.*needs 24 bytes.*has 12/],
      ['bad magic', Buffer.from('PK\u0003\u0004 not numpy at all'), /magic/],
      ['truncated header', encodeNpy(new Float32Array(1), [1], 'float32').subarray(0, 40), /truncated header/],
      ['unknown version', (() => { const b = Buffer.from(encodeNpy(new Float32Array(1), [1], 'float32')); b[6] = 9; return b; })(), /version 9\.0/],
    ];
    for (const [what, buf, re] of cases) {
      it(what, () => {
        let err: unknown;
        try {
          decodeNpy(buf, '/data/in/weights.npy');
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).message).toContain('/data/in/weights.npy');
        expect((err as Error).message).toMatch(re);
      });
    }
  });

  it('encode rejects data that does not match the shape or dtype', () => {
    expect(() => encodeNpy(new Float32Array(5), [2, 3], 'float32')).toThrow(/6 elements.*5/);
    expect(() => encodeNpy(new Float32Array(2), [2], 'int32')).toThrow(/Int32Array/);
    expect(() => encodeNpy(new Float32Array(0), [-1], 'float32')).toThrow(/bad shape/);
  });
});
