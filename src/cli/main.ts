/**
 * The `sim` command. Exit status: 0 success; 2 the config or the command line
 * is wrong; 1 the run failed. Errors print as one clear message, never as a
 * stack trace (set TILESIM_DEBUG=1 to see one).
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { loadDevicePreset } from '../config/devices.js';
import { configJsonSchema } from '../config/schema.js';
import { RunError, UserError } from '../errors.js';
import { createRegistry } from '../model/modules.js';
import { compile, run } from '../session.js';
import { writeRun } from '../report/write.js';
import { writeRunFolder } from '../report/runfolder.js';
import { buildSummary, profileTables } from '../report/summary.js';
import { formatHeader, formatStep, formatSummary } from './format.js';
import { checkOutputFolder, reasonOf } from './outdir.js';
import { compileProgress } from './progress.js';
import type { RunConfig } from '../config/types.js';
import type { Compiled } from '../session.js';
import { sweepCommand, type SweepCommandOptions } from './sweep-command.js';
import { parseRedisUrl } from './redis-url.js';
import { rerenderReport } from '../report/rerender.js';
import { writeComparison } from '../report/compare.js';
import { TilePool } from '../../sim/pool.js';
import { CodeletFault, describeThrown, moduleInStack } from '../../sim/faults.js';
import { checkpointConfig, checkpointInFlight, readCheckpoint, writeCheckpoint } from '../report/checkpoint.js';
import { importedUserModules, loadCodeletRegistry } from '../../sim/modules.js';
import type { DeviceProgram } from '../../sim/program.js';
import { programJsonReplacer } from '../../sim/copies.js';
import { vertexCommand } from './vertex.js';
import { devicesCommand } from './devices.js';
import { parseAttribute, runGradcheck } from './gradcheck.js';
import { compileReport } from './compile-report.js';
import { formatTimings, PassTimer } from './timings.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

function chooseWorkers(requested: number | 'auto', program: DeviceProgram): number {
  if (requested !== 'auto') return requested;
  // The pool only pays off when some compute set is big enough (see sim/pool.ts).
  return program.computeSets.some((cs) => TilePool.worthIt(cs)) ? Math.min(availableParallelism(), 8) : 1;
}

async function compileWithProgress(config: RunConfig, tty: boolean, timer?: PassTimer): Promise<Compiled> {
  const progress = compileProgress(tty);
  try {
    return await compile(config, {
      onProgress: (pass, done, total, op) => {
        timer?.onProgress(pass, op);
        progress.onProgress?.(pass, done, total);
      },
    });
  } finally {
    progress.stop();
  }
}

/** This package's version: package.json is two (src/cli) or three (dist/src/cli) folders up. */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'tilesim' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('sim')
    .version(`tilesim ${packageVersion()}`, '-V, --version', 'print the version')
    .description('tilesim: a cycle-approximate simulator of a many-tile, bulk-synchronous AI accelerator (Graphcore IPU class)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('run')
    .description('compile and run a config: losses, cycles, memory; writes the run folder')
    .argument('[config]', 'config YAML file (with --resume: by default the one the checkpoint was written for)')
    .option('--out <dir>', 'run folder (default sim-out/<name>/; with --resume, the folder resumed)')
    .option('--workers <n>', "worker threads, or 'auto'", (v) => (v === 'auto' ? 'auto' : positiveInt('--workers')(v)))
    .option('--steps <n>', 'training (or inference) steps, overriding the config', positiveInt('--steps'))
    .option('--resume <run-dir>', "continue a training run from the newest checkpoint in its run folder (train.checkpointEvery)")
    .option('--json', 'print summary.json on stdout and nothing else')
    .option('--no-numerics', 'count cycles only; compute no values')
    .action(async (file: string | undefined, o: { out?: string; workers?: number | 'auto'; steps?: number; resume?: string; json?: boolean; numerics: boolean }) => {
      const cp = o.resume ? readCheckpoint(path.resolve(o.resume)) : undefined;
      if (!file && !cp) throw new UserError("sim run: name a config file, or a run folder to continue with --resume <run-dir>");
      const configFile = cp ? checkpointConfig(cp, file) : path.resolve(file!);
      const config = loadConfig(configFile, { steps: o.steps, workers: o.workers, numerics: o.numerics === false ? false : undefined });
      const dir = path.resolve(o.out ?? o.resume ?? path.join('sim-out', config.name));
      await checkOutputFolder(dir, 'summary.json');
      const steps = config.steps ?? 1;
      if (cp && cp.state.step > steps) throw new UserError(`--resume: the checkpoint in ${cp.dir} is after step ${cp.state.step}, beyond the run's ${steps} steps; ask for more with --steps`);
      const live = !o.json;
      const compiled = await compileWithProgress(config, live && process.stdout.isTTY === true);
      const workers = chooseWorkers(config.run.workers, compiled.program);
      if (live) process.stdout.write(formatHeader(config.name, compiled.program.device) + '\n');
      if (live && cp) process.stdout.write(`resuming after step ${cp.state.step} from ${displayDir(cp.dir)}\n`);
      const every = config.train?.checkpointEvery;
      const progress = { done: cp?.state.step ?? 0, saved: cp ? cp.dir : undefined as string | undefined };
      const stop = onInterrupt(() => {
        const how = progress.saved
          ? `the checkpoint after step ${path.basename(progress.saved).replace(/^step-0*/, '') || '0'} is kept in ${displayDir(progress.saved)}; continue with: sim run --resume ${displayDir(dir)}`
          : 'no checkpoint was written (train.checkpointEvery: N keeps one every N steps)';
        process.stderr.write(`\ninterrupted after ${progress.done} of ${steps} steps; ${how}\n`);
      });
      let result;
      try {
        // Each step's line as the step ends (stdout is written directly, so a pipe sees it at once too).
        result = await run(compiled, {
          workers,
          numerics: config.run.numerics,
          steps,
          onStep: (st) => {
            progress.done = st.step + 1;
            if (live) process.stdout.write(formatStep(st) + '\n');
          },
          ...(cp ? { resume: { state: cp.state, steps: cp.steps } } : {}),
          ...(every ? { checkpoint: { every, save: async (state, done) => void (progress.saved = await writeCheckpoint(dir, configFile, state, done)) } } : {}),
        });
      } finally {
        stop();
      }
      let summary;
      try {
        summary = await writeRun(dir, result, workers);
      } catch (e) {
        if (e instanceof UserError) throw e;
        // The numbers are not lost with the folder: print them, then fail.
        summary = buildSummary(result, profileTables(result), {}, workers);
        process.stdout.write(o.json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary, '(not written)', { live }) + '\n');
        throw new RunError(`the run finished, but its folder ${dir} could not be written: ${reasonOf(e)}. The summary is printed above; nothing was written.`);
      }
      if (o.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else process.stdout.write(formatSummary(summary, displayDir(dir), { live }) + '\n');
    });

  program
    .command('compile')
    .description('compile only: memory and program report, no execution')
    .argument('<config>', 'config YAML file')
    .option('--out <dir>', 'write program.json (the DeviceProgram) into this folder')
    .option('--timings', 'print host time, peak heap, typed arrays and RSS per compile pass, and the ops slowest to lower')
    .action(async (file: string, o: { out?: string; timings?: boolean }) => {
      if (o.out) await checkOutputFolder(path.resolve(o.out), 'program.json');
      const timer = o.timings ? new PassTimer() : undefined;
      const compiled = await compileWithProgress(loadConfig(file), process.stdout.isTTY === true, timer);
      // The report's time is its own row, not added to the last pass's.
      timer?.onProgress('writing the compile report');
      const report = compileReport(compiled);
      process.stdout.write(report + '\n');
      if (timer) process.stdout.write(formatTimings(timer.finish(), timer.ops) + '\n');
      if (o.out) {
        await writeRunFolder(path.resolve(o.out), new Map([['program.json', JSON.stringify(compiled.program, programJsonReplacer)]]));
        process.stdout.write(`program written to ${path.join(o.out, 'program.json')}\n`);
      }
    });

  program
    .command('sweep')
    .description('run a grid of config variations, one table row per point: on a local pool of processes, or through a Redis queue (--queue)')
    .argument('<config>', 'config YAML file')
    .requiredOption('--set <key=values...>', 'a dotted config key and comma-separated values, e.g. train.optimizer.lr=0.01,0.1')
    .option('--workers <n>', 'worker threads of each point\'s run', positiveInt('--workers'), 1)
    .option('--jobs <n>', 'points run at once, each in its own process (default: cores / --workers)', positiveInt('--jobs'))
    .option('--json', 'print the rows as JSON')
    .option('--no-numerics', 'count cycles only')
    .option('--out <dir>', 'the sweep folder: sweep.json, sweep.csv, sweep.html (a chart of the points), runs/<id>/ (one run folder per point), points/ (for --resume)')
    .addOption(new Option('--results <mode>', 'folders: each point\'s run folder in <out>/runs/<id> (with --queue, --out must be a path the workers share); summary: only the numbers of each point').choices(['folders', 'summary']).default('folders'))
    .option('--queue [url]', 'put the points on a BullMQ queue in Redis (redis://[:password@]host:port/db, or TILESIM_QUEUE) for sim worker to run')
    .option('--root <dir>', "the sweep's folder: with --queue, the config, custom-op modules and data files must be below it (default: the config's folder)")
    .option('--resume', 'continue the sweep in --out: points with a result there are skipped (the same config and grid give the same point ids)')
    .action(async (file: string, o: SweepCommandOptions) => {
      await sweepCommand(file, o);
    });

  program
    .command('worker')
    .description('take sweep points off a Redis queue (sim sweep --queue) and run them, until Ctrl-C')
    .option('--queue <url>', 'the queue: redis://[:password@]host:port/db (default: TILESIM_QUEUE)')
    .option('--root <dirs...>', 'folders whose sweeps this worker runs: configs, custom-op modules and --out must be below one (default: the working directory)')
    .option('--jobs <n>', 'points run at once, each in its own process', positiveInt('--jobs'), 1)
    .option('--stalled-after <s>', "seconds after which a point whose worker stopped goes to another worker (BullMQ's lock duration and stalled-job check)", (v) => {
      const n = Number(v);
      if (!(n >= 1)) throw new InvalidArgumentError(`--stalled-after must be a number of seconds >= 1, got '${v}'`);
      return n;
    }, 30)
    .action(async (o: { queue?: string; root?: string[]; jobs: number; stalledAfter: number }) => {
      const url = o.queue ?? process.env.TILESIM_QUEUE;
      if (!url) throw new UserError('sim worker needs --queue redis://host:port/db (or TILESIM_QUEUE)');
      const target = parseRedisUrl(url);
      const roots = (o.root ?? [process.cwd()]).map((r) => path.resolve(r));
      for (const r of roots) if (!existsSync(r)) throw new UserError(`--root ${r} does not exist`);
      const { QUEUE_NAME, runWorker } = await import('./sweep-queue.js');
      const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
      const w = await runWorker(target, { roots, jobs: o.jobs, stalledAfter: o.stalledAfter, log });
      log(`worker ${process.pid}: taking points from the queue '${QUEUE_NAME}' at ${target.display}, ${o.jobs} at a time, for sweeps below ${roots.join(', ')}; Ctrl-C stops`);
      let stopping = false;
      const stop = (sig: NodeJS.Signals) => {
        if (stopping) process.exit(sig === 'SIGINT' ? 130 : 143);
        stopping = true;
        log('stopping: the points running finish first (Ctrl-C again stops at once; they then go to another worker)');
        void w.stop(false);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      await w.closed;
      log('worker stopped');
    });

  program
    .command('report')
    .description('(re)render report.html from a run folder, or compare two run folders')
    .argument('[run-dir]', 'a folder written by sim run')
    .option('--compare <dirs...>', 'compare two run folders A B: per-op cycles and memory side by side, with deltas')
    .option('--out <file>', 'where --compare writes its page', 'compare.html')
    .action(async (dir: string | undefined, o: { compare?: string[]; out: string }) => {
      if (o.compare) {
        if (o.compare.length !== 2 || dir !== undefined) throw new UserError(`--compare takes two run folders, A and B, and no other folder; got ${[...o.compare, ...(dir ? [dir] : [])].join(' ')}`);
        const file = await writeComparison(path.resolve(o.compare[0]), path.resolve(o.compare[1]), path.resolve(o.out));
        process.stdout.write(`comparison written to ${displayDir(file)}\n`);
        return;
      }
      if (dir === undefined) throw new UserError('sim report needs a run folder (or --compare A B)');
      const file = await rerenderReport(path.resolve(dir));
      process.stdout.write(`report written to ${displayDir(file)}\n`);
    });

  program
    .command('ops')
    .description('registered ops: domain, type, version, whether they have a gradient')
    .option('--json', 'as JSON')
    .option('--custom <modules...>', 'also load these custom-op modules')
    .action(async (o: { json?: boolean; custom?: string[] }) => {
      const registry = await createRegistry((o.custom ?? []).map((m) => path.resolve(m)));
      const rows = registry.list().map((d) => ({
        domain: d.id.domain,
        type: d.id.type,
        version: d.id.version,
        kind: d.create ? 'op' : d.expand ? 'composite' : 'grad/internal',
        grad: d.grad === true || d.expand !== undefined,
        description: d.description ?? '',
      }));
      if (o.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else {
        process.stdout.write('domain         type               version  grad  description\n');
        for (const r of rows) {
          process.stdout.write(`${r.domain.padEnd(14)} ${r.type.padEnd(18)} ${String(r.version).padStart(7)}  ${(r.kind === 'composite' ? 'yes*' : r.kind === 'op' ? (r.grad ? 'yes' : 'no') : '-').padEnd(4)}  ${r.description}\n`);
        }
        process.stdout.write('grad: yes* = a composite, expanded into ops with gradients; - = a grad or internal op\n');
      }
    });

  program
    .command('devices')
    .description('device presets and their parameters')
    .option('--json', 'as JSON')
    .option('--sources', "each number's citation (source and tag) from configs/devices/<name>.yaml")
    .action((o: { json?: boolean; sources?: boolean }) => {
      process.stdout.write(devicesCommand(o) + '\n');
    });

  program
    .command('schema')
    .description('JSON Schema of the config file')
    .action(() => {
      process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    });

  program
    .command('vertex')
    .description('cycle estimate of one vertex on one tile')
    .argument('<codelet>', 'codelet name, a custom one qualified by its domain (custom.ops::LeakyRelu); see the list when it is unknown')
    .requiredOption('--elements <n>', 'elements the vertex processes', positiveInt('--elements'))
    .addOption(new Option('--dtype <dtype>', 'element type').choices(['float32', 'float16']).default('float32'))
    .option('--device <preset>', 'device preset', 'mk2')
    .option('--custom <modules...>', 'also load these custom-op modules')
    .option('--param <name=value...>', 'vertex params the estimate reads (e.g. rows=16 k=16 n=16)')
    .action(async (codelet: string, o: { elements: number; dtype: 'float32' | 'float16'; device: string; custom?: string[]; param?: string[] }) => {
      const ops = await createRegistry((o.custom ?? []).map((m) => path.resolve(m)));
      const registry = await loadCodeletRegistry(ops.codeletModules);
      const params: Record<string, number> = {};
      for (const kv of o.param ?? []) {
        const [k, v] = parseAttribute(kv);
        if (typeof v !== 'number') throw new UserError(`--param ${kv}: the value must be a number`);
        params[k] = v;
      }
      process.stdout.write(vertexCommand(registry, codelet, o.elements, o.dtype, loadDevicePreset(o.device), params) + '\n');
    });

  program
    .command('gradcheck')
    .description("check an op's grad ops (a custom or a built-in op) against central finite differences, through the simulator")
    .argument('[module]', 'custom-op module (.ts or .js); leave it out for a built-in op')
    .requiredOption('--op <domain::type>', 'the forward op, e.g. custom.ops::LeakyRelu')
    .requiredOption('--shapes <shapes...>', 'one shape per input, e.g. 4x3 3')
    .option('--attr <name=value...>', 'attributes, e.g. alpha=0.2')
    .option('--device <preset>', 'device preset', 'tiny')
    .option('--seed <n>', 'seed of the inputs and the projection', positiveInt('--seed'), 1)
    .option('--tolerance <t>', 'max |analytic - numeric| per element', (v) => Number(v), 2e-3)
    .option('--h <h>', 'finite-difference step', (v) => Number(v), 1e-2)
    .action(async (module: string | undefined, o: { op: string; shapes: string[]; attr?: string[]; device: string; seed: number; tolerance: number; h: number }) => {
      const r = await runGradcheck({
        modules: module ? [path.resolve(module)] : [],
        op: o.op,
        shapes: o.shapes,
        attributes: Object.fromEntries((o.attr ?? []).map(parseAttribute)),
        device: loadDevicePreset(o.device),
        seed: o.seed,
        tolerance: o.tolerance,
        h: o.h,
      });
      process.stdout.write(r.text + '\n');
      if (!r.ok) throw new RunError('gradcheck failed');
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  // `sim devices | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  // A callback a custom codelet scheduled that throws later would crash the CLI with a bare stack.
  process.on('uncaughtException', (e) => {
    const module = moduleInStack(e, importedUserModules());
    if (process.env.TILESIM_DEBUG) console.error(e);
    if (module) process.stderr.write(`run failed: custom op module ${module}: code it scheduled threw ${describeThrown(e)} outside any vertex\n`);
    else process.stderr.write(`internal error: ${describeThrown(e)}\n(set TILESIM_DEBUG=1 for the stack, and please report it)\n`);
    process.exit(1);
  });
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors are command-line mistakes (2).
      return e.exitCode === 0 ? 0 : 2;
    }
    if (process.env.TILESIM_DEBUG) console.error(e);
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof CodeletFault && e.inUserCode) {
      // A fault in a custom-op module's code (its message starts "custom op module <file>: ").
      process.stderr.write(`run failed: ${e.message}\n`);
      return 1;
    }
    if (e instanceof RunError) {
      process.stderr.write(`run failed: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`internal error: ${e instanceof Error ? e.message : describeThrown(e)}\n(set TILESIM_DEBUG=1 for the stack, and please report it)\n`);
    return 1;
  }
}

/**
 * Ctrl-C (or SIGTERM) while a run goes on: say what is kept and how to go on,
 * then end with 130 (the checkpoints on disk are whole: each is renamed into
 * place). The terminal and bin/sim.js's parent may both send it: once is enough.
 * Returns the function that removes the handler.
 */
function onInterrupt(say: () => void): () => void {
  const handler = (sig: NodeJS.Signals) => {
    const end = () => {
      say();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    // A checkpoint being written finishes first (then only the newest is on disk); Ctrl-C again stops at once.
    const pending = checkpointInFlight();
    if (pending) pending.then(end, end);
    else end();
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** A run folder as the user would type it: relative below the working directory, else absolute. */
function displayDir(dir: string): string {
  const rel = path.relative(process.cwd(), dir);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : dir;
}
