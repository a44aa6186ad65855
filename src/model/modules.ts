/**
 * Loading custom-op modules (model.customOps) and building the op registry:
 * built-in ops first, then each module's ops, the same API for both.
 *
 * A custom op is two modules, as Poplar keeps device code in its own file
 * (`graph.addCodelets("codelets.cpp")`): the op module (`from 'tilesim'`:
 * ops, grad ops, lowerings), named in the config, whose default export
 * `defineOpModule({ops, codelets: './x.codelets.ts'})` names its codelet
 * module (`from 'tilesim/device'` only), the one file pool workers load.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { codeletsOf, importUserModule } from '../../sim/modules.js';
import { CodeletFault } from '../../sim/faults.js';
import { UserError } from '../errors.js';
import { OpRegistry, type OpDefinition, type OpModule } from '../ir/registry.js';
import { registerBuiltinOps } from '../ops/index.js';

/** An op module as loaded: its op definitions and the absolute paths of its codelet modules. */
export interface LoadedOpModule {
  ops: OpDefinition[];
  codeletModules: string[];
}

const SHAPE = "export default defineOpModule({ ops: [...], codelets: './my-op.codelets.ts' })";

export async function loadOpModule(file: string): Promise<LoadedOpModule> {
  // A missing file is a mistake in the config or command line; a module that throws as it loads is a fault in its code.
  if (!existsSync(file)) throw new UserError(`custom-op module ${file} does not exist`);
  const m = (await importUserModule(file)) as OpModule;
  if (typeof m !== 'object' || m === null || Array.isArray(m) || (!Array.isArray(m.ops) && m.codelets === undefined)) {
    const codeletList = Array.isArray(m) ? ` (${file} exports a list: is it a codelet module? Name the op module in model.customOps, and the codelet module in its \`codelets\`)` : '';
    throw new UserError(`custom-op module ${file} must ${SHAPE}${codeletList}`);
  }
  const codelets = m.codelets === undefined ? [] : typeof m.codelets === 'string' ? [m.codelets] : m.codelets;
  if (!Array.isArray(codelets) || codelets.some((c) => typeof c !== 'string')) {
    // The one-file form: codelets in the op module, which the workers would load with all of the host side.
    throw new UserError(
      `custom-op module ${file} lists codelet objects in its default export; codelets now live in a codelet module of their own, ` +
        `the only file the pool workers load: move them to e.g. ${path.basename(file).replace(/(\.[cm]?[jt]s)?$/, '.codelets$1')}, importing only 'tilesim/device' ` +
        `(defineCodelet, estimators, regionCount, fieldDType), export default the list of them, and name that file in the op module: ${SHAPE} (docs/custom-ops.md, section 7)`,
    );
  }
  return { ops: m.ops ?? [], codeletModules: (codelets as string[]).map((c) => codeletModulePath(file, c)) };
}

/** A codelet module named by an op module, relative to it; `.js` finds the `.ts` source as TypeScript imports do. */
function codeletModulePath(opModule: string, name: string): string {
  const base = opModule.startsWith('file:') ? fileURLToPath(opModule) : opModule;
  const p = name.startsWith('file:') ? fileURLToPath(name) : path.resolve(path.dirname(base), name);
  if (existsSync(p)) return p;
  const ts = p.replace(/\.([cm]?)js$/, '.$1ts');
  if (ts !== p && existsSync(ts)) return ts;
  throw new UserError(`custom-op module ${opModule}: its codelet module '${name}' (${p}) does not exist`);
}

/** The ops of the built-ins and of `modulePaths`; `registry.codeletModules` lists their codelet modules, checked. */
export async function createRegistry(modulePaths: readonly string[]): Promise<OpRegistry> {
  const r = new OpRegistry();
  registerBuiltinOps(r);
  for (const p of modulePaths) {
    const m = await loadOpModule(p);
    for (const def of m.ops) {
      try {
        r.add(def);
      } catch (e) {
        throw new UserError(`custom-op module ${p}: ${(e as Error).message}`);
      }
    }
    for (const c of m.codeletModules) {
      if (r.codeletModules.includes(c)) continue;
      // Loaded (once) and checked here, so a mistake in it is the user's (exit 2) before anything runs.
      const mod = await importUserModule(c);
      try {
        codeletsOf(mod, c);
      } catch (e) {
        if (e instanceof CodeletFault) throw e;
        throw new UserError(`custom-op module ${p}: ${(e as Error).message}`);
      }
      r.codeletModules.push(c);
    }
  }
  return r;
}
