/**
 * Checkpoints (train.checkpointEvery): the state of a training run after a
 * step, kept in the run folder so `sim run --resume <run-dir>` can continue it
 * bit for bit. A checkpoint is `<run-dir>/checkpoints/step-<N>/`:
 *
 *   state.json      the config it belongs to (path and SHA-256 of its text),
 *                   steps and batches done, the reports of those steps, and
 *                   the tensors listed with their files
 *   tensors/*.npy   every device tensor that lives across steps (weights,
 *                   optimizer state, counters), float16 as its bits
 *
 * Each is written into a temp folder renamed into place, so a run stopped
 * mid-write leaves the previous checkpoint whole; only the newest is kept.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ElemArray } from '../../sim/codelet.js';
import type { DeviceDType } from '../../sim/program.js';
import { UserError } from '../errors.js';
import type { SessionState, StepReport } from '../session.js';
import { decodeNpy, npyChunks, type NpyData, type NpyDType } from './npy.js';
import { safeFileName } from './runfolder.js';

export const CHECKPOINTS = 'checkpoints';
const STATE = 'state.json';

interface StateFile {
  schemaVersion: 1;
  config: { file: string; sha256: string };
  step: number;
  batch: number;
  steps: StepReport[];
  tensors: { name: string; dtype: DeviceDType; shape: number[]; file: string }[];
}

export interface Checkpoint {
  /** The checkpoint's folder. */
  dir: string;
  configFile: string;
  state: SessionState;
  steps: StepReport[];
}

export function configDigest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** The checkpoint being written, if any: Ctrl-C lets it finish (its rename and the removal of older ones). */
let inFlight: Promise<string> | undefined;

export function checkpointInFlight(): Promise<string> | undefined {
  return inFlight;
}

/** Write the checkpoint of `state` into `runDir`/checkpoints, then drop older ones. */
export function writeCheckpoint(runDir: string, configFile: string, state: SessionState, steps: StepReport[]): Promise<string> {
  // The caller's await is the first reaction on `p`: an interrupt waiting on it runs after the caller has seen the result.
  const p: Promise<string> = write(runDir, configFile, state, steps).finally(() => {
    if (inFlight === p) inFlight = undefined;
  });
  inFlight = p;
  return p;
}

async function write(runDir: string, configFile: string, state: SessionState, steps: StepReport[]): Promise<string> {
  const root = path.join(runDir, CHECKPOINTS);
  const name = `step-${String(state.step).padStart(6, '0')}`;
  const temp = path.join(root, `.${name}.partial-${process.pid}`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(path.join(temp, 'tensors'), { recursive: true });
  const taken = new Set<string>();
  const tensors: StateFile['tensors'] = [];
  for (const t of state.tensors) {
    if (t.dtype === 'uint8') throw new Error(`internal: device variable '${t.name}' is uint8, which checkpoints do not hold`);
    const file = `tensors/${safeFileName(t.name, taken)}.npy`;
    await writeFile(path.join(temp, file), npyChunks(t.data as NpyData, [t.data.length], t.dtype as NpyDType));
    tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, file });
  }
  const body: StateFile = { schemaVersion: 1, config: { file: configFile, sha256: configDigest(configFile) }, step: state.step, batch: state.batch, steps, tensors };
  await writeFile(path.join(temp, STATE), JSON.stringify(body, null, 2) + '\n');
  const dir = path.join(root, name);
  await rm(dir, { recursive: true, force: true });
  await rename(temp, dir);
  for (const old of await readdir(root)) if (old !== name) await rm(path.join(root, old), { recursive: true, force: true });
  return dir;
}

/** The newest checkpoint in `runDir`, or a UserError saying why there is none. */
export function readCheckpoint(runDir: string): Checkpoint {
  const root = path.join(runDir, CHECKPOINTS);
  if (!existsSync(runDir)) throw new UserError(`--resume ${runDir}: no such folder`);
  const found = existsSync(root) ? readdirSync(root).filter((n) => /^step-\d+$/.test(n)).sort() : [];
  if (found.length === 0)
    throw new UserError(`--resume ${runDir}: it holds no checkpoint (${CHECKPOINTS}/step-N/); a run writes them with train.checkpointEvery: N`);
  const dir = path.join(root, found[found.length - 1]);
  let s: StateFile;
  try {
    s = JSON.parse(readFileSync(path.join(dir, STATE), 'utf8')) as StateFile;
  } catch (e) {
    throw new UserError(`--resume ${runDir}: ${path.join(dir, STATE)} cannot be read: ${(e as Error).message}`);
  }
  if (s.schemaVersion !== 1) throw new UserError(`--resume ${runDir}: checkpoint schema ${String(s.schemaVersion)} is not one this tilesim reads (1)`);
  const tensors = s.tensors.map((t) => {
    const file = path.join(dir, t.file);
    const a = decodeNpy(readFileSync(file), file);
    if (a.dtype !== t.dtype) throw new UserError(`--resume ${runDir}: ${file} holds ${a.dtype}, state.json says ${t.dtype}`);
    return { name: t.name, dtype: t.dtype, shape: t.shape, data: a.data as ElemArray };
  });
  return { dir, configFile: s.config.file, state: { step: s.step, batch: s.batch, tensors }, steps: s.steps };
}

/** The config a checkpoint belongs to, unchanged since: its path, or a UserError. */
export function checkpointConfig(cp: Checkpoint, given?: string): string {
  const file = given ? path.resolve(given) : cp.configFile;
  if (!existsSync(file)) throw new UserError(`--resume: the checkpoint's config ${file} no longer exists; pass the config: sim run <config> --resume <run-dir>`);
  const want = (JSON.parse(readFileSync(path.join(cp.dir, STATE), 'utf8')) as StateFile).config.sha256;
  if (configDigest(file) !== want)
    throw new UserError(`--resume: ${file} has changed since the checkpoint in ${cp.dir} was written; a resumed run must use the config it started with`);
  return file;
}
