/**
 * docs/custom-ops.md stays true (issue 11): every code block is run or
 * checked. A `ts` block whose first line names a file (`// examples/...`) is
 * an excerpt and must be in that file verbatim (the file itself is
 * type-checked with the project and run by the example's tests); any other
 * `ts` block is a program, type-checked and run; a `console` block's `$`
 * commands are run and must print what the block shows. `text` blocks
 * (formulas, messages) are prose. The built CLI and dist/ are used, as a
 * user runs them.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

const DOC = readFileSync(path.join(ROOT, 'docs/custom-ops.md'), 'utf8');
const ART = path.join(ROOT, 'test-artifacts');
mkdirSync(ART, { recursive: true });

interface Block {
  lang: string;
  body: string;
  line: number;
}
const blocks: Block[] = [...DOC.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2], line: DOC.slice(0, m.index).split('\n').length }));
const excerptOf = (b: Block) => /^\/\/ ([\w./-]+\.[jt]s)\n/.exec(b.body)?.[1];
const excerpts = blocks.filter((b) => b.lang === 'ts' && excerptOf(b));
const programs = blocks.filter((b) => b.lang === 'ts' && !excerptOf(b));
const consoles = blocks.filter((b) => b.lang === 'console');

describe('docs/custom-ops.md', () => {
  it('tags every code block ts, console or text', () => {
    expect(blocks.length).toBeGreaterThan(10);
    expect(blocks.filter((b) => !['ts', 'console', 'text'].includes(b.lang)).map((b) => `line ${b.line}: '${b.lang}'`)).toEqual([]);
    expect(excerpts.length).toBeGreaterThanOrEqual(5);
    expect(programs.length).toBeGreaterThanOrEqual(1);
    expect(consoles.length).toBeGreaterThanOrEqual(3);
  });

  it('shows the short form whole, beside the long form, and checks its gradient', () => {
    for (const file of ['examples/custom-ops/leaky-relu-short.ts', 'examples/custom-ops/leaky-relu-short.codelets.ts']) {
      const shown = excerpts.find((b) => excerptOf(b) === file);
      expect(shown, file).toBeDefined();
      // Whole: everything after the file's leading comment.
      const text = readFileSync(path.join(ROOT, file), 'utf8');
      expect(shown!.body.slice(shown!.body.indexOf('\n') + 1).trimEnd()).toBe(text.slice(text.indexOf('*/\n') + 3).trimEnd());
    }
    expect(consoles.some((b) => b.body.startsWith('$ sim gradcheck examples/custom-ops/leaky-relu-short.ts '))).toBe(true);
    // The long form keeps every concept of PopART's guide in view.
    for (const concept of ['extends Op', 'extends GradOp', 'gradInputInfo(): GradInOutMapper[]', 'gradOutToNonGradIn(): Map<number, number>', 'this.params = fwd.params']) {
      expect(excerpts.some((b) => excerptOf(b) === 'examples/custom-ops/leaky-relu.ts' && b.body.includes(concept)), concept).toBe(true);
    }
  });

  it.each(excerpts.map((b) => [b.line, b] as const))('the excerpt at line %i is in the file it names, verbatim', (_line, b) => {
    const file = excerptOf(b)!;
    const code = b.body.slice(b.body.indexOf('\n') + 1);
    expect(readFileSync(path.join(ROOT, file), 'utf8')).toContain(code.trimEnd());
  });

  it('its programs type-check and run', () => {
    // In test-artifacts/ (one level below the root, as docs/ is), so their relative imports resolve.
    const files = programs.map((b) => {
      const f = path.join(ART, `custom-ops-doc-line-${b.line}.ts`);
      writeFileSync(f, b.body);
      return f;
    });
    const tsconfig = path.join(ART, 'tsconfig.custom-ops-doc.json');
    writeFileSync(tsconfig, JSON.stringify({ extends: '../tsconfig.json', compilerOptions: { noEmit: true, rootDir: '..' }, include: files.map((f) => path.basename(f)) }));
    const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { encoding: 'utf8', cwd: ROOT, timeout: 120_000 });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    for (const f of files) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', f], { encoding: 'utf8', cwd: ROOT, timeout: 120_000 });
      expect(r.stderr, path.basename(f)).toBe('');
      expect(r.status, path.basename(f)).toBe(0);
    }
  }, 240_000);

  it.each(consoles.map((b) => [b.line, b] as const))('the commands at line %i print what it shows', (_line, b) => {
    // `sim` on PATH is the built CLI of this checkout.
    const bin = path.join(ART, 'docs-bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, 'sim'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin/sim.js')}" "$@"\n`);
    chmodSync(path.join(bin, 'sim'), 0o755);
    const runs = b.body.split(/^\$ /m).filter((s) => s.trim());
    for (const run of runs) {
      const [command, ...shown] = run.split('\n');
      const r = spawnSync('sh', ['-c', command], { encoding: 'utf8', cwd: ROOT, timeout: 120_000, env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` } });
      expect(r.stderr, command).toBe('');
      expect(r.stdout.trimEnd(), command).toBe(shown.join('\n').trimEnd());
    }
  });
});
