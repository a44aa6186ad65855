/** docs/onnx.md's table of supported ops is what scripts/onnx-table.ts makes from the registry now. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BEGIN, END, ONNX_DOC, onnxTable, withTable } from '../../scripts/onnx-table.js';
import { BUILTIN_OPS } from '../../src/ops/index.js';

describe('the ONNX op table in docs/onnx.md', () => {
  it('is up to date with the registry (run `npx tsx scripts/onnx-table.ts` to regenerate)', () => {
    const doc = readFileSync(ONNX_DOC, 'utf8');
    expect(doc, 'docs/onnx.md is stale: run `npx tsx scripts/onnx-table.ts`').toBe(withTable(doc, onnxTable()));
  });

  it('lists each ai.onnx op once, and changes when the registry does', () => {
    const table = onnxTable();
    expect(table).toMatch(/\| `TopK` \| 1, 10, 11 \| yes \| lowered \|/);
    expect(table).toMatch(/\| `Einsum` \| 12 \| yes \| composite \|/);
    expect(table).toMatch(/\| `ArgMax` \| 11, 12, 13 \| no \| lowered \|/);
    expect(onnxTable(BUILTIN_OPS.filter((d) => d.id.type !== 'TopK'))).not.toContain('`TopK`');
    const doc = `a\n${BEGIN}\nold\n${END}\nb`;
    expect(withTable(doc, 'new')).toBe(`a\n${BEGIN}\nnew\n${END}\nb`);
    expect(() => withTable('no markers', 'x')).toThrow(/markers/);
  });
});
