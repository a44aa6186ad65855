/**
 * IPU-Links (sim/links.ts): routes on the ladder and the torus, the inter-IPU
 * sync of ipu-architecture.md §7, and exchanges between IPUs costed by their
 * busiest link group. Expected values are worked out here from §7's numbers.
 */
import { describe, expect, it } from 'vitest';
import { exchangeCost } from '../../sim/cost.js';
import { copyTable } from '../../sim/copies.js';
import type { DeviceSpec } from '../../sim/device.js';
import { allReducePhases } from '../../sim/collectives.js';
import { deviceRoute, groupBytesPerCycle, groupName, interIpuSyncCycles, route } from '../../sim/links.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import type { ExchangeCopy } from '../../sim/program.js';
import { loadDevicePreset, resolveDevice } from '../../src/config/devices.js';
import { tensorIntervals } from '../../sim/intervals.js';

const PAIR = 0;
const UP = 1;
const DOWN = 2;
const g = (ipu: number, kind: number) => 3 * ipu + kind;

describe('IPU-Link routes', () => {
  it('crosses the rung first, then walks the rail two IPUs a hop', () => {
    expect(route(0, 0, 8, 'ladder')).toEqual([]);
    expect(route(0, 1, 8, 'ladder')).toEqual([g(0, PAIR)]);
    expect(route(0, 2, 8, 'ladder')).toEqual([g(0, UP)]);
    expect(route(0, 3, 8, 'ladder')).toEqual([g(0, PAIR), g(1, UP)]);
    expect(route(1, 6, 8, 'ladder')).toEqual([g(1, PAIR), g(0, UP), g(2, UP), g(4, UP)]);
    expect(route(7, 0, 8, 'ladder')).toEqual([g(7, PAIR), g(6, DOWN), g(4, DOWN), g(2, DOWN)]);
  });

  it('takes the shorter way round a torus rail', () => {
    // 16 IPUs: rails of 8; from rung 0 to rung 7 is one hop down, round the end.
    expect(route(0, 14, 16, 'torus')).toEqual([g(0, DOWN)]);
    expect(route(0, 14, 16, 'ladder')).toHaveLength(7);
    expect(route(2, 8, 16, 'torus')).toEqual([g(2, UP), g(4, UP), g(6, UP)]);
  });

  it('walks first from an IPU with no partner', () => {
    // 3 IPUs: IPU 2 has no pair; to reach IPU 1 it walks down to 0, then crosses.
    expect(route(2, 1, 3, 'ladder')).toEqual([g(2, DOWN), g(0, PAIR)]);
  });
});

describe('inter-IPU sync (§7: 15 ns per hop, doubled, hops = 1 + IPUs/4)', () => {
  it('is 40, 200 and 679 cycles for 2, 16 and 64 Mk2 IPUs, and nothing on one', () => {
    const mk2 = loadDevicePreset('mk2');
    expect(interIpuSyncCycles(mk2)).toBe(0);
    expect(interIpuSyncCycles({ ...loadDevicePreset('m2000'), ipus: 2 })).toBe(40);
    expect(interIpuSyncCycles(loadDevicePreset('pod16'))).toBe(200);
    expect(interIpuSyncCycles(loadDevicePreset('pod64'))).toBe(679);
  });
});

