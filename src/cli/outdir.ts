/**
 * Checking an output folder (`--out`) before any work: a run on mk2 can take
 * minutes, and its results must not be lost to a folder that turns out to be
 * unwritable only when the run folder is written at the end.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import { checkReplaceable } from '../report/runfolder.js';

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOTDIR: 'part of the path is a file, not a folder',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'the name is too long',
  EEXIST: 'a file of that name exists',
};

export function reasonOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return (code && REASONS[code]) ?? (e as Error).message;
}

/**
 * `dir` may be replaced by a run folder: it is missing, empty or one of ours
 * (holds `marker`), and its parent folder exists (created here if need be)
 * and takes a new file. The run folder is written as a sibling temp folder
 * renamed into place, so writing in the parent is what has to work.
 */
export async function checkOutputFolder(dir: string, marker: string, flag = '--out'): Promise<void> {
  checkReplaceable(dir, marker);
  const parent = path.dirname(dir);
  const fix = `name a folder you can write to (${flag} DIR)`;
  try {
    await mkdir(parent, { recursive: true });
  } catch (e) {
    throw new UserError(`${flag} ${dir}: cannot create its parent folder ${parent}: ${reasonOf(e)}; ${fix}`);
  }
  const probe = path.join(parent, `.${path.basename(dir)}.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(probe, '', { flag: 'wx' });
  } catch (e) {
    throw new UserError(`${flag} ${dir}: cannot write in ${parent}: ${reasonOf(e)}; ${fix}`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}
