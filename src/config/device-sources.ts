/**
 * The citations of a device preset: every number in configs/devices/*.yaml
 * carries a trailing comment naming its source and a tag (SPEC, MODEL, MEAS,
 * DERIVED, GUESS). `sim devices --sources` shows them beside the values.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isScalar, parseDocument } from 'yaml';
import { devicePresetsDir } from './devices.js';

/** Field (`ampMacsPerCycle.float16` for nested ones) -> its comment, for a preset file and the preset it builds on. */
export function devicePresetSources(name: string, seen: string[] = []): Record<string, string> {
  const file = path.join(devicePresetsDir(), `${name}.yaml`);
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const out: Record<string, string> = {};
  if (!isMap(doc.contents)) return out;
  const tidy = (c: string | null | undefined) => (c ?? '').split('\n').map((l) => l.trim()).join(' ').trim();
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (key === 'preset' && isScalar(pair.value) && typeof pair.value.value === 'string' && !seen.includes(name)) {
      Object.assign(out, { ...devicePresetSources(pair.value.value, [...seen, name]), ...out });
      continue;
    }
    if (isMap(pair.value)) {
      for (const inner of pair.value.items) {
        const c = isScalar(inner.value) ? tidy(inner.value.comment) : '';
        if (c) out[`${key}.${isScalar(inner.key) ? String(inner.key.value) : String(inner.key)}`] = c;
      }
    } else if (isScalar(pair.value) && pair.value.comment) {
      out[key] = tidy(pair.value.comment);
    }
  }
  return out;
}
