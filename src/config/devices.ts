/**
 * Device presets (configs/devices/*.yaml) and the `device:` key of a config:
 * a preset name, a path to a device YAML, or `{preset: mk2, tiles: 64, ...}`.
 * Every number of a DeviceSpec comes from a YAML file that cites its source.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeviceSpec } from '../../sim/device.js';
import { linkDomainProblem } from '../../sim/links.js';
import { closest, UserError } from '../errors.js';
import {
  DEVICE_FIELDS,
  LINK_FIELDS,
  STREAMING_MEMORY_FIELDS,
  deviceObjectSchema,
  fixedLocator,
  issuesToUserError,
  parseWith,
  readYamlFile,
  type DeviceObject,
  type YamlSource,
} from './schema.js';
import type { SourceLocation } from './types.js';

/** Preset order in listings; any other preset file follows, by name. */
const PRESET_ORDER = ['tiny', 'mk1', 'mk2', 'bow', 'm2000', 'pod16', 'pod64', 'pod128', 'pod256', 'bow2000', 'bowpod16'];

let presetsDirCache: string | undefined;

/**
 * The folder holding the preset files. This module runs from
 * src/config/devices.ts (tsx, vitest) and from dist/src/config/devices.js, so
 * walk up from it to the package root (the folder with package.json and
 * configs/devices).
 */
