/**
 * Faults in codelet code: a compute() that throws or ends its thread, a
 * cycles() that returns no cycle count, a module that throws as it loads.
 * One structured error names where it happened and whose code it is, so the
 * CLI can blame a custom-op module ("custom op module X: ...") and keep
 * "internal error" for tilesim's own bugs. It crosses the worker boundary as
 * plain data (FaultRecord) and is rebuilt on the main thread.
 */

export type FaultKind = 'compute' | 'exit' | 'died' | 'timeout' | 'cycles' | 'import' | 'memory';

export interface FaultRecord {
  kind: FaultKind;
  /** What went wrong, e.g. `compute() threw Error: boom`. */
  what: string;
  /** The custom-op module the code comes from; undefined for tilesim's built-in codelets. */
  module?: string;
  codelet?: string;
  tile?: number;
  computeSet?: string;
  op?: string;
  /** Step of the run (the engine adds it). */
  step?: number;
}

export class CodeletFault extends Error {
  constructor(readonly record: FaultRecord) {
    super(formatFault(record));
    this.name = 'CodeletFault';
  }

  /** True when the fault is in a custom-op module's code, not in tilesim. */
  get inUserCode(): boolean {
    return this.record.module !== undefined;
  }

  /** The same fault with more context (fields already set are kept). */
  with(more: Partial<FaultRecord>): CodeletFault {
    return new CodeletFault({ ...more, ...this.record });
  }
}

export function formatFault(r: FaultRecord): string {
  const where = [
    r.step !== undefined ? `step ${r.step}` : '',
    r.tile !== undefined ? `tile ${r.tile}` : '',
    r.computeSet !== undefined ? `compute set '${r.computeSet}'` : '',
    r.op !== undefined ? `op '${r.op}'` : '',
  ].filter((s) => s !== '');
  const subject = r.codelet !== undefined ? `codelet '${r.codelet}'${where.length ? ` (${where.join(', ')})` : ''}: ` : where.length ? `${where.join(', ')}: ` : '';
  return `${r.module !== undefined ? `custom op module ${r.module}: ` : ''}${subject}${r.what}`;
}

/** Any thrown value as text: an Error, a string, undefined, an object whose toString throws. */
export function describeThrown(e: unknown): string {
  if (e instanceof Error || (typeof e === 'object' && e !== null && 'message' in e && 'name' in e)) {
    const err = e as Error;
    return `${String(err.name)}: ${String(err.message)}`;
  }
  if (typeof e === 'string') return `the string ${JSON.stringify(e)}`;
  if (e === undefined || e === null) return String(e);
  try {
    return `${typeof e} ${String(e)}`;
  } catch {
    return `a ${typeof e} that cannot be printed`;
  }
}

/** What a value looks like in a message: strings quoted, numbers as JavaScript prints them. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'bigint') return `the bigint ${v}n`;
  if (v === undefined || v === null) return String(v);
  return `a value of type ${typeof v}`;
}

/** A cycles() result is a cycle count: a finite, non-negative integer (a number, not a string). */
export function isCycleCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** Thrown by the stand-in for process.exit while a codelet runs (see VertexRunner). */
export class ExitCalled extends Error {
  constructor(readonly code: unknown) {
    super(`process.exit(${code === undefined ? '' : String(code)})`);
    this.name = 'ExitCalled';
  }
}

/** The custom-op module an error's stack runs through, if any: whose code threw it. */
export function moduleInStack(e: unknown, modules: Iterable<string>): string | undefined {
  const stack = typeof e === 'object' && e !== null && 'stack' in e ? String((e as { stack: unknown }).stack) : '';
  for (const m of modules) if (stack.includes(m)) return m;
  return undefined;
}
