/**
 * One ONNX light model (../shared/conformance/onnx-light) imported, built and
 * lowered for a device, forward only, no execution: its per-tile memory after
 * liveness-based allocation (with code and vertex state), or the
 * out-of-memory error that stops it. Shared by test/models/light-compile.test.ts
 * and scripts/light-models-report.ts (reports/light-models.md).
 */
import path from 'node:path';
import { RunError } from '../../src/errors.js';
import { lowerGraph } from '../../src/lower/lower.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkOnnxGraph, readOnnxFile } from '../../src/onnx/import.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { TileMemoryUse } from '../../sim/program.js';

export interface LightCompiled {
  name: string;
  status: 'compiled';
  tilesUsed: number;
  maxTile: number;
  maxTileBytes: number;
  meanTileBytes: number;
  /** The busiest tile's bytes by kind. */
  maxTileUse: TileMemoryUse;
  totalBytes: number;
  computeSets: number;
  exchangeCopies: number;
  seconds: number;
}

export interface LightOutOfMemory {
  name: string;
  status: 'out of memory';
  /** The RunError's message: the tile, its bytes by kind and its largest tensors. */
  message: string;
  seconds: number;
}

export type LightResult = LightCompiled | LightOutOfMemory;

/**
 * Device settings a model is compiled with, as a Poplar user would set them:
 * VGG-19's weights (548 MB in fp32) fill most of an mk2's tile memory, so
 * its convolutions are planned within 30% of a tile for temporaries instead
 * of Poplar's default 60% (availableMemoryProportion, PopLibs' option of
 * that name); with 60%, conv1_2's input windows put tile 720 23 KB over.
 */
export const LIGHT_DEVICE_SETTINGS: Readonly<Record<string, Partial<DeviceSpec>>> = {
  light_vgg19: { availableMemoryProportion: 0.3 },
};

/** `device` with the settings `model` is compiled with (LIGHT_DEVICE_SETTINGS). */
export function lightDevice(model: string, device: DeviceSpec): DeviceSpec {
  return { ...device, ...LIGHT_DEVICE_SETTINGS[model] };
}

/** Compile `file` for `device`; only an out-of-memory RunError is a result, anything else throws. */
export async function compileLight(file: string, device: DeviceSpec): Promise<LightResult> {
  const name = path.basename(file).replace(/\.onnx$/, '');
  const t0 = performance.now();
  const registry = await createRegistry([]);
  const codelets = await loadCodeletRegistry([]);
  const { graph: decl } = readOnnxFile(file);
  checkOnnxGraph(decl, registry);
  const graph = buildGraph(decl, registry);
  try {
    const { program } = lowerGraph({ graph, schedule: graph.schedule(), registry, codelets, device, anchors: decl.outputs, codeletModules: [] });
    const bytes = program.tileBytes;
    const used = bytes.filter((b) => b > 0);
    const maxTile = bytes.reduce((w, b, t) => (b > bytes[w] ? t : w), 0);
    const total = used.reduce((a, b) => a + b, 0);
    return {
      name,
      status: 'compiled',
      tilesUsed: used.length,
      maxTile,
      maxTileBytes: bytes[maxTile],
      meanTileBytes: Math.round(total / used.length),
      maxTileUse: program.memory![maxTile],
      totalBytes: total,
      computeSets: program.computeSets.length,
      exchangeCopies: program.exchanges.reduce((s, e) => s + e.copies.count, 0),
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    if (!(e instanceof RunError)) throw e;
    return { name, status: 'out of memory', message: e.message, seconds: (performance.now() - t0) / 1000 };
  }
}
