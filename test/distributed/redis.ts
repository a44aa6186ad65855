/**
 * A throwaway Redis server for the distributed tests: Debian's redis-server on
 * a free port, no persistence, in a temp folder, with a password (so the tests
 * can check it is never printed). `npm run test:distributed` only: `npm test`
 * needs no Redis.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import path from 'node:path';

export function onPath(name: string): string {
  const found = (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, name)).find((f) => existsSync(f));
  if (!found) throw new Error(`'${name}' is not on PATH: install Debian's redis-server (apt-get install redis-server); .ci/run does`);
  return found;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' }, () => {
      c.end();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

export interface RedisServer {
  port: number;
  password: string;
  url: string;
  /** redis-cli against the server: its stdout. */
  cli(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startRedis(dir: string): Promise<RedisServer> {
  const bin = onPath('redis-server');
  const password = 'pw-Secret-9f3a';
  const port = await freePort();
  const proc: ChildProcess = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', password], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await canConnect(port))) throw new Error(`redis-server did not start on port ${port}`);
  const cliBin = onPath('redis-cli');
  return {
    port,
    password,
    url: `redis://:${password}@127.0.0.1:${port}/0`,
    cli: (...args) => spawnSync(cliBin, ['-p', String(port), '--no-auth-warning', '-a', password, ...args], { encoding: 'utf8' }).stdout,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}
