/**
 * IPU-Links between the chips of a multi-IPU device (ipu-architecture.md §7),
 * as PopLibs' own system model has them (poplibs_test Util.cpp, MODEL):
 *
 * - Topology: a ladder. IPUs 2k and 2k+1 form a pair (a rung); IPUs of one
 *   parity form a rail, neighbours 2 apart. A copy inside a pair crosses the
 *   pair's links; otherwise it crosses the rung first when the parities
 *   differ, then walks the rail 2 IPUs per hop. `torus` (a POD64's 2-D torus)
 *   joins each rail's ends, so a walk takes the shorter way round.
 * - Link groups, one per direction: the pair (ipuLinksPerPair links), up the
 *   rail and down the rail (ipuLinksPerRail each). A group moves
 *   links x ipuLinkBytesPerSecond x ipuLinkEfficiency / clockHz bytes per
 *   cycle; data crosses each group on its route once per receiving IPU, and
 *   an exchange lasts at least (bytes through its busiest group) / (that
 *   group's rate).
 * - Inter-IPU sync: ceil(interIpuSyncNsPerHop ns x clock x hops x 2), hops =
 *   1 + floor(floor(IPUs / 2) / 2): 40 cycles for 2 mk2 IPUs, 200 for 16, 679
 *   for 64. A superstep whose exchange crosses IPUs pays it on top of the
 *   on-chip sync.
 * Every number is a device field with a default from §7 (LINK_DEFAULTS).
 */
import type { DeviceSpec } from './device.js';

export type IpuTopology = 'ladder' | 'torus';

export interface LinkModel {
  topology: IpuTopology;
  ipuLinkBytesPerSecond: number;
  ipuLinkEfficiency: number;
  ipuLinksPerPair: number;
  ipuLinksPerRail: number;
  interIpuSyncNsPerHop: number;
}

/** §7's values (MODEL): a 128 Gbit/s (2^30-based) link at 85% efficiency, 4 links per pair, 2 up and 2 down the rail, 15 ns per sync hop. */
export const LINK_DEFAULTS: LinkModel = {
  topology: 'ladder',
  ipuLinkBytesPerSecond: (128 * 2 ** 30) / 8,
  ipuLinkEfficiency: 0.85,
  ipuLinksPerPair: 4,
  ipuLinksPerRail: 2,
  interIpuSyncNsPerHop: 15,
};

export function linkModel(d: DeviceSpec): LinkModel {
  return {
    topology: d.topology ?? LINK_DEFAULTS.topology,
    ipuLinkBytesPerSecond: d.ipuLinkBytesPerSecond ?? LINK_DEFAULTS.ipuLinkBytesPerSecond,
    ipuLinkEfficiency: d.ipuLinkEfficiency ?? LINK_DEFAULTS.ipuLinkEfficiency,
    ipuLinksPerPair: d.ipuLinksPerPair ?? LINK_DEFAULTS.ipuLinksPerPair,
    ipuLinksPerRail: d.ipuLinksPerRail ?? LINK_DEFAULTS.ipuLinksPerRail,
    interIpuSyncNsPerHop: d.interIpuSyncNsPerHop ?? LINK_DEFAULTS.interIpuSyncNsPerHop,
  };
}

/** Cycles of the inter-IPU sync (0 on one IPU). */
export function interIpuSyncCycles(d: DeviceSpec): number {
  if (d.ipus <= 1) return 0;
  const hops = 1 + Math.floor(Math.floor(d.ipus / 2) / 2);
  return Math.ceil(linkModel(d).interIpuSyncNsPerHop * 1e-9 * d.clockHz * hops * 2);
}

/** Link group kinds, per IPU and direction of travel. */
export const GROUP_KINDS = ['pair', 'up', 'down'] as const;

/** Group id: 3 x (IPU the data leaves) + kind (0 pair, 1 up the rail, 2 down). */
export function groupName(id: number): string {
  return `IPU ${Math.floor(id / 3)} ${GROUP_KINDS[id % 3]}`;
}

/**
 * The link groups a copy from IPU `a` to IPU `b` crosses, in order (none when
 * a = b). With an odd number of IPUs the last has no partner: a route from it
 * walks the rail first and crosses at the end.
 */
export function route(a: number, b: number, ipus: number, topology: IpuTopology): number[] {
  const out: number[] = [];
  const rail = Math.ceil(ipus / 2);
  const walk = (from: number, to: number): number => {
    let cur = from;
    while (cur >> 1 !== to >> 1) {
      const here = cur >> 1;
      const there = to >> 1;
      let up = there > here;
      if (topology === 'torus') {
        const forward = (there - here + rail) % rail;
        up = forward <= rail - forward;
      }
      out.push(3 * cur + (up ? 1 : 2));
      cur = 2 * ((here + (up ? 1 : -1) + rail) % rail) + (cur & 1);
    }
    return cur;
  };
  if ((a & 1) === (b & 1)) walk(a, b);
  else if ((a ^ 1) < ipus) {
    out.push(3 * a);
    walk(a ^ 1, b);
  } else {
    const at = walk(a, b ^ 1);
    out.push(3 * at);
  }
  return out;
}

/** Bytes per cycle group `id` moves. */
export function groupBytesPerCycle(id: number, d: DeviceSpec): number {
  const m = linkModel(d);
  const links = id % 3 === 0 ? m.ipuLinksPerPair : m.ipuLinksPerRail;
  return (links * m.ipuLinkBytesPerSecond * m.ipuLinkEfficiency) / d.clockHz;
}
