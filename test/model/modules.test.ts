/**
 * Custom-op modules as two files (issue 11): the op module names its codelet
 * module; the one-file form of before, and codelets without a domain, are
 * refused with what to change.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { createRegistry } from '../../src/model/modules.js';
import { LEAKY_CODELETS, LEAKY_MODULE, ROOT } from '../helpers.js';

// Inside the repository (gitignored), so the modules' `import 'tilesim'` resolves in process as it does for the CLI.
const dir = path.join(ROOT, 'test-artifacts', `modules-${process.pid}`);
mkdirSync(dir, { recursive: true });

async function userError(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(UserError);
  return (e as Error).message;
}

describe('loading custom-op modules', () => {
  it("the seed's op module names its codelet module, which the registry lists for the device side", async () => {
    const r = await createRegistry([LEAKY_MODULE]);
    expect(r.codeletModules).toEqual([LEAKY_CODELETS]);
    expect(r.exact({ domain: 'custom.ops', type: 'LeakyReluGrad', version: 1 })?.lower).toBeTypeOf('function');
  });

  it('refuses the one-file form (codelet objects in the op module), saying what to change', async () => {
    const old = path.join(dir, 'one-file.ts');
    // The form of before the split: ops and codelets in one module importing 'tilesim'.
    writeFileSync(
      old,
      "import { estimators, type OpModule } from 'tilesim';\n" +
        "const mod: OpModule = { ops: [], codelets: [{ name: 'Old', kind: 'multi', fields: {}, compute() {}, cycles: (_v, d) => estimators.vectorWidth('float32', d) }] } as never;\n" +
        'export default mod;\n',
    );
    const m = await userError(createRegistry([old]));
    expect(m).toContain(`custom-op module ${old} lists codelet objects in its default export; codelets now live in a codelet module of their own`);
    expect(m).toContain("move them to e.g. one-file.codelets.ts, importing only 'tilesim/device'");
    expect(m).toContain("codelets: './my-op.codelets.ts'");
  });

  it('refuses a codelet without a domain, and a codelet module that does not exist', async () => {
    const codelets = path.join(dir, 'plain.codelets.ts');
    writeFileSync(
      codelets,
      "import { defineCodelet } from 'tilesim/device';\n" +
        "export default [defineCodelet({ name: 'Plain', kind: 'multi', fields: { out: { direction: 'output' } }, compute() {}, cycles: () => 1 })];\n",
    );
    const ops = path.join(dir, 'plain.ts');
    writeFileSync(ops, "export default { ops: [], codelets: './plain.codelets.js' };\n");
    expect(await userError(createRegistry([ops]))).toContain(
      `codelet module ${codelets}: codelet 'Plain' has no domain; define it with defineCodelet({ domain: 'custom.ops', name: 'Plain', ... }) so its name ('custom.ops::Plain') cannot collide with a built-in codelet`,
    );
    const missing = path.join(dir, 'missing.ts');
    writeFileSync(missing, "export default { ops: [], codelets: './nowhere.codelets.ts' };\n");
    expect(await userError(createRegistry([missing]))).toContain(`custom-op module ${missing}: its codelet module './nowhere.codelets.ts' (${path.join(dir, 'nowhere.codelets.ts')}) does not exist`);
  });
});
