/**
 * Class labels fed from the host, checked against the classes of the loss
 * that reads them before they reach the device: a label out of range is the
 * data's fault, so it is reported naming the input, the element and its
 * value, not as a vertex failing deep in a step.
 */
import type { SourceLocation } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import { ClassLossOp } from '../ops/loss.js';
import type { HostArray } from './data.js';

/** Flat index -> [i, j, ...] for a message. */
function multiIndex(flat: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(flat % shape[d]);
    flat = Math.floor(flat / shape[d]);
  }
  return `[${idx.join(', ')}]`;
}

/**
 * Throws a UserError when a batch of `input` holds a label outside [0, C)
 * (other than the loss's ignore index) for a class loss reading it directly.
 * `what` names the data (e.g. `inputs.label`); `data` may be a function giving it, called only when checked.
 */
export function checkLabels(graph: Graph, input: string, data: readonly HostArray[] | (() => readonly HostArray[]), what: string, loc?: SourceLocation): void {
  const t = graph.tensor(input);
  let batches: readonly HostArray[] | undefined;
  for (const { op, index } of t.consumers) {
    if (!(op instanceof ClassLossOp) || index !== 1) continue;
    // Random inputs are drawn where they go (src/model/data.ts): here only when labels need checking.
    batches ??= typeof data === 'function' ? data() : data;
    const all = batches;
    const { C } = op.layout();
    const ignore = op.params.ignoreIndex;
    const lossName = op.name === op.opid.type ? op.name : `'${op.name}' (${op.opid.type})`;
    all.forEach((labels, b) => {
      for (let i = 0; i < labels.length; i++) {
        const v = labels[i];
        if ((v >= 0 && v < C && Number.isInteger(v)) || v === ignore) continue;
        const batch = all.length > 1 ? ` of batch ${b}` : '';
        throw new UserError(
          `${what}: label ${v} at index ${multiIndex(i, t.info.shape)}${batch} is out of range for ${lossName} over ${C} classes: ` +
            `labels must be in [0, ${C})${ignore !== undefined ? ` or the ignore index ${ignore}` : ''}`,
          loc,
        );
      }
    });
  }
}
