/** Building the IR from a graph declaration: composites expand into simpler nodes; omitted optional inputs. */
import { describe, expect, it } from 'vitest';
import type { GraphDecl } from '../../src/config/types.js';
import { buildGraph } from '../../src/model/build.js';
import { initializerData } from '../../src/model/data.js';
import { createRegistry } from '../../src/model/modules.js';
import { runGraph } from '../../src/session.js';
import { tiny } from '../helpers.js';

const loc = { file: 'test.yaml', line: 1, col: 1 };

describe('buildGraph', () => {
  it('makes generated initializer values when first read (a timing-only run never reads them), the same values, once; given data at once', async () => {
    const registry = await createRegistry([]);
    const normal = { kind: 'normal' as const, mean: 0, std: 0.02, seed: 7 };
    const decl: GraphDecl = {
      inputs: [{ name: 'x', shape: [4], dtype: 'float32', loc }],
      initializers: [
        { name: 'w', shape: [4], dtype: 'float32', init: normal, trainable: true, loc },
        { name: 'c', shape: [4], dtype: 'float32', init: { kind: 'value', value: [1, 2, 3, 4] }, trainable: false, loc },
      ],
      nodes: [
        { op: 'Mul', domain: '', name: 'mul', inputs: ['x', 'w'], outputs: ['t'], attributes: {}, loc },
        { op: 'Add', domain: '', name: 'add', inputs: ['t', 'c'], outputs: ['y'], attributes: {}, loc },
      ],
      outputs: ['y'],
      opset: 18,
    };
    const graph = buildGraph(decl, registry);
    // Not made yet: the tensor holds a getter, not an array.
    expect(typeof Object.getOwnPropertyDescriptor(graph.tensor('w'), 'data')?.get).toBe('function');
    expect(Object.getOwnPropertyDescriptor(graph.tensor('c'), 'data')?.value).toBeInstanceOf(Float32Array);
    const w = graph.tensor('w').data!;
    expect(Array.from(w)).toEqual(Array.from(initializerData(normal, [4], 'float32', 'w')));
    expect(graph.tensor('w').data).toBe(w);
    // Assigning replaces it, as for any tensor (the loss scaling's seed is set so).
    const next = Float32Array.of(1, 1, 1, 1);
    graph.tensor('w').data = next;
    expect(graph.tensor('w').data).toBe(next);
    // A bad value is still reported while building.
    const bad: GraphDecl = { ...decl, initializers: [{ ...decl.initializers[1], init: { kind: 'value', value: [1, 2] } }] };
    expect(() => buildGraph({ ...bad, nodes: [], outputs: [] }, registry)).toThrow(/initializer 'c'/);
  });

  it('expands a composite op into simpler nodes with their constants, and runs it', async () => {
    const registry = await createRegistry([]);
    // AxpB(x) = 2x + 1, written as a composite of Mul and Add.
    registry.add({
      id: { domain: 'test.ops', type: 'AxpB', version: 1 },
      inputs: [{ name: 'x' }],
      outputs: [{ name: 'y' }],
      expand: ({ node, fresh, inputInfos }) => {
        const two = fresh(`${node.name}/two`);
        const one = fresh(`${node.name}/one`);
        const t = fresh(`${node.name}/t`);
        const shape = [...inputInfos[0]!.shape].slice(-1);
        return {
          constants: [
            { name: two, dtype: 'float32', shape, data: new Float32Array(shape[0]).fill(2) },
            { name: one, dtype: 'float32', shape, data: new Float32Array(shape[0]).fill(1) },
          ],
          nodes: [
            { op: 'Mul', domain: '', name: `${node.name}/mul`, inputs: [node.inputs[0], two], outputs: [t], attributes: {}, loc: node.loc },
            { op: 'Add', domain: '', name: `${node.name}/add`, inputs: [t, one], outputs: [node.outputs[0]], attributes: {}, loc: node.loc },
          ],
        };
      },
    });
    const decl: GraphDecl = {
      inputs: [{ name: 'x', shape: [2, 3], dtype: 'float32', loc }],
      initializers: [],
      nodes: [{ op: 'AxpB', domain: 'test.ops', name: 'axpb', inputs: ['x'], outputs: ['y'], attributes: {}, loc }],
      outputs: ['y'],
      opset: 18,
    };
    const graph = buildGraph(decl, registry);
    expect(graph.ops.map((o) => o.opid.type)).toEqual(['Mul', 'Add']);
    const x = Float32Array.from([1, 2, 3, -1, -2, 0.5]);
    const r = await runGraph({ graph, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    expect(Array.from(r.outputs.get('y')!)).toEqual(Array.from(x).map((v) => 2 * v + 1));
  });

  it('rejects an input that is not defined before its node, naming both', async () => {
    const registry = await createRegistry([]);
    const decl: GraphDecl = {
      inputs: [{ name: 'x', shape: [2], dtype: 'float32', loc }],
      initializers: [],
      nodes: [{ op: 'Add', domain: '', name: 'add', inputs: ['x', 'nope'], outputs: ['y'], attributes: {}, loc }],
      outputs: ['y'],
      opset: 18,
    };
    expect(() => buildGraph(decl, registry)).toThrow(/test\.yaml:1:1: node 'add' \(Add\): input 'nope' is not defined before this node/);
  });
});
