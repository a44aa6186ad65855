/**
 * summary.json's `collectives`: each all-reduce of a replicated run, with
 * what PopLibs' collectives tool reports (ipu-architecture.md §7): the bytes
 * reduced ("algorithm bytes", per replica), the bytes each replica sends
 * over IPU-Links (x 2(n - 1)/n for a ring all-reduce), and both per IPU per
 * cycle of the all-reduce. With replicated tensor sharding, each
 * reduce-scatter and all-gather has its row (x (n - 1)/n over the links).
 */
import { allReduceBytes, collectiveName, type CollectiveMethod } from '../../sim/collectives.js';
import { innerSteps, type DeviceProgram, type ProgramStep } from '../../sim/program.js';
import type { Phase } from '../../sim/profile.js';

export interface CollectiveRow {
  op: string;
  tensor: string;
  kind: 'allReduce' | 'reduceScatter' | 'allGather';
  replicas: number;
  method: { reduceScatter: CollectiveMethod; allGather: CollectiveMethod };
  /** Times it ran in the run. */
  calls: number;
  /** Cycles of one call (mean over the calls). */
  cycles: number;
  algorithmBytes: number;
  linkBytes: number;
  algorithmBytesPerIpuPerCycle: number;
  linkBytesPerIpuPerCycle: number;
}

export function collectiveRows(program: DeviceProgram, phases: readonly Phase[]): CollectiveRow[] {
  const rep = program.replication;
  if (!rep) return [];
  const steps: { tensor: number; op: string; kind: CollectiveRow['kind'] }[] = [];
  const walk = (list: readonly ProgramStep[]): void => {
    for (const s of list) {
      if (s.kind === 'allReduce' || s.kind === 'reduceScatter' || s.kind === 'allGather') steps.push(s);
      else for (const inner of innerSteps(s)) walk(inner);
    }
  };
  walk(program.programs.batch ?? []);
  return steps.map(({ tensor, op, kind }) => {
    const t = program.tensors[tensor];
    const name = collectiveName(kind, t.name);
    const first = kind === 'allGather' ? 'all-gather' : 'reduce-scatter';
    let cycles = 0;
    let calls = 0;
    let syncs = 0;
    for (const p of phases) {
      if (p.op !== op) continue;
      if (p.kind === 'sync') syncs += p.cycles;
      else if (p.name.startsWith(`${name} `)) {
        cycles += p.cycles + syncs;
        if (p.name.startsWith(`${name} ${first} 1/`) && p.name.endsWith(' slice')) calls++;
      }
      if (p.kind !== 'sync') syncs = 0;
    }
    const bytes = allReduceBytes(t, program.device, rep);
    // Half an all-reduce: (n - 1)/n of the data over the links.
    const linkBytes = kind === 'allReduce' ? bytes.linkBytes : bytes.linkBytes / 2;
    const perCall = calls > 0 ? cycles / calls : 0;
    const perIpu = (b: number): number => (perCall > 0 ? b / program.device.ipus / perCall : 0);
    return {
      op,
      tensor: t.name,
      kind,
      replicas: rep.replicas,
      method: bytes.method,
      calls,
      cycles: perCall,
      algorithmBytes: bytes.algorithmBytes,
      linkBytes,
      algorithmBytesPerIpuPerCycle: perIpu(bytes.algorithmBytes),
      linkBytesPerIpuPerCycle: perIpu(linkBytes),
    };
  });
}
