/**
 * How the simulation's host cost grows with replicas (issue 10: "simulation
 * cost grows with distinct programs, not with replicas"). Compiles the
 * replicated MLP example once per replica count on a POD16 cut to 16 tiles an
 * IPU, then times opening a session (engines, pools) and one training step,
 * with numerics and timing only. Run: npx tsx scripts/replica-cost.ts [workers]
 * Not a test: the numbers depend on the machine.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfigText } from '../src/config/load.js';
import { compile, TrainingSession } from '../src/session.js';

const workers = Number(process.argv[2] ?? 2);
const file = path.resolve('configs/examples/mlp-replicated-4.yaml');
const base = readFileSync(file, 'utf8').replace('device: {preset: m2000, tiles: 16}', 'device: {preset: pod16, tiles: 16}');
console.log(`workers ${workers}; ms: compile, open session, one step (median of 3 steps after the first)`);
for (const numerics of [true, false]) {
  for (const replicas of [1, 2, 4, 8, 16]) {
    const text = base.replace(/^replicas: \d+$/m, `replicas: ${replicas}`);
    let t = performance.now();
    const compiled = await compile(loadConfigText(text, file));
    const compileMs = performance.now() - t;
    t = performance.now();
    const s = await TrainingSession.create(compiled, { workers, numerics });
    const openMs = performance.now() - t;
    const steps: number[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        t = performance.now();
        await s.runStep();
        steps.push(performance.now() - t);
      }
    } finally {
      await s.close();
    }
    const step = steps.slice(1).sort((a, b) => a - b)[1];
    console.log(`${numerics ? 'numerics   ' : 'timing only'} replicas ${String(replicas).padStart(2)}: compile ${compileMs.toFixed(0).padStart(5)}  open ${openMs.toFixed(0).padStart(5)}  step ${step.toFixed(1).padStart(7)}  first step ${steps[0].toFixed(0)}`);
  }
}
