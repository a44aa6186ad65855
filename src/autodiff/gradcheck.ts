/**
 * gradcheck: does an op's grad ops agree with central finite differences of
 * its forward, both run through the simulator? The op's output y is
 * projected to a scalar with a fixed random weighting,
 *   loss = sum(y * R + C)     (L1 with reduction 'sum', C large enough that every term is > 0),
 * so dloss/dy = R: every element of the upstream gradient differs, which
 * catches transposed or misrouted gradients that a uniform one would hide.
 * Each checked input must be a trainable variable of the graph.
 */
import type { PlanOverrides } from '../lower/plan-overrides.js';
import type { DeviceSpec } from '../../sim/device.js';
import { Engine } from '../../sim/engine.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import type { CodeletRegistry, ElemArray } from '../../sim/codelet.js';
import type { Graph } from '../ir/graph.js';
import type { OpRegistry } from '../ir/registry.js';
import { gradName } from '../ir/tensor.js';
import { nelms } from '../ir/tensorinfo.js';
import { lowerGraph } from '../lower/lower.js';
import { AddOp } from '../ops/add.js';
import { L1Op } from '../ops/loss.js';
import { MulOp } from '../ops/mul.js';
import { Rng } from '../util/random.js';
import { autodiff } from './autodiff.js';

export interface GradcheckOptions {
  registry: OpRegistry;
  device: DeviceSpec;
  /** Codelet modules the ops use beyond the built-ins (default: the registry's, those of its custom-op modules). */
  codeletModules?: string[];
  /** Finite-difference step (default 1e-2). */
  h?: number;
  /** Seed of the projection weights. */
  seed?: number;
  /** Splits forced on the planners. */
  plans?: PlanOverrides;
}

export interface GradcheckResult {
  tensor: string;
  elements: number;
  maxAbsError: number;
  /** The element with the largest error. */
  worst: { index: number; analytic: number; numeric: number };
  analytic: Float32Array;
  numeric: Float64Array;
}

export async function gradcheck(graph: Graph, output: string, wrt: string[], opts: GradcheckOptions): Promise<GradcheckResult[]> {
  const h = opts.h ?? 1e-2;
  const info = graph.tensor(output).info;
  const n = nelms(info.shape);
  const rng = new Rng(opts.seed ?? 12345);
  const r = new Float32Array(n).map(() => rng.uniform(-1, 1));
  const codeletModules = opts.codeletModules ?? opts.registry.codeletModules;
  const codelets = await loadCodeletRegistry(codeletModules);
  // C_i = |y_i R_i| + 1 from a first forward run: every term stays positive under the
  // perturbations, and the loss stays small (so its fp32 rounding, divided by 2h, stays small).
  const y0 = await forward(graph, output, opts, codelets, codeletModules);
  const c = new Float32Array(n).map((_, i) => Math.abs(y0[i] * r[i]) + 1);
  graph.addTensor('gradcheck/R', info, 'constant', { data: r });
  graph.addTensor('gradcheck/C', info, 'constant', { data: c });
  graph.addOp(new MulOp({ name: 'gradcheck/project' }), [output, 'gradcheck/R'], ['gradcheck/p']);
  graph.addOp(new AddOp({ name: 'gradcheck/offset' }), ['gradcheck/p', 'gradcheck/C'], ['gradcheck/q']);
  graph.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'gradcheck/loss' }), ['gradcheck/q'], ['gradcheck/loss']);
  for (const w of wrt) {
    const t = graph.tensor(w);
    if (t.kind !== 'variable' || !t.trainable || !t.data) throw new Error(`gradcheck: '${w}' must be a trainable variable with data`);
  }
  autodiff(graph, 'gradcheck/loss');
  const anchors = ['gradcheck/loss', 'gradcheck/q', ...wrt.map(gradName)];
  const schedule = graph.schedule();
  const { program, streamTensor } = lowerGraph({ graph, schedule, registry: opts.registry, codelets, device: opts.device, anchors, codeletModules, plans: opts.plans });
  const engine = await Engine.create(program, { workers: 1, numerics: true });
  let got = new Map<string, ElemArray>();
  const io = {
    toDevice: (s: { id: number }) => graph.tensor(streamTensor.get(s.id)!).data!,
    fromDevice: (s: { id: number }, _t: unknown, data: ElemArray) => void got.set(streamTensor.get(s.id)!, data),
  };
  const lossAt = async (): Promise<number> => {
    got = new Map();
    await engine.run('weightsFromHost', io, 0);
    await engine.run('batch', io, 0);
    return (got.get('gradcheck/loss') as Float32Array)[0];
  };
  try {
    await lossAt();
    const q = got.get('gradcheck/q') as Float32Array;
    if (q.some((v) => v <= 0)) throw new Error('gradcheck: the projection offset C is too small for this output (some y * R + C <= 0)');
    const analytic = new Map(wrt.map((w) => [w, Float32Array.from(got.get(gradName(w)) as Float32Array)]));
    const results: GradcheckResult[] = [];
    for (const w of wrt) {
      const data = graph.tensor(w).data as Float32Array;
      const numeric = new Float64Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const x = data[i];
        data[i] = x + h;
        const plus = await lossAt();
        data[i] = x - h;
        const minus = await lossAt();
        data[i] = x;
        // Divide by the step actually taken: x +- h rounds to fp32.
        numeric[i] = (plus - minus) / (Math.fround(x + h) - Math.fround(x - h));
      }
      const a = analytic.get(w)!;
      let worst = 0;
      let maxAbsError = 0;
      for (let i = 0; i < a.length; i++) {
        const e = Math.abs(a[i] - numeric[i]);
        if (e > maxAbsError) {
          maxAbsError = e;
          worst = i;
        }
      }
      results.push({ tensor: w, elements: a.length, maxAbsError, worst: { index: worst, analytic: a[worst], numeric: numeric[worst] }, analytic: a, numeric });
    }
    return results;
  } finally {
    await engine.destroy();
  }
}

/** The output's value at the unperturbed inputs. */
async function forward(graph: Graph, output: string, opts: GradcheckOptions, codelets: CodeletRegistry, codeletModules: string[]): Promise<Float32Array> {
  const { program, streamTensor } = lowerGraph({ graph, schedule: graph.schedule(), registry: opts.registry, codelets, device: opts.device, anchors: [output], codeletModules, plans: opts.plans });
  const engine = await Engine.create(program, { workers: 1, numerics: true });
  let y: Float32Array = new Float32Array(0);
  try {
    const io = {
      toDevice: (s: { id: number }) => graph.tensor(streamTensor.get(s.id)!).data!,
      fromDevice: (_s: unknown, _t: unknown, data: ElemArray) => void (y = data as Float32Array),
    };
    await engine.run('weightsFromHost', io, 0);
    await engine.run('batch', io, 0);
    return y;
  } finally {
    await engine.destroy();
  }
}
