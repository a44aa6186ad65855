import { describe, expect, it } from 'vitest';
import { configJsonSchema, deviceJsonSchema } from '../../src/config/schema.js';

describe('configJsonSchema', () => {
  const s = configJsonSchema() as { type: string; properties: Record<string, { properties?: Record<string, unknown> }>; additionalProperties: boolean };

  it('is a JSON Schema object with every top-level section', () => {
    expect(s.type).toBe('object');
    expect(Object.keys(s.properties).sort()).toEqual(['anchors', 'collectiveMethod', 'compile', 'device', 'inputs', 'model', 'name', 'replicas', 'report', 'run', 'train']);
    expect(s.properties.train.properties).toHaveProperty('optimizer');
    expect(s.properties.train.properties).toHaveProperty('steps');
    expect(s.properties.compile.properties).toHaveProperty('outlining');
    expect(s.additionalProperties).toBe(false);
  });

  it('is plain JSON and lists defaults', () => {
    const round = JSON.parse(JSON.stringify(s));
    expect(round).toEqual(s);
    expect(JSON.stringify(s.properties.run)).toContain('"default":"auto"');
  });

  it('a device schema exists too', () => {
    expect(Object.keys((deviceJsonSchema() as { properties: object }).properties)).toContain('tilesPerSharedBus');
  });
});