describe('exchanges between IPUs', () => {
  // 4 IPUs of 16 tiles each, mk2's numbers and the m2000 links.
  const device: DeviceSpec = resolveDevice({ preset: 'm2000', tiles: 16 }, 'config.yaml');
  const cost = (copies: ExchangeCopy[]) => exchangeCost({ id: 0, name: 'x', op: 'x', copies: copyTable(copies) }, device);
  // Two links up the rail: 2 x 16 GiB/s x 0.85 / 1.33 GHz bytes per cycle.
  const railRate = (2 * 17179869184 * 0.85) / 1.33e9;

  it('lasts as long as the busiest link group when the links are the bottleneck', () => {
    expect(groupBytesPerCycle(g(0, UP), device)).toBeCloseTo(railRate, 9);
    // All 16 tiles of IPU 0 send 4 KiB to IPU 2 (up the rail): 64 KiB through one group of 2 links.
    const copies = Array.from({ length: 16 }, (_, t) => ({ srcTile: t, srcOffset: 0, dstTile: 32 + t, dstOffset: 0, bytes: 4096 }));
    const c = cost(copies);
    expect(c.linkCycles).toBe(Math.ceil((16 * 4096) / railRate));
    expect(c.cycles).toBe(c.linkCycles);
    // Each tile alone would take 4096 / 4 cycles: the links, not the tiles, set the time.
    expect(c.cycles).toBeGreaterThan(4096 / device.exchangeBytesPerCycle);
    expect(c.syncCycles).toBe(device.syncCycles + interIpuSyncCycles(device));
  });

  it('sends data once per receiving IPU, however many of its tiles take it', () => {
    const one = cost([{ srcTile: 0, srcOffset: 0, dstTile: 16, dstOffset: 0, bytes: 8192 }]);
    const two = cost([
      { srcTile: 0, srcOffset: 0, dstTile: 16, dstOffset: 0, bytes: 8192 },
      { srcTile: 0, srcOffset: 0, dstTile: 17, dstOffset: 0, bytes: 8192 },
    ]);
    expect(two.linkCycles).toBe(one.linkCycles);
  });

  it('costs an exchange inside one IPU as before, with no inter-IPU sync', () => {
    const c = cost([{ srcTile: 0, srcOffset: 0, dstTile: 5, dstOffset: 0, bytes: 4096 }]);
    expect(c.linkCycles).toBeUndefined();
    expect(c.syncCycles).toBeUndefined();
    expect(c.cycles).toBe(4096 / device.exchangeBytesPerCycle);
  });
});

describe('multi-IPU presets', () => {
  it('are IPU-M2000, POD16, POD64, Bow-2000 and Bow Pod16 with their IPU counts and topologies', () => {
    const want: [string, number, string, string][] = [
      ['m2000', 4, 'ladder', 'mk2'],
      ['pod16', 16, 'ladder', 'mk2'],
      ['pod64', 64, 'torus', 'mk2'],
      ['pod128', 128, 'torus', 'mk2'],
      ['pod256', 256, 'torus', 'mk2'],
      ['bow2000', 4, 'ladder', 'bow'],
      ['bowpod16', 16, 'ladder', 'bow'],
    ];
    for (const [name, ipus, topology, chip] of want) {
      const d = loadDevicePreset(name);
      const base = loadDevicePreset(chip);
      expect([d.name, d.ipus, d.topology, d.tilesPerIpu, d.clockHz]).toEqual([name, ipus, topology, base.tilesPerIpu, base.clockHz]);
    }
  });

  it('take overrides of the link fields, and refuse bad ones with the key named', () => {
    expect(resolveDevice({ preset: 'pod16', ipuLinksPerRail: 4 }, 'c.yaml').ipuLinksPerRail).toBe(4);
    expect(() => resolveDevice({ preset: 'pod16', topology: 'ring' }, 'c.yaml')).toThrow(/topology/);
    expect(() => resolveDevice({ preset: 'pod16', linkDomainIpus: 6 }, 'c.yaml')).toThrow(/linkDomainIpus 6 does not divide ipus 16/);
    expect(() => resolveDevice({ preset: 'pod16', linkDomainIpus: 2 }, 'c.yaml')).toThrow(/multiple of 4/);
    expect(resolveDevice({ preset: 'pod128', gwLinkLatencyNs: 0 }, 'c.yaml').gwLinkLatencyNs).toBe(0);
  });
});

