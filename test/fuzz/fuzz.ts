/**
 * Shared pieces of the fuzz suite (test/fuzz/*.test.ts): how many cases a
 * property runs (FUZZ_RUNS; `npm test` runs the defaults, `npm run fuzz`
 * ten times as many), the replay of kept failing cases, and the one rule
 * every fuzzed input must obey: tilesim either accepts it or refuses it with
 * a UserError (a clear message, exit 2), never another exception, and never
 * with a Node warning on stderr.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { UserError } from '../../src/errors.js';

const FIXED_SEED = 20261206;

/** Runs of a property: its share of npm test's cases, times FUZZ_SCALE (npm run fuzz: 10). */
export function runs(base: number): number {
  return Math.round(base * (Number(process.env.FUZZ_SCALE) || 1));
}

export interface KeptCase {
  property: string;
  /** The shrunk counterexample fast-check printed (the value itself: a seed would replay other cases once the arbitrary changes). */
  example: unknown;
  /** What it found, and where the fix is tested by hand. */
  found: string;
}

/** Failing cases found by fuzzing, replayed by every run (test/fuzz/regressions.json). */
export function keptCases(property: string): KeptCase[] {
  const all = JSON.parse(readFileSync(path.join(import.meta.dirname, 'regressions.json'), 'utf8')) as { cases: KeptCase[] };
  return all.cases.filter((s) => s.property === property);
}

/** Run `property`: its kept failing cases first, then `numRuns` fresh cases. */
export async function check<T>(name: string, arb: fc.Arbitrary<T>, predicate: (v: T) => Promise<void> | void, numRuns: number): Promise<void> {
  const prop = fc.asyncProperty(arb, async (v) => {
    await predicate(v);
  });
  for (const k of keptCases(name)) await predicate(k.example as T);
  // npm test uses a fixed seed (the same cases every run, so CI cannot flake on a new find);
  // npm run fuzz (FUZZ_SCALE set) draws a fresh seed each time, or FUZZ_SEED's.
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : process.env.FUZZ_SCALE ? undefined : FIXED_SEED;
  await fc.assert(prop, { numRuns, ...(seed !== undefined ? { seed } : {}) });
}

/** The rule: `f` returns, or throws a UserError whose message names `where` (the file). Anything else is a bug. */
export async function acceptsOrRefuses<R>(where: string, f: () => Promise<R> | R): Promise<R | UserError> {
  // A Node warning on stderr (a library's complaint about the input) is not a clear error either.
  const warnings: string[] = [];
  const emit = process.emitWarning;
  process.emitWarning = ((w: string | Error) => void warnings.push(String(w))) as typeof process.emitWarning;
  try {
    const r = await f();
    if (warnings.length > 0) throw new Error(`accepted with a Node warning: ${warnings[0]}`);
    return r;
  } catch (e) {
    if (!(e instanceof UserError)) throw new Error(`not a UserError: ${(e as Error)?.stack ?? String(e)}`);
    if (!e.message.includes(where)) throw new Error(`the error does not name ${where}: ${e.message}`);
    return e;
  } finally {
    process.emitWarning = emit;
  }
}
