/** `sim devices`: the presets side by side, and with --sources each number's citation. */
import { devicePresetSources } from '../config/device-sources.js';
import { listDevicePresets } from '../config/devices.js';
import type { DeviceSpec } from '../../sim/device.js';

/** Rows of field -> value; a nested field (ampMacsPerCycle) gives one row per entry. */
function rows(d: DeviceSpec): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === 'name') continue;
    if (v !== null && typeof v === 'object') for (const [a, b] of Object.entries(v as object)) out.push([`${k}.${a}`, String(b)]);
    else out.push([k, String(v)]);
  }
  return out;
}

export function devicesCommand(o: { json?: boolean; sources?: boolean }): string {
  const presets = listDevicePresets();
  if (o.json) return JSON.stringify(o.sources ? presets.map((p) => ({ ...p, sources: devicePresetSources(p.name) })) : presets, null, 2);
  const table = presets.map(rows);
  // Every field any preset sets, in order of first appearance (multi-IPU presets add the link fields).
  const fields = [...new Set(table.flatMap((t) => t.map(([k]) => k)))];
  const fieldWidth = Math.max(5, ...fields.map((f) => f.length)) + 2;
  if (o.sources) {
    const lines: string[] = [];
    presets.forEach((p, i) => {
      const cites = devicePresetSources(p.name);
      const valueWidth = Math.max(...table[i].map(([, v]) => v.length)) + 2;
      lines.push(`${p.name} (configs/devices/${p.name}.yaml)`);
      for (const [k, v] of table[i]) lines.push(`  ${k.padEnd(fieldWidth)}${v.padEnd(valueWidth)}${cites[k] ?? '(no citation)'}`);
    });
    return lines.join('\n');
  }
  // Each column as wide as its widest cell, two spaces apart.
  const widths = presets.map((p, i) => Math.max(p.name.length, ...table[i].map(([, v]) => v.length)) + 2);
  const lines = ['field'.padEnd(fieldWidth) + presets.map((p, i) => p.name.padStart(widths[i])).join('')];
  const byField = table.map((t) => new Map(t));
  for (const f of fields) lines.push(f.padEnd(fieldWidth) + presets.map((_, i) => (byField[i].get(f) ?? '-').padStart(widths[i])).join(''));
  lines.push('every number cites its source in configs/devices/<name>.yaml: `sim devices --sources` shows them');
  return lines.join('\n');
}