describe('GW-Links between IPU-Link domains', () => {
  // 16 IPUs in 4 domains of 4 (each an M2000 of its own), 4 IPUs per gateway: group ids from 48 are GW groups.
  const EAST = (machine: number) => 48 + 2 * machine;
  const WEST = (machine: number) => 48 + 2 * machine + 1;

  it("walk IPU-Links to the IPU at the target's place, then GW-Links round the ring of domains", () => {
    // 1 -> 6: domain 0 to 1; IPU 6 is place 2 of its domain, so first 1 -> 2 in domain 0 (pair, then up), then east.
    expect(route(1, 6, 16, 'ladder', 4)).toEqual([g(1, PAIR), g(0, UP), EAST(0)]);
    // 0 -> 12: domain 0 to 3 is one hop west round the ring.
    expect(route(0, 12, 16, 'ladder', 4)).toEqual([WEST(0)]);
    // Two hops east through domain 1's gateway: 0 -> 8.
    expect(route(0, 8, 16, 'ladder', 4).length).toBe(2);
    // Inside a domain, IPU-Links only, the groups of that domain's IPUs.
    expect(route(4, 5, 16, 'ladder', 4)).toEqual([g(4, PAIR)]);
    // Two domains of 8 IPUs (GW groups from 24): a tie goes east from even IPUs, west from odd ones.
    expect(route(0, 4, 8, 'ladder', 4)).toEqual([24 + 0]);
    expect(route(1, 5, 8, 'ladder', 4)).toEqual([24 + 1]);
    expect(groupName(EAST(3), 16)).toBe('machine 3 GW east');
    expect(groupName(g(2, UP), 16)).toBe('IPU 2 up');
  });

  it('a POD128 is two torus domains of 64; its sync pays the GW-Link latency there and back', () => {
    const pod128 = loadDevicePreset('pod128');
    expect(deviceRoute(63, 64, pod128).map((id) => groupName(id, 128))).toEqual(['IPU 63 pair', 'IPU 62 up', 'machine 0 GW west']);
    // IPU-Link hops as a POD64's (1 + 64/4 = 17, 15 ns each, doubled) plus 2 x 1 us, at 1.33 GHz.
    expect(interIpuSyncCycles(pod128)).toBe(Math.ceil((17 * 15 * 2 + 2000) * 1.33));
    expect(interIpuSyncCycles(pod128)).toBeGreaterThan(interIpuSyncCycles(loadDevicePreset('pod64')));
  });

  it('an exchange crossing domains lasts as long as its GW-Link takes, latency included', () => {
    // 8 IPUs of 16 tiles in 2 domains of 4: IPU 0 -> IPU 4 is one GW-Link east from machine 0.
    const device = resolveDevice({ preset: 'm2000', ipus: 8, tiles: 16, linkDomainIpus: 4 }, 'c.yaml');
    const gwRate = (12.5e9 * 0.85) / 1.33e9;
    expect(groupBytesPerCycle(32, device)).toBeCloseTo(gwRate, 9);
    const copies = Array.from({ length: 16 }, (_, t) => ({ srcTile: t, srcOffset: 0, dstTile: 64 + t, dstOffset: 0, bytes: 4096 }));
    const c = exchangeCost({ id: 0, name: 'x', op: 'x', copies: copyTable(copies) }, device);
    expect(c.linkCycles).toBe(Math.ceil(1000e-9 * 1.33e9 + (16 * 4096) / gwRate));
    // The same copy inside one domain (IPU 0 -> IPU 2, up the rail) is about 3x faster: 2 IPU-Links of 11 B/cycle against one GW-Link of 8 B/cycle.
    const one = resolveDevice({ preset: 'm2000', ipus: 8, tiles: 16 }, 'c.yaml');
    const inside = exchangeCost({ id: 0, name: 'x', op: 'x', copies: copyTable(copies.map((k) => ({ ...k, dstTile: 32 + (k.dstTile - 64) }))) }, one);
    expect(inside.linkCycles).toBeLessThan(c.linkCycles! / 2);
  });

  it("a collective's ring step crossing domains is costed at the GW-Link rate", async () => {
    const codelets = await loadCodeletRegistry([]);
    // 8 replicas of one 16-tile IPU, 1M float32 elements: a ring step sends an eighth of 4 MiB to the next replica.
    const replica = resolveDevice({ preset: 'm2000', ipus: 1, tiles: 16, linkDomainIpus: 4 }, 'c.yaml');
    const t = { id: 0, name: 'g', dtype: 'float32' as const, shape: [1 << 20], category: 'gradient' as const, intervals: tensorIntervals(Array.from({ length: 16 }, (_, k) => ({ tile: k, begin: k << 16, end: (k + 1) << 16, offset: 0 }))) };
    const exchanges = (domain: number) =>
      allReducePhases(t, { ...replica, linkDomainIpus: domain }, { replicas: 8, systemIpus: 8, method: 'clockwise' }, codelets).filter((p) => p.kind === 'exchange');
    const fragment = (4 << 20) / 8;
    const gwRate = (12.5e9 * 0.85) / 1.33e9;
    // Two domains of 4: replica 3 -> 4 and 7 -> 0 cross, each through one GW group (IPU 3 walks to 0 first, west from an odd IPU).
    const split = exchanges(4);
    expect(split[0].cycles).toBe(Math.ceil(1000e-9 * 1.33e9 + fragment / gwRate));
    // One domain of 8: IPU-Links only, far faster.
    const whole = exchanges(8);
    expect(whole[0].cycles).toBeLessThan(split[0].cycles / 2);
  });
});
