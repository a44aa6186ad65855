/**
 * vitest globalSetup: find a headless Chromium for the browser tests, once per run.
 *
 * A system chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH) is preferred. Otherwise the
 * Chromium that @sparticuz/chromium ships inside its npm package is unpacked (brotli tarballs)
 * into node_modules/.cache; it needs its bundled libraries (al2023) on LD_LIBRARY_PATH and its
 * fonts on FONTCONFIG_PATH. The unpack happens here, once, because parallel unpacks from test
 * files collide; it goes to a private folder renamed into place, so an interrupted unpack is
 * never mistaken for a finished one.
 */
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createBrotliDecompress } from 'node:zlib';
import { extract } from 'tar-fs';
import type { TestProject } from 'vitest/node';

export interface BrowserInfo {
  executablePath: string;
  /** Extra environment for the browser process (bundled libraries and fonts). */
  env: Record<string, string>;
  source: 'system' | '@sparticuz/chromium';
}

declare module 'vitest' {
  export interface ProvidedContext {
    browser: BrowserInfo | { error: string };
  }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** A system Chromium, found by name on PATH (none on a fresh machine: then the bundled one is used). */
const SYSTEM_NAMES = ['chromium', 'chromium-browser', 'google-chrome'];

function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const p = dir && path.join(dir, name);
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

async function unpackBundled(): Promise<BrowserInfo> {
  const require = createRequire(import.meta.url);
  // The package exports only its entry (build/cjs/index.cjs): its root is two folders up.
  const pkgDir = path.resolve(path.dirname(require.resolve('@sparticuz/chromium')), '../..');
  const version = (JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const bin = path.join(pkgDir, 'bin');
  const dest = path.join(ROOT, 'node_modules/.cache', `tilesim-chromium-${version}`);
  const info = (dir: string): BrowserInfo => ({
    executablePath: path.join(dir, 'chromium'),
    env: { LD_LIBRARY_PATH: [path.join(dir, 'al2023/lib'), dir, process.env['LD_LIBRARY_PATH'] ?? ''].filter(Boolean).join(':'), FONTCONFIG_PATH: path.join(dir, 'fonts') },
    source: '@sparticuz/chromium',
  });
  if (existsSync(path.join(dest, 'ready'))) return info(dest);
  if (process.arch !== 'x64') throw new Error(`@sparticuz/chromium ships an x64 Chromium only (this is ${process.arch}): install a system chromium or set CHROMIUM_PATH`);
  const tmp = `${dest}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const untar = (file: string, into: string) => pipeline(createReadStream(path.join(bin, file)), createBrotliDecompress(), extract(into));
  await Promise.all([
    pipeline(createReadStream(path.join(bin, 'chromium.br')), createBrotliDecompress(), createWriteStream(path.join(tmp, 'chromium'), { mode: 0o755 })),
    untar('fonts.tar.br', path.join(tmp, 'fonts')),
    untar('swiftshader.tar.br', tmp),
    untar('al2023.tar.br', path.join(tmp, 'al2023')),
  ]);
  // The shipped fonts.conf names Lambda's folders (/tmp/fonts, ...): point it at ours.
  writeFileSync(
    path.join(tmp, 'fonts/fonts.conf'),
    `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n  <dir>${path.join(dest, 'fonts/fonts')}</dir>\n  <cachedir>${path.join(dest, 'fonts-cache')}</cachedir>\n</fontconfig>\n`,
  );
  writeFileSync(path.join(tmp, 'ready'), `${version}\n`);
  try {
    renameSync(tmp, dest);
  } catch {
    // Another run finished first: use its copy.
    rmSync(tmp, { recursive: true, force: true });
  }
  return info(dest);
}

export default async function setup(project: TestProject): Promise<void> {
  const fromEnv = process.env['CHROMIUM_PATH'];
  const system = fromEnv ?? SYSTEM_NAMES.map(onPath).find((p) => p !== undefined);
  try {
    const browser: BrowserInfo = system ? { executablePath: system, env: {}, source: 'system' } : await unpackBundled();
    project.provide('browser', browser);
  } catch (e) {
    project.provide('browser', { error: `no headless Chromium: ${(e as Error).message}` });
  }
}
