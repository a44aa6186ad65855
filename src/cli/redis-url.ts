/**
 * `--queue redis://[user:password@]host[:port][/db]`: the Redis server a
 * distributed sweep and its workers share. The URL may carry a password: it
 * is never printed. Every message names the server by `display` (the URL with
 * its user and password replaced by ***), and errors from the Redis client
 * pass through `scrub` before they are shown.
 */
import { UserError } from '../errors.js';

export interface RedisTarget {
  /** The URL as it may be printed: user and password masked. */
  display: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** `url` with any user and password replaced by ***, whether or not it parses. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1***@');
}

export function parseRedisUrl(url: string, flag = '--queue'): RedisTarget {
  const display = maskUrl(url);
  const usage = `write redis://host:port/db, with the password if the server needs one: redis://:password@host:port/db (or set TILESIM_QUEUE instead, to keep it off the command line)`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UserError(`${flag} ${display}: not a URL; ${usage}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UserError(`${flag} ${display}: the scheme must be redis: or rediss: (TLS), not ${u.protocol}; ${usage}`);
  if (!u.hostname) throw new UserError(`${flag} ${display}: no host; ${usage}`);
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!/^\d*$/.test(dbText) || !Number.isInteger(db) || db > 65535) throw new UserError(`${flag} ${display}: the database must be a number (redis://host:port/0), not '${dbText}'`);
  if (u.search || u.hash) throw new UserError(`${flag} ${display}: options after ? or # are not supported; ${usage}`);
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  return { display, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port, db, username, password, tls: u.protocol === 'rediss:' };
}

/** `text` with the target's password (and user) replaced by ***: for messages that come from the Redis client. */
export function scrub(text: string, target: RedisTarget): string {
  let out = text;
  for (const secret of [target.password, target.username]) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join('***');
  }
  return out;
}
