/**
 * NumPy .npy files (format versions 1.0 / 2.0 / 3.0, C order, little endian).
 *
 * Writing: '<f4', '<i4', '<f2' (float16 as raw IEEE half bits in a Uint16Array),
 * version 1.0 unless the header is too long for it (then 2.0). The header is
 * padded with spaces and ends in '\n' so the data starts at a multiple of 64
 * bytes, byte for byte as numpy.lib.format (>= 1.24) writes it. npyChunks
 * gives the header and a view of the data (no copy on a little-endian host)
 * for the run folder to write one after the other; encodeNpy joins them.
 *
 * Reading: the same dtypes plus '<f8' (read as float32) and '<i8' (read as
 * int32, values must fit). Any problem throws an Error naming the file.
 */
import { endianness } from 'node:os';

export type NpyDType = 'float32' | 'int32' | 'float16';
export type NpyData = Float32Array | Int32Array | Uint16Array;

export type NpyArray =
  | { dtype: 'float32'; data: Float32Array; shape: number[] }
  | { dtype: 'int32'; data: Int32Array; shape: number[] }
  | { dtype: 'float16'; data: Uint16Array; shape: number[] };

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const ALIGN = 64;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

const DESCR: Record<NpyDType, string> = { float32: '<f4', int32: '<i4', float16: '<f2' };
const ITEM_BYTES: Record<NpyDType, number> = { float32: 4, int32: 4, float16: 2 };

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Python repr of a shape tuple: (), (5,), (2, 3). */
function shapeRepr(shape: readonly number[]): string {
  if (shape.length === 0) return '()';
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The header dict text exactly as numpy writes it (before padding). */
export function npyHeaderDict(shape: readonly number[], dtype: NpyDType): string {
  return `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeRepr(shape)}, }`;
}

/** The file as one Buffer (a copy of the data: npyChunks writes without it). */
export function encodeNpy(data: NpyData, shape: readonly number[], dtype: NpyDType): Buffer {
  return Buffer.concat(npyChunks(data, shape, dtype));
}

/**
 * The file as two chunks, header and data, to be written one after the
 * other: the data chunk is a view of `data` itself on a little-endian host
 * (no copy), so writing a large tensor costs one write of its bytes.
 */
export function npyChunks(data: NpyData, shape: readonly number[], dtype: NpyDType): [Buffer, Uint8Array] {
  const descr = DESCR[dtype];
  if (descr === undefined) throw new Error(`encodeNpy: unsupported dtype '${String(dtype)}'`);
  const ok =
    (dtype === 'float32' && data instanceof Float32Array) ||
    (dtype === 'int32' && data instanceof Int32Array) ||
    (dtype === 'float16' && data instanceof Uint16Array);
  if (!ok) throw new Error(`encodeNpy: dtype ${dtype} needs a ${dtype === 'float16' ? 'Uint16Array of half bits' : dtype === 'float32' ? 'Float32Array' : 'Int32Array'}, got ${data.constructor.name}`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`encodeNpy: bad shape [${shape.join(', ')}]`);
  }
  const count = elementCount(shape);
  if (count !== data.length) {
    throw new Error(`encodeNpy: shape [${shape.join(', ')}] has ${count} elements but the data has ${data.length}`);
  }

  // Like numpy >= 1.24, leave room after the dict for the first axis to grow to
  // GROWTH_AXIS_MAX_DIGITS (21) digits, so files match np.save byte for byte.
  const dict = npyHeaderDict(shape, dtype) + (shape.length > 0 ? ' '.repeat(Math.max(0, 21 - String(shape[0]).length)) : '');
  // numpy: padlen = 64 - ((magic + version + lenfield + len(dict) + 1) % 64); the +1 is the '\n'.
  let version = 1;
  let preamble = MAGIC.length + 2 + 2;
  let padded = dict.length + 1;
  padded += ALIGN - ((preamble + padded) % ALIGN);
  if (padded > 0xffff) {
    version = 2;
    preamble = MAGIC.length + 2 + 4;
    padded = dict.length + 1;
    padded += ALIGN - ((preamble + padded) % ALIGN);
  }
  const header = dict + ' '.repeat(padded - dict.length - 1) + '\n';

  const dataBytes = count * ITEM_BYTES[dtype];
  const head = Buffer.alloc(preamble + header.length);
  MAGIC.copy(head, 0);
  head[6] = version;
  head[7] = 0;
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  head.write(header, preamble, 'latin1');
  if (LITTLE_ENDIAN_HOST) return [head, new Uint8Array(data.buffer, data.byteOffset, dataBytes)];
  const body = Buffer.alloc(dataBytes);
  for (let i = 0; i < count; i++) {
    const at = i * ITEM_BYTES[dtype];
    if (dtype === 'float32') body.writeFloatLE(data[i], at);
    else if (dtype === 'int32') body.writeInt32LE(data[i], at);
    else body.writeUInt16LE(data[i], at);
  }
  return [head, body];
}

