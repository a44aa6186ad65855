/**
 * The run folder is written completely or not at all: every file goes into a
 * sibling temp folder `<dir>.partial-<pid>-<random>`, which then replaces
 * `dir` (old folder renamed to `<dir>.trash-<pid>-<random>`, temp renamed to
 * `dir`, trash removed). On any failure the temp folder is removed and the
 * previous `dir`, if any, is left as it was.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../errors.js';

/**
 * File contents: a Buffer, a string (written as UTF-8), or an iterable of
 * chunks (e.g. from traceJsonChunks, or npyChunks' header and data) written
 * one after another, so a large file never has to exist as one string or
 * one buffer. Small chunks are gathered into writes of about a megabyte;
 * a large byte chunk is written as it is, without a copy.
 */
export type RunFileContent = Buffer | Uint8Array | string | Iterable<string | Uint8Array>;

function suffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Checks a relative path inside the run folder: no absolute paths, no '..', no empty parts. */
function checkRelPath(rel: string): string[] {
  const parts = rel.split(/[\\/]/);
  if (rel === '' || isAbsolute(rel) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`writeRunFolder: bad relative path '${rel}'`);
  }
  return parts;
}

const FLUSH_BYTES = 1 << 20;

async function writeContent(path: string, content: RunFileContent): Promise<void> {
  if (typeof content === 'string' || content instanceof Uint8Array) {
    await writeFile(path, content, { flag: 'wx' });
    return;
  }
  const fh = await open(path, 'wx');
  try {
    let pending: (string | Uint8Array)[] = [];
    let pendingBytes = 0;
    const writeAll = async (buf: Uint8Array): Promise<void> => {
      for (let at = 0; at < buf.length; ) at += (await fh.write(buf, at, buf.length - at)).bytesWritten;
    };
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return;
      const buf = pending.length === 1 && typeof pending[0] !== 'string' ? pending[0] : Buffer.concat(pending.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c)));
      pending = [];
      pendingBytes = 0;
      await writeAll(buf);
    };
    for (const chunk of content) {
      if (typeof chunk !== 'string' && chunk.length >= FLUSH_BYTES) {
        await flush();
        await writeAll(chunk);
        continue;
      }
      pending.push(chunk);
      // Strings: length is a lower bound on UTF-8 bytes, good enough for batching.
      pendingBytes += chunk.length;
      if (pendingBytes >= FLUSH_BYTES) await flush();
    }
    await flush();
  } finally {
    await fh.close();
  }
}

/**
 * `keep`: subfolders of the folder being replaced that move into the new one
 * (a training run's checkpoints, written while it ran).
 */
export async function writeRunFolder(dir: string, files: Map<string, RunFileContent>, keep: readonly string[] = []): Promise<void> {
  const target = resolve(dir);
  const existing = await stat(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (existing && !existing.isDirectory()) throw new UserError(`output folder ${dir} exists and is not a folder`);
  await mkdir(dirname(target), { recursive: true });

  const temp = `${target}.partial-${suffix()}`;
  await mkdir(temp);
  try {
    const made = new Set<string>();
    for (const [rel, content] of files) {
      const parts = checkRelPath(rel);
      if (parts.length > 1) {
        const sub = join(temp, ...parts.slice(0, -1));
        if (!made.has(sub)) {
          await mkdir(sub, { recursive: true });
          made.add(sub);
        }
      }
      await writeContent(join(temp, ...parts), content);
    }
  } catch (e) {
    await rm(temp, { recursive: true, force: true });
    throw e;
  }

  const kept: string[] = [];
  let trash: string | null = null;
  try {
    for (const k of existing ? keep : []) {
      if (!existsSync(join(target, k)) || files.has(k) || [...files.keys()].some((f) => f.startsWith(`${k}/`))) continue;
      await rename(join(target, k), join(temp, k));
      kept.push(k);
    }
    if (existing) {
      trash = `${target}.trash-${suffix()}`;
      await rename(target, trash);
    }
    await rename(temp, target);
  } catch (e) {
    if (trash) await rename(trash, target).catch(() => undefined);
    for (const k of kept) await rename(join(temp, k), join(target, k)).catch(() => undefined);
    await rm(temp, { recursive: true, force: true });
    throw e;
  }
  // The new folder is in place; removing the old one is best effort.
  if (trash) await rm(trash, { recursive: true, force: true }).catch(() => undefined);
}

/** Longest base name kept, leaving room for a numeric suffix and an extension within 255 bytes. */
const MAX_NAME = 200;

const lowerMirror = new WeakMap<Set<string>, { size: number; lower: Set<string> }>();

function takenLower(taken: Set<string>): Set<string> {
  let m = lowerMirror.get(taken);
  if (!m || m.size !== taken.size) {
    m = { size: taken.size, lower: new Set([...taken].map((t) => t.toLowerCase())) };
    lowerMirror.set(taken, m);
  }
  return m.lower;
}

/**
 * A file name (without extension) for a tensor name: keeps [A-Za-z0-9._-],
 * replaces every other character with '_', never '', '.' or '..', at most 200
 * characters. With `taken`, the result differs (ignoring case, for
 * case-insensitive file systems) from every name in it, by a suffix _1, _2, ...
 * when needed, and is added to it.
 */
export function safeFileName(tensorName: string, taken?: Set<string>): string {
  let base = tensorName.replace(/[^A-Za-z0-9._-]/g, '_');
  if (/^\.*$/.test(base)) base = `_${base}`;
  if (base.length > MAX_NAME) base = base.slice(0, MAX_NAME);
  if (!taken) return base;
  const lower = takenLower(taken);
  let name = base;
  for (let k = 1; lower.has(name.toLowerCase()); k++) name = `${base}_${k}`;
  taken.add(name);
  lower.add(name.toLowerCase());
  lowerMirror.set(taken, { size: taken.size, lower });
  return name;
}

/**
 * Refuse to replace a folder that is not one of ours: `--out` may name an
 * existing run folder (holding `marker`) or an empty or missing folder, never
 * a folder of the user's files (or the working directory).
 */
export function checkReplaceable(dir: string, marker: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new UserError(`--out ${dir} is a file, not a folder`);
  const entries = readdirSync(dir);
  // A training run stopped before it finished leaves only its checkpoints: still one of ours.
  const onlyCheckpoints = entries.length > 0 && entries.every((e) => e === 'checkpoints');
  if (entries.length > 0 && !entries.includes(marker) && !onlyCheckpoints) {
    throw new UserError(`--out ${dir} exists and is not a tilesim output folder (no ${marker}); refusing to replace it. Name a new or empty folder.`);
  }
}
