/**
 * summary.json's `links`: the bytes each IPU-Link and GW-Link group of the
 * system carried (sim/links.ts), per step and in all, and its utilisation:
 * the fraction of the run's cycles the group would need to move them at its
 * rate. Drawn from the exchanges' Phase.links, so it covers IpuCopy
 * exchanges and collectives' ring steps alike; when replicated, every
 * replica's traffic on the whole system's groups.
 */
import type { DeviceSpec } from '../../sim/device.js';
import { groupBytesPerCycle, groupIpu, groupName, isGwGroup, linkDomains, linkModel } from '../../sim/links.js';
import type { Phase } from '../../sim/profile.js';

export interface LinkGroupRow {
  /** sim/links.ts group id. */
  group: number;
  /** "IPU 3 up", "machine 0 GW east". */
  name: string;
  kind: 'ipuLink' | 'gwLink';
  /** The IPU the data leaves (a GW group: its machine's first IPU). */
  ipu: number;
  /** The group's rate. */
  bytesPerCycle: number;
  /** Bytes through it over the run. */
  bytes: number;
  /** Bytes through it in each step, in the order of summary.steps. */
  bytesPerStep: number[];
  /** Cycles it was busy moving them: bytes / bytesPerCycle. */
  busyCycles: number;
  /** busyCycles / the run's cycles. */
  utilisation: number;
}

export interface LinkSummary {
  /** IPUs of the whole system (replicas x a replica's IPUs). */
  systemIpus: number;
  /** IPU-Link domains, joined by GW-Links when more than one. */
  domains: number;
  /** Every group that carried bytes, by id. */
  groups: LinkGroupRow[];
}

/** `device` is the program's (one replica's); `systemIpus` the whole system's; `steps` the step numbers in summary order. */
export function linkSummary(device: DeviceSpec, systemIpus: number, phases: readonly Phase[], steps: readonly number[], totalCycles: number): LinkSummary | undefined {
  if (systemIpus <= 1) return undefined;
  const system: DeviceSpec = { ...device, ipus: systemIpus };
  const stepIndex = new Map(steps.map((s, i) => [s, i]));
  const rows = new Map<number, LinkGroupRow>();
  const perGateway = linkModel(system).ipusPerGateway;
  for (const p of phases) {
    if (!p.links) continue;
    const at = stepIndex.get(p.step);
    for (const [g, bytes] of p.links) {
      let row = rows.get(g);
      if (!row) {
        const rate = groupBytesPerCycle(g, system);
        row = { group: g, name: groupName(g, systemIpus), kind: isGwGroup(g, systemIpus) ? 'gwLink' : 'ipuLink', ipu: groupIpu(g, systemIpus, perGateway), bytesPerCycle: rate, bytes: 0, bytesPerStep: steps.map(() => 0), busyCycles: 0, utilisation: 0 };
        rows.set(g, row);
      }
      row.bytes += bytes;
      if (at !== undefined) row.bytesPerStep[at] += bytes;
    }
  }
  const groups = [...rows.values()].sort((a, b) => a.group - b.group);
  for (const r of groups) {
    r.busyCycles = r.bytes / r.bytesPerCycle;
    r.utilisation = totalCycles > 0 ? r.busyCycles / totalCycles : 0;
  }
  return { systemIpus, domains: linkDomains(system), groups };
}
