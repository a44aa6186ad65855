/**
 * PopART's IpuCopyOp: a tensor moved from the IPU that holds it to another
 * IPU that reads it. The InterIpuCopy pass (place.ts) makes one per
 * (tensor, destination IPU); the lowering (lower/ipu-copies.ts) gives the
 * copy the source's tile layout on the destination IPU and merges the copies
 * of a superstep into one exchange.
 */
import { GRAPHCORE_DOMAIN } from '../ir/opid.js';
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';

export const IPU_COPY_OPID = { domain: GRAPHCORE_DOMAIN, type: 'IpuCopy', version: 1 } as const;

export class IpuCopyOp extends Op {
  constructor(
    settings: OpSettings,
    /** The IPU the source tensor lives on (settings.ipu is the destination). */
    readonly sourceIpu: number,
  ) {
    super({ ...IPU_COPY_OPID }, settings);
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
  override attributes(): Record<string, AttributeValue> {
    return { sourceIpu: this.sourceIpu, destIpu: this.settings.ipu ?? 0 };
  }
}

export function isIpuCopy(op: Op): op is IpuCopyOp {
  return op instanceof IpuCopyOp;
}
