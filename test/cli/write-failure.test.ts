/**
 * A run folder that cannot be written at the very end (a full disk) must not
 * lose a run that may have taken minutes: `sim run` prints the summary and
 * exits 1 naming the folder and the reason. writeRun is made to fail with
 * ENOSPC, in process, since no folder can be made unwritable to root.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EXAMPLE_CONFIG } from '../helpers.js';

vi.mock('../../src/report/write.js', () => ({
  writeRun: () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })),
}));

const { main } = await import('../../src/cli/main.js');

afterEach(() => {
  vi.restoreAllMocks();
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err };
}

describe('sim run when the run folder cannot be written', () => {
  it('prints the summary anyway and exits 1 naming the folder and the reason', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'tilesim-nospace-')), 'out');
    const { out, err } = capture();
    const code = await main(['node', 'sim', 'run', EXAMPLE_CONFIG, '--steps', '2', '--out', dir]);
    vi.restoreAllMocks();
    expect(code).toBe(1);
    const stdout = out.join('');
    expect(stdout).toMatch(/step +1 +loss [\d.]+/);
    expect(stdout).toMatch(/total cycles +[\d,]+/);
    expect(stdout).toContain('run folder     (not written)');
    expect(err.join('')).toBe(`run failed: the run finished, but its folder ${dir} could not be written: no space left on the device. The summary is printed above; nothing was written.\n`);
  });

  it('with --json, still prints summary.json on stdout', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'tilesim-nospace-')), 'out');
    const { out } = capture();
    const code = await main(['node', 'sim', 'run', EXAMPLE_CONFIG, '--steps', '2', '--out', dir, '--json']);
    vi.restoreAllMocks();
    expect(code).toBe(1);
    expect(JSON.parse(out.join('')).steps).toHaveLength(2);
  });
});
