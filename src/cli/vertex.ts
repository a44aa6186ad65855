/** `sim vertex`: one vertex's cycle estimate on one tile, the way PopLibs' estimator tests probe a vertex. */
import type { CodeletRegistry, Codelet } from '../../sim/codelet.js';
import { computeSetCost, vertexCycles as checkedCycles } from '../../sim/cost.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { DeviceDType, FieldValue, Vertex } from '../../sim/program.js';
import { UserError, closest } from '../errors.js';
import { vertexTable } from '../../sim/vertex-table.js';

/** A vertex of `codelet` whose every field holds n elements (k for vector fields: 2 regions of n). */
export function probeVertex(c: Codelet, n: number, dtype: DeviceDType, overrides: Record<string, number> = {}): Vertex {
  const fields: Record<string, FieldValue> = {};
  for (const [name, f] of Object.entries(c.fields)) {
    const r = { offset: 0, count: n, dtype };
    fields[name] = f.vector ? [r, { ...r }] : r;
  }
  // MatMul-like vertices read their sizes from params: a square-ish block with n output elements.
  const side = Math.max(1, Math.round(Math.sqrt(n)));
  const params: Record<string, number> = { offset: 0, scale: 1, alpha: 0.01, lr: 0.01, momentum: 0, dampening: 0, weightDecay: 0, nesterov: 0, rows: side, n: side, k: 16, m: side, rowBegin: 0, transA: 0, transB: 0 };
  return { codelet: c.name, tile: 0, fields, params: { ...params, ...overrides } };
}

export function vertexCommand(registry: CodeletRegistry, name: string, n: number, dtype: DeviceDType, device: DeviceSpec, params: Record<string, number> = {}): string {
  // A custom codelet may be named without its domain when only one domain has that name.
  const qualified = registry.names().filter((k) => k.endsWith(`::${name}`));
  if (!registry.has(name) && qualified.length === 1) name = qualified[0];
  if (!registry.has(name)) {
    const hint = closest(name, registry.names());
    throw new UserError(`no codelet '${name}'${hint ? `; did you mean '${hint}'?` : ''} (known: ${registry.names().join(', ')})`);
  }
  const c = registry.get(name);
  const v = probeVertex(c, n, dtype, params);
  // The params the estimate reads (e.g. AmpMatMul's block sizes), recorded to print them.
  const read = new Set<string>();
  const watched: Vertex = { ...v, params: new Proxy(v.params, { get: (p, k) => (typeof k === 'string' && k in p && read.add(k), Reflect.get(p, k)) }) };
  const probe = { id: 0, name: 'probe', op: 'probe', vertices: vertexTable([v]) };
  const vertexCycles = checkedCycles(c, watched, probe, registry, device);
  const used = [...read].map((k) => `${k}=${v.params[k]}${k in params ? '' : ' (default)'}`);
  const tile = computeSetCost(probe, registry, device);
  return [
    `${name} (${c.kind === 'multi' ? 'MultiVertex' : 'Vertex'}), ${n} x ${dtype} on ${device.name}`,
    `  params            ${used.length ? `${used.join(' ')}  (set them with --param name=value)` : 'none read by the estimate'}`,
    `  vertex estimate   ${vertexCycles} cycles`,
    `  tile compute set  ${tile.cycles} cycles (with ${device.supervisorOverheadCycles} cycles of supervisor launch)`,
    `  time              ${((tile.cycles / device.clockHz) * 1e9).toFixed(1)} ns at ${(device.clockHz / 1e9).toFixed(2)} GHz`,
    ...(c.estimateSource ? [`  source            ${c.estimateSource}`] : []),
  ].join('\n');
}
