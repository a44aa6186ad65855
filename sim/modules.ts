/**
 * Loading the codelets of custom-op modules. A module's default export is an
 * OpModule-shaped object; the device side reads only its `codelets` list, so
 * it never needs the host side's op classes.
 */
import { pathToFileURL } from 'node:url';
import { CodeletRegistry, type Codelet } from './codelet.js';
import { registerBuiltinCodelets } from './codelets/index.js';
import { CodeletFault, describeThrown } from './faults.js';
import { resolveTilesimForUserModules } from './resolve-tilesim.js';

let tsxRegistered = false;

/**
 * Node 20 cannot import .ts by itself: register tsx's loaders (ESM and CJS, so
 * a module outside a "type": "module" package loads too) once per thread.
 * Skipped on the main thread when it already runs from TypeScript sources
 * (tsx or vitest handle .ts there); pool workers always need it.
 */
export async function ensureTypeScriptLoader(path: string, inWorker = false): Promise<void> {
  if (tsxRegistered || !/\.[cm]?ts$/.test(path)) return;
  if (!inWorker && import.meta.url.endsWith('.ts')) return;
  const [{ register }, { register: registerCjs }] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]);
  register();
  registerCjs();
  tsxRegistered = true;
}

export async function importModule(path: string, inWorker = false): Promise<unknown> {
  await ensureTypeScriptLoader(path, inWorker);
  await resolveTilesimForUserModules();
  const url = path.startsWith('file:') ? path : pathToFileURL(path).href;
  const mod = (await import(url)) as { default?: unknown };
  let m: unknown = mod.default ?? mod;
  // A CommonJS module's namespace wraps its exports once more.
  if (m && typeof m === 'object' && 'default' in m && !('codelets' in m) && !('ops' in m)) m = (m as { default: unknown }).default;
  return m;
}

const userModules = new Set<string>();

/** Custom-op modules this thread has imported (to blame one whose code throws later, asynchronously). */
export function importedUserModules(): string[] {
  return [...userModules];
}

/** importModule for a custom-op module: whatever its top level throws is a fault in that module. */
export async function importUserModule(path: string, inWorker = false): Promise<unknown> {
  userModules.add(path);
  try {
    return await importModule(path, inWorker);
  } catch (e) {
    throw new CodeletFault({ kind: 'import', module: path, what: `importing it threw ${describeThrown(e)}` });
  }
}

export function codeletsOf(mod: unknown, path: string): Codelet[] {
  const codelets = (mod as { codelets?: unknown }).codelets;
  if (codelets === undefined) return [];
  if (!Array.isArray(codelets)) throw new Error(`${path}: 'codelets' of the default export must be an array`);
  return codelets as Codelet[];
}

export async function loadCodeletRegistry(modules: readonly string[], inWorker = false): Promise<CodeletRegistry> {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  for (const m of modules) for (const c of codeletsOf(await importUserModule(m, inWorker), m)) r.add(c, m);
  return r;
}
