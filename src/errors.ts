/**
 * Errors are part of the interface. A UserError means the config or command
 * line is wrong (exit 2); a RunError means a valid request could not be
 * carried out, e.g. out of tile memory (exit 1). Both carry a message fit to
 * print as is; the CLI never prints a stack trace for them.
 */
import type { SourceLocation } from './config/types.js';

export function formatLocation(loc: SourceLocation | undefined): string {
  return loc ? `${loc.file}:${loc.line}:${loc.col}: ` : '';
}

export class UserError extends Error {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly loc?: SourceLocation,
  ) {
    super(formatLocation(loc) + message);
    this.name = 'UserError';
  }
}

export class RunError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

/** Closest candidate by edit distance, for "did you mean" hints (null when nothing is close). */
export function closest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}
