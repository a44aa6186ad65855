/**
 * Loading custom-op modules (model.customOps) and building the op registry:
 * built-in ops first, then each module's ops, the same API for both.
 */
import { existsSync } from 'node:fs';
import { importUserModule } from '../../sim/modules.js';
import { UserError } from '../errors.js';
import { OpRegistry, type OpModule } from '../ir/registry.js';
import { registerBuiltinOps } from '../ops/index.js';

export async function loadOpModule(path: string): Promise<OpModule> {
  // A missing file is a mistake in the config or command line; a module that throws as it loads is a fault in its code.
  if (!existsSync(path)) throw new UserError(`custom-op module ${path} does not exist`);
  const mod = await importUserModule(path);
  const m = mod as OpModule;
  if (typeof m !== 'object' || m === null || (!Array.isArray(m.ops) && !Array.isArray(m.codelets))) {
    throw new UserError(`custom-op module ${path} must export default { ops: OpDefinition[], codelets: Codelet[] }`);
  }
  return m;
}

export async function createRegistry(modulePaths: readonly string[]): Promise<OpRegistry> {
  const r = new OpRegistry();
  registerBuiltinOps(r);
  for (const p of modulePaths) {
    const m = await loadOpModule(p);
    for (const def of m.ops ?? []) {
      try {
        r.add(def);
      } catch (e) {
        throw new UserError(`custom-op module ${p}: ${(e as Error).message}`);
      }
    }
  }
  return r;
}
