/**
 * Fuzzing configs: the example configs, mutated (keys dropped, renamed or
 * misspelt, values replaced by values of other types, out-of-range numbers,
 * nodes rewired; and raw text edits that break the YAML), are loaded and, when
 * they load, compiled timing-only. Each must be accepted or refused with a
 * UserError naming the config file; never another exception.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import { compile } from '../../src/session.js';
import { ROOT } from '../helpers.js';
import { acceptsOrRefuses, check, runs } from './fuzz.js';

const EXAMPLES = ['leaky-relu-train.yaml', 'leaky-relu-infer.yaml', 'mlp-adam.yaml', 'iris-mlp.yaml', 'mlp-onnx.yaml'].map((f) => path.join(ROOT, 'configs/examples', f));
const TEXTS = EXAMPLES.map((f) => readFileSync(f, 'utf8'));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Values of every kind a mistaken config holds. */
const anyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(null, true, false, 0, -1, 1, 2.5, -1e9, 1e12, Number.MAX_SAFE_INTEGER, '', 'x', 'float16', 'int32', 'mk2', 'tiny', 'MatMul', 'all', 'final', '[]'),
  fc.integer({ min: -5, max: 70000 }),
  fc.double({ noNaN: false }),
  fc.string({ maxLength: 8 }),
  fc.array(fc.integer({ min: -3, max: 40 }), { maxLength: 5 }),
  fc.dictionary(fc.constantFrom('shape', 'dtype', 'init', 'op', 'inputs', 'random', 'seed', 'value'), fc.integer({ min: -2, max: 9 }), { maxKeys: 3 }),
);

/** Every [parent, key] in a parsed config, depth first. */
function slots(v: Json, out: [Json[] | Record<string, Json>, string | number][] = []): [Json[] | Record<string, Json>, string | number][] {
  if (Array.isArray(v)) {
    v.forEach((c, i) => {
      out.push([v, i]);
      slots(c, out);
    });
  } else if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      out.push([v, k]);
      slots(v[k], out);
    }
  }
  return out;
}

interface Mutation {
  kind: 'replace' | 'delete' | 'rename' | 'typo' | 'duplicate' | 'nudge';
  at: number;
  value: Json;
  name: string;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  // 'nudge' keeps a number plausible (1 to 64), so many configs still load and compile with other sizes.
  kind: fc.constantFrom<Mutation['kind']>('replace', 'replace', 'delete', 'rename', 'typo', 'duplicate', 'nudge', 'nudge', 'nudge', 'nudge'),
  at: fc.nat(),
  value: anyValue,
  name: fc.constantFrom('shape', 'dtype', 'inputs', 'outputs', 'nodes', 'op', 'steps', 'loss', 'optimizer', 'device', 'tiles', 'x', 'zz'),
});

function mutate(doc: Json, m: Mutation): void {
  const all = slots(doc);
  if (all.length === 0) return;
  const [parent, key] = all[m.at % all.length];
  const p = parent as Record<string | number, Json>;

  switch (m.kind) {
    case 'nudge': {
      const nums = all.filter(([q, k]) => typeof (q as Record<string | number, Json>)[k] === 'number');
      if (nums.length === 0) return;
      const [q, k] = nums[m.at % nums.length];
      (q as Record<string | number, Json>)[k] = (m.at % 64) + 1;
      break;
    }
    case 'replace':
      p[key] = m.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete p[key];
      break;
    case 'rename':
    case 'typo':
      if (!Array.isArray(parent)) {
        const v = p[key];
        delete p[key];
        p[m.kind === 'rename' ? m.name : `${String(key).slice(0, -1)}${String(key).slice(-1) === 's' ? '' : 's'}`] = v;
      }
      break;
    case 'duplicate':
      if (Array.isArray(parent)) parent.push(structuredClone(p[key]));
      else p[m.name] = structuredClone(p[key]);
      break;
  }
}

/** Elements of the biggest tensor a config declares (compiling a mutated 1e12-element shape is a heap test, not this one). */
function biggest(doc: Json): number {
  let max = 0;
  for (const [parent, key] of slots(doc)) {
    const v = (parent as Record<string | number, Json>)[key];
    if (key === 'shape' && Array.isArray(v) && v.every((d) => typeof d === 'number')) max = Math.max(max, (v as number[]).reduce((a, b) => a * Math.max(1, b), 1));
  }
  return max;
}

/** What the cases came to, to show the fuzzing is not vacuous. */
const seen = { loaded: 0, compiled: 0, refused: 0 };

async function loadAndCompile(text: string, file: string, compileIfSmall: boolean): Promise<void> {
  const r = await acceptsOrRefuses(path.basename(file), () => loadConfigText(text, file, { numerics: false }));
  if (r instanceof Error) return void seen.refused++;
  seen.loaded++;
  if (!compileIfSmall) return;
  let small = true;
  try {
    small = biggest(parse(text, { logLevel: 'error' }) as Json) <= 1 << 16;
  } catch {
    small = false;
  }
  if (!small) return;
  const c = await acceptsOrRefuses(path.basename(file), () => compile(r));
  if (c instanceof Error) seen.refused++;
  else seen.compiled++;
}

describe('fuzzing configs: accepted, or refused with a UserError naming the file', () => {
  it('structural mutations of the examples (keys, values, types, nodes)', async () => {
    await check(
      'config-structure',
      fc.record({ example: fc.nat({ max: EXAMPLES.length - 1 }), muts: fc.array(mutation, { minLength: 1, maxLength: 3 }), compile: fc.boolean() }),
      async ({ example, muts, compile: c }) => {
        const doc = parse(TEXTS[example]) as Json;
        for (const m of muts) mutate(doc, m);
        await loadAndCompile(stringify(doc), EXAMPLES[example], c);
      },
      runs(500),
    );
  });

  it('raw text edits (YAML that no longer parses, or parses as something else)', async () => {
    await check(
      'config-text',
      fc.record({
        example: fc.nat({ max: EXAMPLES.length - 1 }),
        edits: fc.array(fc.record({ at: fc.nat(), del: fc.nat({ max: 6 }), ins: fc.constantFrom('', ':', '{', '}', '[', ']', '- ', '\n', '  ', '\t', '#', '"', "'", '&a', '*a', '!!int', '0x', 'e9', '..') }), { minLength: 1, maxLength: 4 }),
      }),
      async ({ example, edits }) => {
        let text = TEXTS[example];
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = text.slice(0, at) + e.ins + text.slice(at + e.del);
        }
        await loadAndCompile(text, EXAMPLES[example], false);
      },
      runs(400),
    );
  });

  it('the cases above reached every stage: refused at load, loaded, compiled', () => {
    console.log(`configs: ${seen.refused} refused, ${seen.loaded} loaded, ${seen.compiled} compiled`);
    expect(seen.refused).toBeGreaterThan(50);
    expect(seen.loaded).toBeGreaterThan(50);
    expect(seen.compiled).toBeGreaterThan(30);
  });
});
