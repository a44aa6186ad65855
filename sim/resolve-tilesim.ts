/**
 * `import ... from 'tilesim'` in a custom-op module that lives in any folder,
 * not only inside this package (where Node's self-reference resolves it).
 * Both module systems are covered, in every thread that loads such a module:
 *
 * - ESM: a resolve hook (node:module register) resolves `tilesim` as if
 *   imported from inside this package, so with the same conditions (the
 *   built dist/, or the sources under --conditions=tilesim-source);
 * - CommonJS (tsx compiles a .ts file outside a "type": "module" package to
 *   CommonJS): `require('tilesim')` is answered from the require cache with
 *   the ESM namespace this thread already loaded.
 *
 * Either way the module gets the very copy of tilesim that runs it, so its
 * ops extend the same Op class the graph and the lowering use.
 */
import Module, { register } from 'node:module';

let installed = false;

const HOOK = `
let parentURL;
export function initialize(data) { parentURL = data.parentURL; }
export async function resolve(specifier, context, next) {
  return next(specifier, specifier === 'tilesim' ? { ...context, parentURL } : context);
}`;

/** The require-cache key of the CommonJS view; not a file, so never clashes with one. */
const CJS_KEY = '\0tilesim';

type ResolveFilename = (request: string, parent: unknown, ...rest: unknown[]) => string;

export async function resolveTilesimForUserModules(): Promise<void> {
  if (installed) return;
  installed = true;
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`, { data: { parentURL: import.meta.url } });
  // Self-reference from this file: the same module instance the host side uses.
  const self = 'tilesim'; // not a literal: tsc must not resolve the package's own build while building it
  const api = (await import(self)) as object;
  const cjs = new Module(CJS_KEY);
  cjs.filename = CJS_KEY;
  cjs.loaded = true;
  cjs.exports = api;
  const M = Module as unknown as { _cache: Record<string, Module>; _resolveFilename: ResolveFilename };
  M._cache[CJS_KEY] = cjs;
  const original = M._resolveFilename;
  M._resolveFilename = function (this: unknown, request, parent, ...rest) {
    return request === 'tilesim' ? CJS_KEY : original.call(this, request, parent, ...rest);
  };
}
