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
 *   1 + floor(floor(IPUs of a domain / 2) / 2): 40 cycles for 2 mk2 IPUs, 200 for 16, 679
 *   for 64. A superstep whose exchange crosses IPUs pays it on top of the
 *   on-chip sync.
 * - GW-Links between IPU-Link domains (§7: POD128/256 join POD64s by
 *   GW-Links): `linkDomainIpus` cuts the system into domains of that many
 *   IPUs, each linked inside as above. Every machine (ipusPerGateway IPUs,
 *   one IPU-Gateway) has two GW-Link ports, east and west, and the domains
 *   form a ring of them: machine m of domain k links east to machine m of
 *   domain k + 1 (Graphcore's directly connected GW-Links, a horizontal loop
 *   beside the IPU-Link torus). A copy from IPU a to IPU b of another domain
 *   walks IPU-Links inside a's domain to the IPU at b's place there, leaves
 *   through that machine's gateway, crosses domains the shorter way round
 *   (a tie, e.g. two domains, goes east from even IPUs and west from odd
 *   ones, so both cables of a machine carry traffic), and its last gateway
 *   delivers it to b. A GW group (one machine, one direction) moves
 *   gwLinkBytesPerSecond x gwLinkEfficiency / clockHz bytes per cycle and
 *   adds gwLinkLatencyNs once to the exchange it limits; the inter-IPU sync
 *   crossing domains pays the latency there and back per domain hop.
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
  /** IPUs per IPU-Link domain (the whole system when the device does not say). */
  linkDomainIpus: number;
  /** IPUs behind one IPU-Gateway (one machine). */
  ipusPerGateway: number;
  /** Bytes per second of one GW-Link, one direction. */
  gwLinkBytesPerSecond: number;
  gwLinkEfficiency: number;
  /** Nanoseconds a GW-Link adds to an exchange crossing it (and, there and back, to a sync). */
  gwLinkLatencyNs: number;
}

/**
 * §7's values (MODEL): a 128 Gbit/s (2^30-based) link at 85% efficiency, 4
 * links per pair, 2 up and 2 down the rail, 15 ns per sync hop. GW-Links:
 * 100 Gbit/s (SPEC), 4 IPUs per gateway (SPEC); their efficiency (PopLibs'
 * IPU-Link factor) and latency (1 us) are assumptions, no public figure.
 * linkDomainIpus has no default here: absent, the whole system is one domain.
 */
export const LINK_DEFAULTS: Omit<LinkModel, 'linkDomainIpus'> = {
  topology: 'ladder',
  ipuLinkBytesPerSecond: (128 * 2 ** 30) / 8,
  ipuLinkEfficiency: 0.85,
  ipuLinksPerPair: 4,
  ipuLinksPerRail: 2,
  interIpuSyncNsPerHop: 15,
  ipusPerGateway: 4,
  gwLinkBytesPerSecond: 100e9 / 8,
  gwLinkEfficiency: 0.85,
  gwLinkLatencyNs: 1000,
};

export function linkModel(d: DeviceSpec): LinkModel {
  return {
    topology: d.topology ?? LINK_DEFAULTS.topology,
    ipuLinkBytesPerSecond: d.ipuLinkBytesPerSecond ?? LINK_DEFAULTS.ipuLinkBytesPerSecond,
    ipuLinkEfficiency: d.ipuLinkEfficiency ?? LINK_DEFAULTS.ipuLinkEfficiency,
    ipuLinksPerPair: d.ipuLinksPerPair ?? LINK_DEFAULTS.ipuLinksPerPair,
    ipuLinksPerRail: d.ipuLinksPerRail ?? LINK_DEFAULTS.ipuLinksPerRail,
    interIpuSyncNsPerHop: d.interIpuSyncNsPerHop ?? LINK_DEFAULTS.interIpuSyncNsPerHop,
    // A replica's device is part of the system: its IPUs never span more than one domain's worth.
    linkDomainIpus: Math.min(d.linkDomainIpus ?? d.ipus, d.ipus),
    ipusPerGateway: d.ipusPerGateway ?? LINK_DEFAULTS.ipusPerGateway,
    gwLinkBytesPerSecond: d.gwLinkBytesPerSecond ?? LINK_DEFAULTS.gwLinkBytesPerSecond,
    gwLinkEfficiency: d.gwLinkEfficiency ?? LINK_DEFAULTS.gwLinkEfficiency,
    gwLinkLatencyNs: d.gwLinkLatencyNs ?? LINK_DEFAULTS.gwLinkLatencyNs,
  };
}

/** Why a device's link domains cannot be built (undefined when they can): domains must tile the system, by whole machines. */
export function linkDomainProblem(d: DeviceSpec): string | undefined {
  const m = linkModel(d);
  if (d.ipus % m.linkDomainIpus !== 0) return `linkDomainIpus ${m.linkDomainIpus} does not divide ipus ${d.ipus}; give a divisor of ipus (e.g. 64 for a POD128 of two POD64s)`;
  if (m.linkDomainIpus < d.ipus && m.linkDomainIpus % m.ipusPerGateway !== 0)
    return `linkDomainIpus ${m.linkDomainIpus} is not a whole number of machines of ipusPerGateway ${m.ipusPerGateway} IPUs; give a multiple of ${m.ipusPerGateway}`;
  return undefined;
}

