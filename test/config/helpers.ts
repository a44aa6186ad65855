import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { UserError } from '../../src/errors.js';
import { displayPath } from '../../src/config/schema.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Write files (relative path → text) into a fresh temporary folder; returns the folder. */
export function writeFiles(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tilesim-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/** Write one config file and return its path. */
export function writeConfig(text: string, name = 'config.yaml'): string {
  return path.join(writeFiles({ [name]: text }), name);
}

/** Run fn, expect a UserError, return it. */
export function userError(fn: () => unknown): UserError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a UserError').toBeInstanceOf(UserError);
  return caught as UserError;
}

/** The `file:line:col` prefix a message gives for a location in `file`. */
export function at(file: string, line: number, col: number): string {
  return `${displayPath(file)}:${line}:${col}: `;
}

/** A small valid graph; tests append or replace parts of it. */
export const BASE = `model:
  graph:
    inputs: {x: {shape: [4]}}
    nodes:
      - {op: Relu, inputs: [x], outputs: [y]}
    outputs: [y]
inputs:
  x: {value: [1, 2, 3, 4]}
`;
