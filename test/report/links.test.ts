/**
 * summary.json's `links` (src/report/links.ts) against numbers worked out
 * apart from it: on 2 sharded IPUs every copy crosses the pair's links once,
 * so the link bytes of a step are the step's inter-IPU exchange bytes
 * (sim/cost.ts exchangeIpuBytes of each exchange run); on 4 replicas the
 * all-reduces' ring steps put replicas x PopLibs' link bytes (collectives
 * rows) on the links, each hop once (the clockwise ring on a 4-IPU ladder:
 * 0 -> 1 and 2 -> 3 cross a pair, 1 -> 2 and 3 -> 0 a pair then a rail). Timing only: the bytes do not depend on the data.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exchangeIpuBytes } from '../../sim/cost.js';
import { groupBytesPerCycle } from '../../sim/links.js';
import { loadConfigText } from '../../src/config/load.js';
import { buildSummary, profileTables } from '../../src/report/summary.js';
import { compile, run } from '../../src/session.js';
import { ROOT } from '../helpers.js';

async function summaryOf(example: string, steps: number, extra = '') {
  const file = path.join(ROOT, 'configs/examples', example);
  const r = await run(await compile(loadConfigText(readFileSync(file, 'utf8') + extra, file, { steps })), { workers: 1, numerics: false, steps });
  return { r, s: buildSummary(r, profileTables(r), {}, 1) };
}

describe('summary.json links', () => {
  it('2 sharded IPUs: each step the pair groups carry the inter-IPU bytes of its exchanges', async () => {
    const { r, s } = await summaryOf('mlp-sharded-2ipu.yaml', 2);
    const p = r.compiled.program;
    const byName = new Map(p.exchanges.map((ex) => [ex.name, ex]));
    const expected = s.steps.map(() => 0);
    for (const ph of r.phases) {
      if (ph.kind !== 'exchange') continue;
      const ex = byName.get(ph.name)!;
      for (const bytes of exchangeIpuBytes(ex, p.device).values()) expected[s.steps.findIndex((x) => x.step === ph.step)] += bytes;
    }
    expect(expected[0]).toBeGreaterThan(0);
    const links = s.links!;
    expect(links.systemIpus).toBe(2);
    expect(links.domains).toBe(1);
    expect(links.groups.map((g) => g.name).sort()).toEqual(['IPU 0 pair', 'IPU 1 pair']);
    const perStep = s.steps.map((_, i) => links.groups.reduce((a, g) => a + g.bytesPerStep[i], 0));
    expect(perStep).toEqual(expected);
    for (const g of links.groups) {
      expect(g.bytes).toBe(g.bytesPerStep.reduce((a, b) => a + b, 0));
      expect(g.bytesPerCycle).toBeCloseTo(groupBytesPerCycle(g.group, p.device), 9);
      expect(g.utilisation).toBeCloseTo(g.bytes / g.bytesPerCycle / s.cycles.total, 12);
      expect(g.utilisation).toBeLessThan(1);
    }
  });

  it.each(['clockwise', 'meetInMiddle'])("4 replicas, %s: the all-reduces' ring steps carry replicas x PopLibs' link bytes, each hop once", async (method) => {
    const { s } = await summaryOf('mlp-replicated-4.yaml', 1, `\ncollectiveMethod: ${method}\n`);
    const rows = s.collectives!;
    expect(rows.length).toBeGreaterThan(0);
    for (const c of rows) {
      // PopLibs' collectives tool: link bytes are algorithm bytes x 2(n - 1)/n, and both per IPU per cycle of the call.
      expect(c.linkBytes).toBeCloseTo((c.algorithmBytes * 2 * 3) / 4, 9);
      expect(c.linkBytesPerIpuPerCycle).toBeCloseTo(c.linkBytes / c.cycles, 9);
      expect(c.method).toEqual({ reduceScatter: method, allGather: method });
    }
    // The ring on the 4-IPU ladder, either way: 0 <-> 1 and 2 <-> 3 one pair hop; 1 <-> 2 and 3 <-> 0 a pair and a rail hop: 1.5 hops
    // a flow. Meet-in-the-middle sends both ways in its first step and one way in its second, (n - 1)/n of the tensor as a ring does.
    const sent = rows.reduce((a, c) => a + 4 * c.linkBytes * c.calls, 0);
    const carried = s.links!.groups.reduce((a, g) => a + g.bytes, 0);
    // Fragments are rounded up per tile (ceil(elements / 4) on each of 16 tiles), so allow that rounding.
    expect(carried).toBeGreaterThanOrEqual(1.5 * sent);
    expect(carried).toBeLessThan(1.5 * sent * 1.02);
  });

  it('128 replicas on a POD128: the ring crosses between the two POD64s over GW-Links, both ways', async () => {
    const file = path.join(ROOT, 'configs/examples/mlp-replicated-4.yaml');
    const text = readFileSync(file, 'utf8').replace('device: {preset: m2000, tiles: 16}', 'device: {preset: pod128, tiles: 16}').replace(/^replicas: \d+$/m, 'replicas: 128');
    const r = await run(await compile(loadConfigText(text, file, { steps: 1 })), { workers: 1, numerics: false, steps: 1 });
    const s = buildSummary(r, profileTables(r), {}, 1);
    expect(s.links!.domains).toBe(2);
    // Meet-in-the-middle: replica 63 <-> 64 and 127 <-> 0 cross, each through the gateway of the machine at the target's place
    // (place 0: machine 0 of a domain; place 63: machine 15), east from even IPUs and west from odd ones.
    const gw = s.links!.groups.filter((g) => g.kind === 'gwLink');
    expect(gw.map((g) => g.name)).toEqual(['machine 0 GW west', 'machine 15 GW east', 'machine 16 GW west', 'machine 31 GW east']);
    for (const g of gw) expect(g.bytes).toBeGreaterThan(0);
  }, 60_000);
});
