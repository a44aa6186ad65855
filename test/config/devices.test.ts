import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DeviceSpec } from '../../sim/device.js';
import { devicePresetsDir, listDevicePresets, loadDeviceFile, loadDevicePreset, resolveDevice } from '../../src/config/devices.js';
import { DEVICE_FIELDS, LINK_FIELDS } from '../../src/config/schema.js';
import { LINK_DEFAULTS } from '../../sim/links.js';
import { at, userError, writeFiles } from './helpers.js';

/** Every DeviceSpec field, listed by hand so a new field without a preset value fails here. */
const SPEC_FIELDS: (keyof DeviceSpec)[] = [
  'name',
  'ipus',
  'tilesPerIpu',
  'clockHz',
  'bytesPerTile',
  'workersPerTile',
  'vectorWidthBits',
  'exchangeBytesPerCycle',
  'tilesPerSharedBus',
  'syncCycles',
  'hostLinkBytesPerSecond',
  'hostCopyLatencyCycles',
  'ampMacsPerCycle',
  'loadBytesPerCycle',
  'storeBytesPerCycle',
  'supervisorOverheadCycles',
  'allocationAlignment',
  'minBytesPerTile',
  'codeBytesPerCodelet',
  'availableMemoryProportion',
];

describe('device presets', () => {
  it('lists the chips, then the multi-IPU systems, in that order', () => {
    expect(listDevicePresets().map((d) => d.name)).toEqual(['tiny', 'mk1', 'mk2', 'bow', 'm2000', 'pod16', 'pod64', 'pod128', 'pod256', 'bow2000', 'bowpod16']);
  });

  it('the schema knows every DeviceSpec field', () => {
    expect(['name', ...DEVICE_FIELDS].sort()).toEqual([...SPEC_FIELDS].sort());
    // The IPU-Link fields are optional (sim/links.ts has their defaults); a multi-IPU preset sets them all.
    // linkDomainIpus has no default: absent, the whole system is one IPU-Link domain (only pod128/pod256 set it).
    expect([...LINK_FIELDS].sort()).toEqual([...Object.keys(LINK_DEFAULTS), 'linkDomainIpus'].sort());
    const m2000 = listDevicePresets().find((d) => d.name === 'm2000')!;
    for (const k of LINK_FIELDS) if (k !== 'linkDomainIpus') expect(m2000[k], k).toBeDefined();
  });

  for (const name of ['tiny', 'mk1', 'mk2', 'bow']) {
    it(`${name}.yaml gives every field, each with a sourced comment`, () => {
      const d = loadDevicePreset(name);
      expect(Object.keys(d).sort()).toEqual([...SPEC_FIELDS].sort());
      for (const k of SPEC_FIELDS) expect(d[k], k).toBeDefined();
      expect(d.name).toBe(name);
      expect(Object.keys(d.ampMacsPerCycle).sort()).toEqual(['float16', 'float32']);
      // Every value line cites a tag.
      const text = readFileSync(path.join(devicePresetsDir(), `${name}.yaml`), 'utf8');
      for (const line of text.split('\n')) {
        if (/^\s*[A-Za-z0-9]+:\s*\S/.test(line) && !/^name:/.test(line) && !/^ampMacsPerCycle:/.test(line))
          expect(line, line).toMatch(/#.*\b(SPEC|MODEL|MEAS|DERIVED|GUESS|choice)\b/);
      }
    });
  }

  it('has the documented numbers', () => {
    const [tiny, mk1, mk2, bow] = ['tiny', 'mk1', 'mk2', 'bow'].map(loadDevicePreset);
    expect([mk1, mk2, bow].map((d) => d.tilesPerIpu)).toEqual([1216, 1472, 1472]);
    expect([mk1, mk2, bow].map((d) => d.bytesPerTile)).toEqual([262144, 638976, 638976]);
    expect([mk1, mk2, bow].map((d) => d.clockHz)).toEqual([1.6e9, 1.33e9, 1.85e9]);
    expect([mk1, mk2, bow].map((d) => d.ampMacsPerCycle)).toEqual([
      { float16: 32, float32: 8 },
      { float16: 64, float32: 16 },
      { float16: 64, float32: 16 },
    ]);
    expect(mk2.hostCopyLatencyCycles).toBe(2660);
    expect({ ...tiny, name: 'mk2', tilesPerIpu: 1472 }).toEqual(mk2);
    expect(tiny.tilesPerIpu).toBe(4);
  });

  it('returns copies: changing one does not change the next', () => {
    const a = loadDevicePreset('mk2');
    a.tilesPerIpu = 1;
    a.ampMacsPerCycle.float16 = 1;
    expect(loadDevicePreset('mk2').tilesPerIpu).toBe(1472);
    expect(loadDevicePreset('mk2').ampMacsPerCycle.float16).toBe(64);
  });

  it('an unknown preset suggests a close one', () => {
    expect(userError(() => loadDevicePreset('bwo')).message).toContain("did you mean 'bow'?");
  });
});

describe('resolveDevice', () => {
  const cfg = '/somewhere/config.yaml';
  const loc = { file: 'config.yaml', line: 3, col: 9 };

  it('a preset name', () => {
    expect(resolveDevice('bow', cfg, loc)).toEqual(loadDevicePreset('bow'));
  });

  it('{preset: mk2, tiles: 64} overrides tilesPerIpu and keeps the rest', () => {
    const d = resolveDevice({ preset: 'mk2', tiles: 64 }, cfg, loc);
    expect(d).toEqual({ ...loadDevicePreset('mk2'), tilesPerIpu: 64, name: 'mk2(tilesPerIpu=64)' });
  });

  it('any field may be overridden, amp rates one at a time', () => {
    const d = resolveDevice({ preset: 'mk1', name: 'fast', clockHz: 2e9, ipus: 2, ampMacsPerCycle: { float32: 12 } }, cfg, loc);
    expect(d).toMatchObject({ name: 'fast', clockHz: 2e9, ipus: 2, tilesPerIpu: 1216, ampMacsPerCycle: { float16: 32, float32: 12 } });
  });

  it('wrong overrides are UserErrors naming the key', () => {
    expect(userError(() => resolveDevice({ preset: 'mk2', tiles: 0 }, cfg, loc)).message).toBe(
      'config.yaml:3:9: device.tiles: expected an integer >= 1, found 0',
    );
    expect(userError(() => resolveDevice({ preset: 'mk2', tiles: 4, tilesPerIpu: 4 }, cfg, loc)).message).toContain('not both');
    expect(userError(() => resolveDevice({ tiles: 4 }, cfg, loc)).message).toContain("missing 'ipus'");
    expect(userError(() => resolveDevice({ preset: 'mk9' }, cfg, loc)).message).toContain("device.preset: unknown device preset 'mk9'");
  });

  it('a device file: complete, or a preset plus changes, relative to the config', () => {
    const mk2Text = readFileSync(path.join(devicePresetsDir(), 'mk2.yaml'), 'utf8').replace('name: mk2\n', '');
    const dir = writeFiles({
      'config.yaml': '',
      'full.yaml': mk2Text.replace('tilesPerIpu: 1472', 'tilesPerIpu: 100'),
      'sub/based.yaml': 'preset: ../full.yaml\nclockHz: 1e9\n',
    });
    const full = resolveDevice('full.yaml', path.join(dir, 'config.yaml'), loc);
    expect(full).toEqual({ ...loadDevicePreset('mk2'), name: 'full', tilesPerIpu: 100 });
    const based = resolveDevice('./sub/based.yaml', path.join(dir, 'config.yaml'), loc);
    expect(based).toEqual({ ...full, name: 'based', clockHz: 1e9 });
  });

  it('errors inside a device file name that file, line and key', () => {
    const dir = writeFiles({
      'bad.yaml': 'preset: mk2\nclockHz: fast\n',
      'typo.yaml': 'preset: mk2\nsyncCycle: 100\n',
    });
    let e = userError(() => loadDeviceFile(path.join(dir, 'bad.yaml')));
    expect(e.message).toBe(`${at(path.join(dir, 'bad.yaml'), 2, 10)}clockHz: expected a number > 0, found 'fast' (a string)`);
    e = userError(() => loadDeviceFile(path.join(dir, 'typo.yaml')));
    expect(e.message).toContain(`${at(path.join(dir, 'typo.yaml'), 2, 1)}syncCycle: unknown key 'syncCycle'; did you mean 'syncCycles'?`);
    e = userError(() => resolveDevice('missing.yaml', path.join(dir, 'config.yaml'), loc));
    expect(e.message).toContain('config.yaml:3:9: device: device file not found');
  });
});
