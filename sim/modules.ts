/**
 * Loading the codelets of custom-op modules. A module's default export is an
 * OpModule-shaped object; the device side reads only its `codelets` list, so
 * it never needs the host side's op classes.
 */
import { pathToFileURL } from 'node:url';
import { CodeletRegistry, type Codelet } from './codelet.js';
import { registerBuiltinCodelets } from './codelets/index.js';

export async function importModule(path: string): Promise<unknown> {
  const url = path.startsWith('file:') ? path : pathToFileURL(path).href;
  const mod = (await import(url)) as { default?: unknown };
  return mod.default ?? mod;
}

export function codeletsOf(mod: unknown, path: string): Codelet[] {
  const codelets = (mod as { codelets?: unknown }).codelets;
  if (codelets === undefined) return [];
  if (!Array.isArray(codelets)) throw new Error(`${path}: 'codelets' of the default export must be an array`);
  return codelets as Codelet[];
}

export async function loadCodeletRegistry(modules: readonly string[]): Promise<CodeletRegistry> {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  for (const m of modules) for (const c of codeletsOf(await importModule(m), m)) r.add(c);
  return r;
}
