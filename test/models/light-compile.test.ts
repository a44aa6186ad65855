/**
 * The nine light models (../shared/conformance/onnx-light) compiled for a full
 * mk2 (1472 tiles of 624 KiB), forward only: each either fits, with its memory
 * reported per tile (always-live data, temporaries at their peak, code, vertex
 * state), or stops with the out-of-memory error that names the tile and the
 * tensors filling it. The models that must fit are listed in
 * test/conformance/floor.json ("onnx-light-compiled"); the list only grows.
 * VGG-19 is planned with a lower availableMemoryProportion (LIGHT_DEVICE_SETTINGS
 * in test/conformance/light.ts), as a Poplar user would.
 *
 * A minute and a half of work in a 2 GB heap (ResNet-50 makes ~4 million exchange
 * copies), so not part of `npm test`: `npm run test:models` (vitest.models.config.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { ROOT } from '../helpers.js';
import { compileLight, lightDevice } from '../conformance/light.js';
import { suiteDir } from '../conformance/paths.js';

const mk2 = loadDevicePreset('mk2');
const dir = suiteDir('onnx-light');
const models = readdirSync(dir)
  .filter((f) => f.endsWith('.onnx'))
  .sort();
const mustFit = (JSON.parse(readFileSync(path.join(ROOT, 'test/conformance/floor.json'), 'utf8')) as { 'onnx-light-compiled': string[] })['onnx-light-compiled'];
const kib = (b: number) => `${Math.round(b / 1024)} KiB`;

describe('light models compile for mk2 and report their memory', () => {
  it('there are nine, and the floor names only models that exist', () => {
    expect(models).toHaveLength(9);
    for (const m of mustFit) expect(models, m).toContain(`${m}.onnx`);
  });

  for (const f of models) {
    const name = f.replace(/\.onnx$/, '');
    it(name, async () => {
      const r = await compileLight(path.join(dir, f), lightDevice(name, mk2));
      if (r.status === 'compiled') {
        const u = r.maxTileUse;
        console.log(
          `${name}: fits mk2 in ${r.seconds.toFixed(0)} s: ${r.tilesUsed} tiles, busiest tile ${r.maxTile} ${kib(r.maxTileBytes)} ` +
            `(${kib(u.alwaysLive)} always live, ${kib(u.temporaries)} temporaries, ${kib(u.code)} code, ${kib(u.vertexState)} vertex state), mean ${kib(r.meanTileBytes)}`,
        );
        expect(r.maxTileBytes).toBeLessThanOrEqual(mk2.bytesPerTile);
        expect(u.alwaysLive + u.temporaries + u.code + u.vertexState).toBe(u.total);
        expect(u.total).toBe(r.maxTileBytes);
        // A whole network spreads over the chip, not onto a few tiles.
        expect(r.tilesUsed).toBeGreaterThan(mk2.tilesPerIpu * 0.9);
      } else {
        console.log(`${name}: does not fit mk2 (${r.seconds.toFixed(0)} s): ${r.message.split('\n').slice(0, 4).join(' | ')}`);
        expect(mustFit, `${name} is in the floor's onnx-light-compiled list but ran out of memory:\n${r.message}`).not.toContain(name);
        expect(r.message).toMatch(/^Out of memory on tile \d+: \d+ bytes used but tiles only have 638976 bytes/);
        expect(r.message).toMatch(/Largest tensors on tile \d+:\n {2}\S/);
      }
    });
  }
});