export function devicePresetsDir(): string {
  if (presetsDirCache) return presetsDirCache;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'configs', 'devices');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return (presetsDirCache = candidate);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`tilesim: cannot find configs/devices above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Names of the preset files, in listing order. */
export function devicePresetNames(): string[] {
  const names = readdirSync(devicePresetsDir())
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length));
  const rank = (n: string) => (PRESET_ORDER.includes(n) ? PRESET_ORDER.indexOf(n) : PRESET_ORDER.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

const fileCache = new Map<string, DeviceSpec>();

function copy(d: DeviceSpec): DeviceSpec {
  return { ...d, ampMacsPerCycle: { ...d.ampMacsPerCycle } };
}

/** A preset by name (tiny, mk1, mk2, bow, or any configs/devices/<name>.yaml). */
export function loadDevicePreset(name: string): DeviceSpec {
  const names = devicePresetNames();
  if (!names.includes(name)) {
    const hint = closest(name, names);
    throw new UserError(
      `unknown device preset '${name}'${hint ? `; did you mean '${hint}'?` : ''} (presets: ${names.join(', ')}; or give a path to a device YAML)`,
    );
  }
  return loadDeviceFile(path.join(devicePresetsDir(), `${name}.yaml`));
}

/** Every preset, in listing order (for `sim devices`). */
export function listDevicePresets(): DeviceSpec[] {
  return devicePresetNames().map(loadDevicePreset);
}

/**
 * A device YAML file: every DeviceSpec field, or `preset:` (a preset name or a
 * path relative to this file) plus fields to override. `name` defaults to the
 * file name.
 */
export function loadDeviceFile(file: string): DeviceSpec {
  return loadDeviceFileChain(path.resolve(file), []);
}

function loadDeviceFileChain(abs: string, chain: string[]): DeviceSpec {
  const cached = fileCache.get(abs);
  if (cached) return copy(cached);
  if (chain.includes(abs)) throw new UserError(`device files include each other: ${[...chain, abs].join(' -> ')}`);
  const src: YamlSource = readYamlFile(abs, 'device file');
  const obj = parseWith(deviceObjectSchema, src);
  const defaultName = path.basename(abs).replace(/\.ya?ml$/i, '');
  let spec: DeviceSpec;
  if (obj.preset !== undefined) {
    const base = resolveBase(obj.preset, path.dirname(abs), 'preset', src.locAt(['preset']), [...chain, abs]);
    spec = merge(base, obj, obj.name ?? defaultName);
  } else {
    spec = fullSpec(obj, obj.name ?? defaultName);
  }
  checkLinks(spec, `device file ${abs}`);
  fileCache.set(abs, spec);
  return copy(spec);
}

/** True when a `device:` string is a file path rather than a preset name. */
function looksLikePath(s: string): boolean {
  return /[\\/]/.test(s) || /\.ya?ml$/i.test(s);
}

/** A preset name or a device-file path (relative to baseDir); `where` names the key in messages. */
function resolveBase(preset: string, baseDir: string, where: string, loc: SourceLocation | undefined, chain: string[]): DeviceSpec {
  try {
    if (looksLikePath(preset)) return loadDeviceFileChain(path.resolve(baseDir, preset), chain);
    return loadDevicePreset(preset);
  } catch (e) {
    // Say where the bad reference is, unless the error is inside the referenced file.
    if (e instanceof UserError && !e.loc) throw new UserError(`${where}: ${e.message}`, loc);
    throw e;
  }
}

/** The DeviceSpec fields an object sets (tiles → tilesPerIpu). */
function overrides(obj: DeviceObject): Partial<DeviceSpec> {
  const out: Partial<DeviceSpec> = {};
  for (const k of [...DEVICE_FIELDS, ...LINK_FIELDS, ...STREAMING_MEMORY_FIELDS]) {
    const v = obj[k];
    if (v !== undefined && k !== 'ampMacsPerCycle') (out as Record<string, unknown>)[k] = v;
  }
  if (obj.tiles !== undefined) out.tilesPerIpu = obj.tiles;
  return out;
}

function merge(base: DeviceSpec, obj: DeviceObject, name: string): DeviceSpec {
  return {
    ...base,
    ...overrides(obj),
    name,
    ampMacsPerCycle: { ...base.ampMacsPerCycle, ...definedOnly(obj.ampMacsPerCycle ?? {}) },
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function fullSpec(obj: DeviceObject, name: string): DeviceSpec {
  // The schema has checked that every field is present when there is no preset.
  const amp = obj.ampMacsPerCycle as { float16: number; float32: number };
  return { name, ...(overrides(obj) as Omit<DeviceSpec, 'name' | 'ampMacsPerCycle'>), ampMacsPerCycle: { ...amp } };
}

/** A readable name for a preset with overridden fields, e.g. `mk2(tilesPerIpu=64)`. */
function overriddenName(baseName: string, obj: DeviceObject): string {
  const parts = Object.entries(overrides(obj)).map(([k, v]) => `${k}=${v}`);
  for (const [k, v] of Object.entries(definedOnly(obj.ampMacsPerCycle ?? {}))) parts.push(`ampMacsPerCycle.${k}=${v}`);
  return parts.length ? `${baseName}(${parts.join(',')})` : baseName;
}

/**
 * The `device:` value of a config: a preset name, a path to a device YAML
 * (relative to the config file), or an object `{preset: mk2, tiles: 64, ...}`
 * (`preset` may also be a path; without `preset` the object must give every
 * field). `loc` is where the value is in the config, for messages.
 * An overridden preset is named after its changes, e.g. `mk2(tilesPerIpu=64)`,
 * unless the object gives `name`.
 */
export function resolveDevice(value: unknown, configFile: string, loc?: SourceLocation): DeviceSpec {
  const baseDir = path.dirname(path.resolve(configFile));
  if (typeof value === 'string') {
    if (value.length === 0) throw new UserError('device: expected a preset name or a path, found an empty string', loc);
    return resolveBase(value, baseDir, 'device', loc, []);
  }
  const r = deviceObjectSchema.safeParse(value);
  // Normally the config schema has reported these with exact lines already.
  if (!r.success) throw issuesToUserError(r.error.issues, fixedLocator({ device: value }, loc), { device: value }, ['device']);
  const obj = r.data;
  if (obj.preset === undefined) return checkLinks(fullSpec(obj, obj.name ?? 'custom'), 'device', loc);
  const base = resolveBase(obj.preset, baseDir, 'device.preset', loc, []);
  return checkLinks(merge(base, obj, obj.name ?? overriddenName(base.name, obj)), 'device', loc);
}

/** The link fields must fit together (sim/links.ts: domains tile the system by whole machines). */
function checkLinks(spec: DeviceSpec, where: string, loc?: SourceLocation): DeviceSpec {
  const problem = linkDomainProblem(spec);
  if (problem) throw new UserError(`${where}: ${problem}`, loc);
  return spec;
}
