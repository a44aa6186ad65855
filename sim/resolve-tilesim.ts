/**
 * `import ... from 'tilesim'` (op modules, main thread) and `from
 * 'tilesim/device'` (codelet modules, every thread) in a custom-op module
 * that lives in any folder, not only inside this package. Both resolve to
 * the files of the tilesim that is running, found by where this file is
 * (src/index and sim/device-api beside it, .ts from the sources, .js from
 * dist/), so no export condition is needed. Both module systems are covered:
 *
 * - ESM: a resolve hook (node:module register);
 * - CommonJS (tsx compiles a .ts file outside a "type": "module" package to
 *   CommonJS): `require('tilesim')` is answered from the require cache with
 *   the ESM namespace this thread already loaded.
 *
 * A pool worker is device only: there `tilesim` (the host API) is refused
 * with an error saying what a codelet module may import, so a worker never
 * runs host code (test/sim/worker-imports.test.ts checks the module graph).
 */
import Module, { register } from 'node:module';

let installed: 'host' | 'device' | undefined;

const HOOK = `
let host, device, refusal;
export function initialize(data) { ({ host, device, refusal } = data); }
export async function resolve(specifier, context, next) {
  if (specifier === 'tilesim/device') return { url: device, shortCircuit: true };
  if (specifier === 'tilesim') {
    if (refusal) throw new Error(refusal.replace('%s', context.parentURL ? decodeURIComponent(new URL(context.parentURL).pathname) : 'a codelet module'));
    return { url: host, shortCircuit: true };
  }
  return next(specifier, context);
}`;

/** Require-cache keys of the CommonJS views; not files, so never clash with one. */
const CJS_HOST = '\0tilesim';
const CJS_DEVICE = '\0tilesim/device';

const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
export const HOST_ENTRY = new URL(`../src/index${EXT}`, import.meta.url).href;
export const DEVICE_ENTRY = new URL(`./device-api${EXT}`, import.meta.url).href;

/** What a worker says to a codelet module importing the host API (%s: the importing file). */
export const HOST_IN_WORKER =
  "%s imports 'tilesim' (the host API), but it runs in the pool workers as a codelet module: a codelet module may import only " +
  "'tilesim/device' (defineCodelet, estimators, regionCount, fieldDType and the codelet types); keep ops, grad ops and lowerings in the op module (docs/custom-ops.md, section 7)";

type ResolveFilename = (request: string, parent: unknown, ...rest: unknown[]) => string;

/** `side`: 'host' on the main thread (both entries), 'device' in a pool worker (tilesim/device only). */
export async function resolveTilesimForUserModules(side: 'host' | 'device' = 'host'): Promise<void> {
  if (installed) return;
  installed = side;
  const refusal = side === 'device' ? HOST_IN_WORKER : undefined;
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`, { data: { host: HOST_ENTRY, device: DEVICE_ENTRY, refusal } });
  const M = Module as unknown as { _cache: Record<string, Module>; _resolveFilename: ResolveFilename };
  const cache = (key: string, api: object): void => {
    const m = new Module(key);
    m.filename = key;
    m.loaded = true;
    m.exports = api;
    M._cache[key] = m;
  };
  // The very module instances this thread's own code uses (the same files, by URL).
  cache(CJS_DEVICE, (await import(DEVICE_ENTRY)) as object);
  if (side === 'host') cache(CJS_HOST, (await import(HOST_ENTRY)) as object);
  const original = M._resolveFilename;
  M._resolveFilename = function (this: unknown, request, parent, ...rest) {
    if (request === 'tilesim/device') return CJS_DEVICE;
    if (request === 'tilesim') {
      if (refusal) throw new Error(refusal.replace('%s', (parent as { filename?: string } | undefined)?.filename ?? 'a codelet module'));
      return CJS_HOST;
    }
    return original.call(this, request, parent, ...rest);
  };
}
