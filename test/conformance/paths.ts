/** Where the ONNX conformance data lives: ../shared/conformance beside the repository (see its README.md). */
import { existsSync, readFileSync } from 'node:fs';
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

/** The committed floor of passing cases per suite (test/conformance/floor.json): it only ever grows. */
export function floor(suite: 'onnx-node' | 'onnx-pytorch-converted'): number {
  const f = JSON.parse(readFileSync(path.join(ROOT, 'test/conformance/floor.json'), 'utf8')) as Record<string, number>;
  return f[suite];
}
