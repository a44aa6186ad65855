/**
 * The compile's collections (src/util/host-heap.ts collectGarbage): with gc
 * exposed (as `sim` and the bench start Node, SIM_NODE_FLAGS) one as lowering
 * ends, before finalize's first pass, and one as the compile returns; without
 * it, none and no error. What they save is measured in the bench (peak RSS).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compile } from '../../src/session.js';
import { collectGarbage, SIM_NODE_FLAGS } from '../../src/util/host-heap.js';
import { EXAMPLE_CONFIG } from '../helpers.js';

const g = globalThis as { gc?: () => void };
const exposed = g.gc;

afterEach(() => {
  if (exposed) g.gc = exposed;
  else delete g.gc;
});

describe('collectGarbage', () => {
  it('does nothing, without error, when gc is not exposed', () => {
    delete g.gc;
    expect(() => collectGarbage()).not.toThrow();
  });

  it('is asked for by the flags sim gives its child process', () => {
    expect(SIM_NODE_FLAGS).toContain('--expose-gc');
  });

  it('runs once as lowering ends (before the first finalize pass) and once as the compile returns', async () => {
    const events: string[] = [];
    g.gc = () => void events.push('gc');
    await compile(loadConfig(EXAMPLE_CONFIG), { onProgress: (pass, done) => void (done === 0 && events.push(pass)) });
    events.push('returned');
    expect(events.filter((e) => e === 'gc')).toHaveLength(2);
    const lifetimes = events.indexOf('finding tensor lifetimes');
    expect(lifetimes).toBeGreaterThan(0);
    expect(events[lifetimes - 1]).toBe('gc');
    expect(events.slice(-2)).toEqual(['gc', 'returned']);
  });
});
