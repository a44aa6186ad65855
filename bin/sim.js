#!/usr/bin/env node
// The `sim` command: runs the compiled CLI (dist/ is built by `npm ci` through `prepare`).
//
// Node's default heap (about 4 GB) is far below what a whole-model compile on a full chip can
// need on a big host. Unless the user chose a heap size, the command runs itself again in a child
// Node with a heap of three quarters of the host's memory; the child prints and exits as the
// command would, and signals (Ctrl-C) reach it. TILESIM_HEAP_MB sets the size instead. A run with
// numerics also gets glibc's allocator tuned, and every command huge pages (src/util/host-malloc.ts).
import { spawn } from 'node:child_process';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

const MB = 2 ** 20;
const chosen = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('max-old-space-size'));
const want = Number(process.env.TILESIM_HEAP_MB) || Math.floor((0.75 * totalmem()) / MB);
if (!chosen && !process.env.TILESIM_CHILD && want > (getHeapStatistics().heap_size_limit / MB) * 1.25) {
  // Node flags of its own (SIM_NODE_FLAGS: gc exposed, for the compile's collections as lowering ends and as it returns).
  // With numerics, the C allocator keeps freed memory for the next step's host arrays (src/util/host-malloc.ts says why).
  // Every command gets transparent huge pages for malloc's memory (first touch of fresh memory is costly).
  const { simulatesNumerics, withHugePages, withMallocTuning } = await import('../dist/src/util/host-malloc.js');
  const { SIM_NODE_FLAGS } = await import('../dist/src/util/host-heap.js');
  const env = withHugePages(simulatesNumerics(process.argv.slice(2)) ? withMallocTuning(process.env) : process.env);
  const child = spawn(process.execPath, [...SIM_NODE_FLAGS, ...process.execArgv, `--max-old-space-size=${want}`, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...env, TILESIM_CHILD: '1' },
  });
  // The terminal sends Ctrl-C to the child too; the parent waits for it to finish cleanly.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    else process.exit(code ?? 1);
  });
} else {
  // Processes this one starts (sweep points) choose their own heap again.
  delete process.env.TILESIM_CHILD;
  const { main } = await import('../dist/src/cli/main.js');
  const code = await main(process.argv);
  // End once stdout and stderr are flushed, even if something is still open: a pool worker that died
  // mid-task can leave a Piscina message port behind that would keep the process alive forever.
  const flushed = (stream) => new Promise((resolve) => stream.write('', resolve));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
