/**
 * Loading custom codelet modules. A custom op is an op module (host side)
 * plus a codelet module: the codelet module's default export is its list of
 * codelets, and it imports only 'tilesim/device'. The device side loads only
 * codelet modules, so a pool worker never loads host code. Each thread
 * imports each module once (the imports are cached by path).
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CodeletRegistry, DOMAIN_SEPARATOR, type Codelet } from './codelet.js';
import { registerBuiltinCodelets } from './codelets/index.js';
import { CodeletFault, describeThrown } from './faults.js';
import { HOST_ENTRY, resolveTilesimForUserModules } from './resolve-tilesim.js';

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

const imported = new Map<string, Promise<unknown>>();

/** A module's default export (imported once per thread and path). */
export function importModule(path: string, inWorker = false): Promise<unknown> {
  let p = imported.get(path);
  if (!p) {
    p = load(path, inWorker);
    imported.set(path, p);
  }
  return p;
}

async function load(path: string, inWorker: boolean): Promise<unknown> {
  await ensureTypeScriptLoader(path, inWorker);
  await resolveTilesimForUserModules(inWorker ? 'device' : 'host');
  const url = path.startsWith('file:') ? path : pathToFileURL(path).href;
  const mod = (await import(url)) as { default?: unknown };
  let m: unknown = mod.default ?? mod;
  // A CommonJS module's namespace wraps its exports once more.
  if (m && typeof m === 'object' && !Array.isArray(m) && 'default' in m && !('codelets' in m) && !('ops' in m)) m = (m as { default: unknown }).default;
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
    throw new CodeletFault({ kind: 'import', module: thrownIn(e, path), what: `importing it threw ${describeThrown(e)}` });
  }
}

/** Where an import's error was thrown: a module `path` imports (its codelet module, say) when the stack says so, else `path`. */
function thrownIn(e: unknown, path: string): string {
  const stack = typeof e === 'object' && e !== null && 'stack' in e ? String((e as { stack: unknown }).stack) : '';
  const frame = /\bat (?:.*?\()?(?:file:\/\/)?(\/[^\s():]+\.[cm]?[jt]s):\d+/.exec(stack);
  const file = frame ? decodeURIComponent(frame[1]) : undefined;
  return file && file !== path && !OWN.some((d) => file.startsWith(d)) && !file.includes('/node_modules/') ? file : path;
}

/** tilesim's own code: frames in it are not the module's. */
const OWN = ['src/', 'sim/', 'dist/'].map((d) => fileURLToPath(new URL(`../${d}`, HOST_ENTRY)));

/** The codelets a codelet module exports (its default export, a list), checked; a mistake throws an Error saying what is right. */
export function codeletsOf(mod: unknown, path: string): Codelet[] {
  if (mod && typeof mod === 'object' && !Array.isArray(mod) && ('ops' in mod || 'codelets' in mod)) {
    throw new Error(`${path} is an op module (its default export has ops or codelets); the device side loads codelet modules, whose default export is the list of their codelets`);
  }
  if (!Array.isArray(mod)) throw new Error(`codelet module ${path} must export default its codelets as a list: export default [myCodelet, ...] (made with defineCodelet from 'tilesim/device')`);
  for (const c of mod as unknown[]) {
    const name = (c as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || typeof (c as Codelet).compute !== 'function' || typeof (c as Codelet).cycles !== 'function') {
      throw new Error(`codelet module ${path}: its default export lists ${describeThrown(c)}, which is not a codelet (make each with defineCodelet from 'tilesim/device')`);
    }
    if (!name.includes(DOMAIN_SEPARATOR)) {
      throw new Error(
        `codelet module ${path}: codelet '${name}' has no domain; define it with defineCodelet({ domain: 'custom.ops', name: '${name}', ... }) ` +
          `so its name ('custom.ops${DOMAIN_SEPARATOR}${name}') cannot collide with a built-in codelet`,
      );
    }
  }
  return mod as Codelet[];
}

/** The built-in codelets and those of the codelet modules (`inWorker`: this is a pool worker, device only). */
export async function loadCodeletRegistry(modules: readonly string[], inWorker = false): Promise<CodeletRegistry> {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  for (const m of modules) for (const c of codeletsOf(await importUserModule(m, inWorker), m)) r.add(c, m);
  return r;
}
