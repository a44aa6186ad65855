/**
 * Replicas with numerics (PopART's replicatedGraphCount): every replica runs
 * the one compiled program on an engine of its own (its own tile memory, its
 * own data; the phase costs and the machine's workers shared, src/session.ts),
 * in lockstep at the all-reduces. An `allReduce` step of each
 * engine waits here until every replica reached it; the last to arrive sums
 * the replicas' copies of the tensor and writes the sum into each.
 *
 * The order of the sum is the clockwise ring's: the tensor is cut into n
 * fragments of consecutive elements (fragment j: [floor(jN/n),
 * floor((j+1)N/n))), and fragment j is summed along the ring starting at
 * replica j + 1: ((x[j+1] + x[j+2]) + ...) + x[j], each partial rounded to
 * the tensor's type (float32, or float16 as the device's half adds would).
 * The cost of the ring steps is the engine's (sim/collectives.ts), whatever
 * the method; only rounding could tell the orders apart.
 */
import type { ElemArray } from '../sim/codelet.js';
import type { Engine } from '../sim/engine.js';
import { decodeHalf, encodeHalf, roundHalf } from '../sim/half.js';
import type { DeviceTensor, ShardStep } from '../sim/program.js';

interface Waiting {
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class AllReduceBarrier {
  private waiting: Waiting[] = [];
  private tensor: string | undefined;
  private failure: unknown;
  engines: Engine[] = [];

  /** Replica `r`'s engine reached the all-reduce of `t`: resolves once the sum is in every replica. */
  arrive(t: DeviceTensor): Promise<void> {
    return this.meet(`allReduce:${t.id}`, () => {
      const sum = ringSum(this.engines.map((e) => e.readOnTiles(t)), t.dtype === 'float16');
      for (const e of this.engines) e.writeOnTiles(t, sum);
    });
  }

  /**
   * A replica reached a step of replicated tensor sharding (sim/program.ts
   * ShardStep) of `t` and its shard: resolves once the data moved. Replica
   * r's fragment is [floor(rN/R), floor((r+1)N/R)), the all-reduce's, so the
   * reduce-scatter's fragment is bit for bit the all-reduce's sum there.
   */
  arriveShard(kind: ShardStep['kind'], t: DeviceTensor, shard: DeviceTensor): Promise<void> {
    return this.meet(`${kind}:${t.id}`, () => {
      const R = this.engines.length;
      const N = t.shape.reduce((a, b) => a * b, 1);
      const from = (r: number) => Math.floor((r * N) / R);
      const full = kind === 'reduceScatter' ? ringSum(this.engines.map((e) => e.readOnTiles(t)), t.dtype === 'float16') : undefined;
      if (kind === 'allGather') {
        const out = this.engines[0].readOnTiles(t);
        this.engines.forEach((e, r) => out.set(e.readOnTiles(shard).subarray(0, from(r + 1) - from(r)), from(r)));
        for (const e of this.engines) e.writeOnTiles(t, out);
        return;
      }
      this.engines.forEach((e, r) => {
        // The shard's elements past the fragment (padding) are zero.
        const s = e.readOnTiles(shard).fill(0);
        s.set((full ?? e.readOnTiles(t)).subarray(from(r), from(r + 1)));
        e.writeOnTiles(shard, s);
      });
    });
  }

  /** Wait until every replica arrived at the step `key`; the last to arrive runs `fn` for all. */
  private meet(key: string, fn: () => void): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.tensor !== undefined && this.tensor !== key) return Promise.reject(new Error(`internal: replicas reached different collectives (${this.tensor}, ${key})`));
    this.tensor = key;
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (this.waiting.length < this.engines.length) return;
      const all = this.waiting;
      this.waiting = [];
      this.tensor = undefined;
      try {
        fn();
      } catch (e) {
        for (const w of all) w.reject(e);
        return;
      }
      for (const w of all) w.resolve();
    });
  }

  /** A replica failed: the others must not wait for it. */
  abort(e: unknown): void {
    this.failure = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }
}

/** The replicas' copies summed in the clockwise ring's order (top of the file). */
export function ringSum(copies: ElemArray[], half: boolean): ElemArray {
  const n = copies.length;
  const xs = copies.map((c) => (half ? decodeHalf(c as Uint16Array) : c));
  const len = xs[0].length;
  const out = half ? new Float32Array(len) : new (xs[0].constructor as new (k: number) => Float32Array | Int32Array)(len);
  const round = half ? roundHalf : xs[0] instanceof Int32Array ? (v: number) => v | 0 : Math.fround;
  for (let j = 0; j < n; j++) {
    const from = Math.floor((j * len) / n);
    const to = Math.floor(((j + 1) * len) / n);
    for (let e = from; e < to; e++) {
      let acc = xs[(j + 1) % n][e];
      for (let k = 2; k <= n; k++) acc = round(acc + xs[(j + k) % n][e]);
      out[e] = acc;
    }
  }
  return half ? encodeHalf(out) : out;
}
