/**
 * Codelets of control flow (src/ops/control-flow.ts), as Poplar's Repeat
 * with a counter uses them:
 *
 * LoopCounter   counter[0] += 1 (the Loop's iteration number, int32).
 * SlotUpdate    out[index[0]] = in: one iteration's value written into its
 *               slot of a scan output (popops::dynamicUpdate with the loop
 *               counter as the offset). `out` lists, per slot, the region
 *               of this tile's part of that slot; an index out of range
 *               writes nothing. `out` is inout: the other slots keep what
 *               earlier passes wrote (float16 fields are stored back whole).
 *
 * SlotRead      out = in[index[0]] (or in[slots - 1 - index[0]], `reverse`):
 *               one slot of a stacked tensor read at the loop counter
 *               (popops::dynamicSlice); the LoopGrad reads each pass's
 *               stashed forward values back with it, last pass first.
 *
 * Cycle estimates: a few cycles of scalar work for the counter; the update
 * as a store-bound copy (as Copy) plus the load of the index (GUESS from
 * §3 ALU figures, in the manner of popops' DynamicUpdateSlice estimate).
 */
import { fieldDType, regionCount, type Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { DTYPE_BYTES } from '../program.js';

/** Scan values may be of any element type. */
const ANY = ['float32', 'float16', 'int32'] as const;

export const loopCounterCodelet = defineCodelet({
  name: 'LoopCounter',
  kind: 'worker',
  fields: { counter: { direction: 'inout', required: true, dtypes: ['int32'] } },
  compute({ fields }) {
    fields.counter[0] += 1;
  },
  cycles: () => 8,
  estimateSource: 'a load, an add and a store of one int32, with vertex entry (GUESS from §3 ALU figures)',
});

export const slotUpdateCodelet = defineCodelet({
  name: 'SlotUpdate',
  kind: 'multi',
  fields: { index: { direction: 'input', dtypes: ['int32'] }, in: { direction: 'input', dtypes: ANY }, out: { direction: 'inout', required: true, vector: true, dtypes: ANY } },
  compute({ fields }) {
    const i = fields.index[0];
    const slots = fields.out;
    if (i >= 0 && i < slots.length) slots[i].set(fields.in);
  },
  cycles(v, device) {
    const bytes = regionCount(v.fields.in) * DTYPE_BYTES[fieldDType(v.fields.in)];
    return 30 + device.workersPerTile * Math.ceil(bytes / device.workersPerTile / device.storeBytesPerCycle);
  },
  estimateSource: 'store-bound copy of one slot (storeBytesPerCycle per worker slot) after loading the index, 30 cycles setup (GUESS)',
});

export const slotReadCodelet = defineCodelet({
  name: 'SlotRead',
  kind: 'multi',
  fields: { index: { direction: 'input', dtypes: ['int32'] }, in: { direction: 'input', required: true, vector: true, dtypes: ANY }, out: { direction: 'output', dtypes: ANY } },
  params: { reverse: 'int' },
  compute({ fields, params }) {
    const slots = fields.in;
    const i = params.reverse ? slots.length - 1 - fields.index[0] : fields.index[0];
    if (i >= 0 && i < slots.length) fields.out.set(slots[i]);
  },
  cycles(v, device) {
    const bytes = regionCount(v.fields.out) * DTYPE_BYTES[fieldDType(v.fields.out)];
    return 30 + device.workersPerTile * Math.ceil(bytes / device.workersPerTile / device.storeBytesPerCycle);
  },
  estimateSource: 'store-bound copy of one slot, as SlotUpdate (GUESS)',
});

export const controlFlowCodelets: readonly Codelet[] = [loopCounterCodelet, slotUpdateCodelet, slotReadCodelet];
