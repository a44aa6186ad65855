/** Helpers of the nn op tests: how many tiles an op's output spans, and the harness checks around it. */
import { expect } from 'vitest';
import type { GraphDecl } from '../../src/config/types.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { runGraph } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { checkForward, type OpCase } from './harness.js';
import { intervalList } from '../../sim/intervals.js';

/** The case's graph (every input streamed unless constant), as the harness builds it. */
export function declOf(c: OpCase): GraphDecl {
  const dtype = (t: OpCase['inputs'][string]) => (t.data instanceof Int32Array ? 'int32' : (t.dtype ?? 'float32'));
  const loc = { file: `<${c.op} test>`, line: 1, col: 1 };
  const outputs = c.outputs ?? ['y'];
  return {
    inputs: Object.entries(c.inputs)
      .filter(([, t]) => !t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc })),
    initializers: Object.entries(c.inputs)
      .filter(([, t]) => t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc, init: { kind: 'data', data: t.data }, trainable: false })),
    nodes: [{ op: c.op, domain: '', name: `${c.op}_0`, inputs: Object.keys(c.inputs), outputs, attributes: c.attributes ?? {}, loc }],
    outputs,
    opset: c.opset ?? 18,
  } as GraphDecl;
}

/** Runs the case through the simulator and returns the tiles its first output is mapped to, and the program. */
export async function lowered(c: OpCase) {
  const registry = await createRegistry([]);
  const graph = buildGraph(declOf(c), registry);
  const inputs: Record<string, Float32Array | Int32Array> = {};
  for (const [name, t] of Object.entries(c.inputs)) if (!t.constant) inputs[name] = t.data;
  const r = await runGraph({ graph, registry, device: c.device ?? tiny(), inputs, outputs: c.outputs ?? ['y'], plans: c.plans });
  const out = r.program.tensors.find((t) => t.name === (c.outputs ?? ['y'])[0])!;
  return { tiles: new Set(intervalList(out.intervals).map((i) => i.tile)), program: r.program, phases: r.phases };
}

/** checkForward, plus: the output really spans all 4 tiles of the tiny device. */
export async function checkForwardAllTiles(c: OpCase): Promise<void> {
  await checkForward(c);
  const { tiles } = await lowered(c);
  expect([...tiles].sort()).toEqual([0, 1, 2, 3]);
}
