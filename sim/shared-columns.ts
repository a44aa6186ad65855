/**
 * A program's columnar tables in shared memory, so pool workers map them
 * instead of copying them: the pool shares the compute sets' vertex tables
 * (exchanges reach the workers as copy plans in tile memory already). A
 * structured clone (a Worker's workerData) copies a typed array over an
 * ordinary ArrayBuffer, once per worker, but gives a view of the same memory
 * for one over a SharedArrayBuffer. shareColumns moves every column of the
 * tables it is given into a few large SharedArrayBuffers, once, before the
 * pool starts: each worker then maps them, and the main thread keeps only
 * the shared copy (the old columns become garbage).
 */

type Column = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

/** Most bytes in one SharedArrayBuffer (a column longer than this gets one of its own). */
const CHUNK_BYTES = 256 * 2 ** 20;

function isColumn(v: unknown): v is Column {
  return ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array);
}

/** Whether a column is a view of shared memory (a worker given it maps it). */
export function isShared(v: ArrayBufferView): boolean {
  return v.buffer instanceof SharedArrayBuffer;
}

/**
 * Every typed-array property of every table, not already in shared memory,
 * becomes a view of the same values in a SharedArrayBuffer (in place: the
 * tables are changed, their values are not). Columns are packed, 8-byte
 * aligned, into buffers of at most `chunkBytes`. Returns the bytes moved.
 */
export function shareColumns(tables: readonly object[], chunkBytes = CHUNK_BYTES): number {
  const todo: { table: Record<string, unknown>; key: string; column: Column }[] = [];
  for (const table of tables) {
    const rec = table as Record<string, unknown>;
    for (const key of Object.keys(rec)) {
      const v = rec[key];
      if (isColumn(v) && !isShared(v)) todo.push({ table: rec, key, column: v });
    }
  }
  let moved = 0;
  for (let i = 0; i < todo.length; ) {
    // The columns [i, j) fill one buffer.
    let bytes = 0;
    let j = i;
    while (j < todo.length && (j === i || bytes + align(todo[j].column.byteLength) <= chunkBytes)) bytes += align(todo[j++].column.byteLength);
    const buffer = new SharedArrayBuffer(bytes);
    let at = 0;
    for (let k = i; k < j; k++) {
      const { table, key, column } = todo[k];
      const view = new (column.constructor as new (b: SharedArrayBuffer, offset: number, length: number) => Column)(buffer, at, column.length);
      view.set(column);
      table[key] = view;
      at += align(column.byteLength);
    }
    moved += bytes;
    i = j;
  }
  return moved;
}

function align(bytes: number): number {
  return (bytes + 7) & ~7;
}