interface ParsedHeader {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

function parseHeader(text: string, fail: (why: string) => never): ParsedHeader {
  const t = text.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) fail(`header is not a Python dict: ${JSON.stringify(text.slice(0, 80))}`);
  const descr = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(t);
  if (!descr) {
    if (/['"]descr['"]\s*:\s*[[({]/.test(t)) fail('unsupported dtype (structured dtype)');
    fail("header has no 'descr'");
  }
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)\b/.exec(t);
  if (!fortran) fail("header has no 'fortran_order'");
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(t);
  if (!shapeM) fail("header has no 'shape'");
  const parts = shapeM[1]
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const shape = parts.map((s) => {
    const m = /^(\d+)L?$/.exec(s);
    if (!m) fail(`bad shape (${shapeM[1]})`);
    const d = Number(m[1]);
    if (!Number.isSafeInteger(d)) fail(`bad shape (${shapeM[1]})`);
    return d;
  });
  return { descr: descr[2], fortranOrder: fortran[1] === 'True', shape };
}

interface ReadType {
  dtype: NpyDType;
  itemBytes: number;
}

const READ_TYPES: Record<string, ReadType> = {
  '<f4': { dtype: 'float32', itemBytes: 4 },
  '<i4': { dtype: 'int32', itemBytes: 4 },
  '<f2': { dtype: 'float16', itemBytes: 2 },
  '<f8': { dtype: 'float32', itemBytes: 8 },
  '<i8': { dtype: 'int32', itemBytes: 8 },
};

export function decodeNpy(buf: Buffer | Uint8Array, file = '<buffer>'): NpyArray {
  const fail: (why: string) => never = (why) => {
    throw new Error(`${file}: not a readable .npy file: ${why}`);
  };
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 10 || !b.subarray(0, 6).equals(MAGIC)) fail('missing the \\x93NUMPY magic');
  const major = b[6];
  let preamble: number;
  let headerLen: number;
  if (major === 1) {
    preamble = 10;
    headerLen = b.readUInt16LE(8);
  } else if (major === 2 || major === 3) {
    if (b.length < 12) fail('truncated header');
    preamble = 12;
    headerLen = b.readUInt32LE(8);
  } else {
    return fail(`unsupported format version ${major}.${b[7]}`);
  }
  if (b.length < preamble + headerLen) fail(`truncated header (needs ${preamble + headerLen} bytes, file has ${b.length})`);
  const header = b.toString(major === 3 ? 'utf8' : 'latin1', preamble, preamble + headerLen);
  const h = parseHeader(header, fail);

  if (h.fortranOrder) fail('fortran_order is True (only C order is supported)');
  const descr = h.descr.startsWith('=') && LITTLE_ENDIAN_HOST ? '<' + h.descr.slice(1) : h.descr;
  if (descr.startsWith('>') || (descr.startsWith('=') && !LITTLE_ENDIAN_HOST)) {
    fail(`big endian dtype '${h.descr}' (only little endian is supported)`);
  }
  const rt = READ_TYPES[descr];
  if (!rt) fail(`unsupported dtype '${h.descr}' (supported: <f4, <i4, <f2, <f8, <i8)`);

  const count = elementCount(h.shape);
  const dataStart = preamble + headerLen;
  const need = count * rt.itemBytes;
  const have = b.length - dataStart;
  if (have < need) {
    fail(`truncated data: shape (${h.shape.join(', ')}) of '${h.descr}' needs ${need} bytes, file has ${have}`);
  }

  const shape = h.shape;
  switch (descr) {
    case '<f4': {
      const data = new Float32Array(count);
      copyLE(b, dataStart, data, (i) => b.readFloatLE(dataStart + 4 * i));
      return { dtype: 'float32', data, shape };
    }
    case '<i4': {
      const data = new Int32Array(count);
      copyLE(b, dataStart, data, (i) => b.readInt32LE(dataStart + 4 * i));
      return { dtype: 'int32', data, shape };
    }
    case '<f2': {
      const data = new Uint16Array(count);
      copyLE(b, dataStart, data, (i) => b.readUInt16LE(dataStart + 2 * i));
      return { dtype: 'float16', data, shape };
    }
    case '<f8': {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = b.readDoubleLE(dataStart + 8 * i);
      return { dtype: 'float32', data, shape };
    }
    default: {
      // '<i8'
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = b.readBigInt64LE(dataStart + 8 * i);
        if (v > 2147483647n || v < -2147483648n) fail(`int64 value ${v} at element ${i} does not fit in int32`);
        data[i] = Number(v);
      }
      return { dtype: 'int32', data, shape };
    }
  }
}

function copyLE(b: Buffer, start: number, out: NpyData, read: (i: number) => number): void {
  if (LITTLE_ENDIAN_HOST) {
    // Copy bytes: the source offset need not be aligned for a typed-array view.
    b.copy(new Uint8Array(out.buffer, out.byteOffset, out.byteLength), 0, start, start + out.byteLength);
  } else {
    for (let i = 0; i < out.length; i++) out[i] = read(i);
  }
}