/** IPU-Link domains of the system (1: no GW-Links). */
export function linkDomains(d: DeviceSpec): number {
  return Math.max(1, Math.floor(d.ipus / linkModel(d).linkDomainIpus));
}

/** Cycles of the inter-IPU sync (0 on one IPU). */
export function interIpuSyncCycles(d: DeviceSpec): number {
  if (d.ipus <= 1) return 0;
  const m = linkModel(d);
  // PopLibs' hops over IPU-Links, inside a domain.
  const hops = 1 + Math.floor(Math.floor(m.linkDomainIpus / 2) / 2);
  // Across GW-Links: there and back over the furthest domain (half-way round the ring).
  const gwNs = 2 * m.gwLinkLatencyNs * Math.floor(linkDomains(d) / 2);
  return Math.ceil((m.interIpuSyncNsPerHop * hops * 2 + gwNs) * 1e-9 * d.clockHz);
}

/** Link group kinds, per IPU and direction of travel. */
export const GROUP_KINDS = ['pair', 'up', 'down'] as const;

/**
 * Group id: 3 x (IPU the data leaves) + kind (0 pair, 1 up the rail, 2 down)
 * for IPU-Links; after those (from 3 x ipus), 2 x machine + (0 east, 1 west)
 * for a machine's GW-Links.
 */
export function groupName(id: number, ipus: number): string {
  if (isGwGroup(id, ipus)) {
    const k = id - 3 * ipus;
    return `machine ${Math.floor(k / 2)} GW ${k % 2 === 0 ? 'east' : 'west'}`;
  }
  return `IPU ${Math.floor(id / 3)} ${GROUP_KINDS[id % 3]}`;
}

export function isGwGroup(id: number, ipus: number): boolean {
  return id >= 3 * ipus;
}

/** The IPU a group's data leaves (for a GW group, the machine's first IPU). */
export function groupIpu(id: number, ipus: number, ipusPerGateway: number): number {
  return isGwGroup(id, ipus) ? Math.floor((id - 3 * ipus) / 2) * ipusPerGateway : Math.floor(id / 3);
}

/**
 * The link groups a copy from IPU `a` to IPU `b` crosses, in order (none when
 * a = b), in a system of `ipus` IPUs whose IPU-Link domains hold
 * `domainIpus` each (default: one domain) and whose gateways serve
 * `perGateway` IPUs (top of the file).
 */
export function route(a: number, b: number, ipus: number, topology: IpuTopology, domainIpus = ipus, perGateway = LINK_DEFAULTS.ipusPerGateway): number[] {
  const size = Math.min(domainIpus, ipus);
  const from = Math.floor(a / size);
  const to = Math.floor(b / size);
  const base = from * size;
  const local = (x: number, y: number): number[] => domainRoute(x - base, y - base, size, topology).map((g) => g + 3 * base);
  if (from === to) return local(a, b);
  // To b's place in a's domain, out through that machine's gateway, round the ring of domains.
  const place = b - to * size;
  const out = local(a, base + place);
  const n = Math.floor(ipus / size);
  const forward = (to - from + n) % n;
  const east = forward < n - forward || (forward === n - forward && (a & 1) === 0);
  const machinesPerDomain = size / perGateway;
  const machine = Math.floor(place / perGateway);
  for (let k = from; k !== to; k = (k + (east ? 1 : -1) + n) % n) out.push(3 * ipus + 2 * (k * machinesPerDomain + machine) + (east ? 0 : 1));
  return out;
}

/**
 * The IPU-Link groups from `a` to `b` inside one domain of `ipus` IPUs. With
 * an odd number of IPUs the last has no partner: a route from it walks the
 * rail first and crosses at the end.
 */
function domainRoute(a: number, b: number, ipus: number, topology: IpuTopology): number[] {
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
  if (isGwGroup(id, d.ipus)) return (m.gwLinkBytesPerSecond * m.gwLinkEfficiency) / d.clockHz;
  const links = id % 3 === 0 ? m.ipuLinksPerPair : m.ipuLinksPerRail;
  return (links * m.ipuLinkBytesPerSecond * m.ipuLinkEfficiency) / d.clockHz;
}

/** Cycles group `id` takes to move `bytes` (a GW group adds its latency). */
export function groupCycles(id: number, bytes: number, d: DeviceSpec): number {
  const latency = isGwGroup(id, d.ipus) ? linkModel(d).gwLinkLatencyNs * 1e-9 * d.clockHz : 0;
  return Math.ceil(latency + bytes / groupBytesPerCycle(id, d));
}

/** The routes of a system as `route` takes them (domains and gateways from the device). */
export function deviceRoute(a: number, b: number, d: DeviceSpec): number[] {
  const m = linkModel(d);
  return route(a, b, d.ipus, m.topology, m.linkDomainIpus, m.ipusPerGateway);
}
