/** Where the ONNX conformance data lives: ../shared/conformance beside the repository (see its README.md). */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers.js';

export const CONFORMANCE = path.resolve(ROOT, '../shared/conformance');

/** A suite's folder; a clear error when the data is missing. */
export function suiteDir(name: string): string {
  const dir = path.join(CONFORMANCE, name);
  if (!existsSync(dir))
    throw new Error(
      `ONNX conformance data not found: ${dir} does not exist. The suites (onnx-node, onnx-pytorch-converted, onnx-light) ` +
        'are copied from onnx/onnx v1.22.0 into ../shared/conformance beside the repository; see ../shared/conformance/README.md',
    );
  return dir;
}

const FLOOR_FILE = path.join(ROOT, 'test/conformance/floor.json');

type Suite = 'onnx-node' | 'onnx-pytorch-converted';

/** The committed floor per suite (test/conformance/floor.json): the names of the cases that must pass. It only ever grows. */
export function floor(suite: Suite): string[] {
  const f = JSON.parse(readFileSync(FLOOR_FILE, 'utf8')) as Record<string, string[]>;
  return f[suite];
}

/**
 * Check a suite's passing cases against its floor: every case on the floor
 * must pass (by name, so one that stops passing is never hidden by another
 * that starts to). Cases passing beyond it are returned; with UPDATE_FLOOR=1
 * they are added to floor.json (cases are only ever added); `update` false
 * never writes (the floor check's own test, whose made-up case must not land
 * on the floor).
 */
export function checkFloor(suite: Suite, passed: readonly string[], update = Boolean(process.env.UPDATE_FLOOR)): { lost: string[]; gained: string[] } {
  const want = floor(suite);
  const have = new Set(passed);
  const lost = want.filter((n) => !have.has(n));
  const known = new Set(want);
  const gained = passed.filter((n) => !known.has(n));
  if (gained.length > 0 && update) {
    const f = JSON.parse(readFileSync(FLOOR_FILE, 'utf8')) as Record<string, unknown>;
    f[suite] = [...want, ...gained].sort();
    writeFileSync(FLOOR_FILE, `${JSON.stringify(f, null, 2)}\n`);
  }
  return { lost, gained };
}
