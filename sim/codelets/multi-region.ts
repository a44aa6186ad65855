/**
 * Multi-region (2-D) forms of the 1-D elementwise MultiVertices, as popops'
 * UnaryOp2D / BinaryOp2D / Cast2d: popops::map gives a tile whose part of
 * the output is one contiguous region one 1-D MultiVertex, and otherwise
 * splits the tile's regions among its workers and gives each worker one 2-D
 * vertex holding a list of regions (src/lower/elementwise.ts placeByTile).
 *
 * The 2-D form has the 1-D codelet's fields, each a list of regions, and its
 * params and arrays; region j of every field is one 1-D pass, run by the 1-D
 * compute itself, so the numbers (and the WebAssembly fast paths) are the
 * 1-D codelet's, bit for bit. It is a worker vertex: its estimate counts the
 * worker's own cycles and the tile schedules the 2-D vertices over its workers
 * (sim/cost.ts).
 */
import type { ElemArray, VertexArgs, VertexShape } from '../codelet.js';
import { defineCodelet, type ArraySpecs, type CodeletDef, type FieldSpecs, type ParamSpecs } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { FieldValue, Region } from '../program.js';

/** The element counts of a field's regions (one for a single region). */
export function regionCounts(f: FieldValue | undefined): number[] {
  if (!f) return [];
  return Array.isArray(f) ? f.map((r: Region) => r.count) : [f.count];
}

/** True when every region of `input` is the very same as the output's (popops' *InPlace 2-D variants). */
export function regionsInPlace(v: VertexShape, input: string, output = 'out'): boolean {
  const a = v.fields[input];
  const o = v.fields[output];
  if (!Array.isArray(a) || !Array.isArray(o) || a.length !== o.length) return false;
  return a.every((r, j) => r.offset === o[j].offset && r.count === o[j].count && r.dtype === o[j].dtype);
}

/**
 * The multi-region form of `oneD` (named `<name>2D`), with the given worker
 * estimate; set as oneD.multiRegion, so registering the built-ins registers
 * it too. Returns oneD. A field that is already a list in the 1-D codelet
 * (Sum's operands) holds k regions per pass, pass after pass, where k is its
 * length over the number of passes (the length of each single field's list).
 */
export function withMultiRegion<C extends CodeletDef>(oneD: C, cycles: (v: VertexShape, device: DeviceSpec) => number, estimateSource: string): C {
  const fields: FieldSpecs = {};
  const single: string[] = [];
  for (const [name, f] of Object.entries(oneD.fields)) {
    fields[name] = { ...f, vector: true };
    if (!f.vector) single.push(name);
  }
  if (single.length === 0) throw new Error(`codelet '${oneD.name}': every field is a list; its multi-region form could not tell the passes apart`);
  const compute = oneD.compute;
  oneD.multiRegion = defineCodelet<FieldSpecs, ParamSpecs, ArraySpecs>({
    ...(oneD.domain !== undefined ? { domain: oneD.domain } : {}),
    name: `${oneD.shortName}2D`,
    kind: 'worker',
    fields,
    params: oneD.params,
    arrays: oneD.arrays,
    compute(args) {
      const lists = args.fields as unknown as Record<string, ElemArray[] | undefined>;
      const one: VertexArgs = { fields: {}, params: args.params as Record<string, number>, arrays: args.arrays as Record<string, number[]> };
      let passes = 0;
      for (const name of single) passes = Math.max(passes, lists[name]?.length ?? 0);
      for (let j = 0; j < passes; j++) {
        for (const name in lists) {
          const list = lists[name]!;
          if (!oneD.fields[name].vector) one.fields[name] = list[j];
          else {
            const k = list.length / passes;
            one.fields[name] = list.slice(j * k, (j + 1) * k);
          }
        }
        compute(one);
      }
    },
    cycles: (v, device) => cycles(v as VertexShape, device),
    estimateSource,
  });
  return oneD;
}
