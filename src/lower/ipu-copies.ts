/**
 * Lowering PopART's IpuCopy ops (src/shard): each copy's destination tensor
 * takes the source's tile layout moved to the destination IPU (tile t of IPU
 * a becomes the same tile of IPU b, as Poplar's copyToIpu clones a tensor's
 * mapping), so every tile sends its share and one tile receives it. The
 * copies of consecutive IpuCopy ops in the schedule (a superstep's: the
 * scheduler runs copies only when nothing else is ready, so they bunch) go in
 * one exchange, whose cost (sim/cost.ts exchangeCost) is the busier of the
 * tiles' exchange and the busiest IPU-Link group's share, after the
 * inter-IPU sync.
 */
import type { DeviceGraph, BuildTensor } from './devicegraph.js';
import type { TensorCategory } from '../../sim/program.js';
import type { IpuCopyOp } from '../shard/ipu-copy.js';

export class IpuCopies {
  private exchange = -1;
  private count = 0;

  constructor(private readonly dg: DeviceGraph) {}

  /** Add `op`'s copy to the open exchange (opening one for the first copy of a run). */
  add(op: IpuCopyOp, tensors: Map<string, BuildTensor>, category: TensorCategory): void {
    const src = tensors.get(op.inId(0));
    if (!src?.mapping) throw new Error(`internal: the source '${op.inId(0)}' of ${op.name} was not lowered before it`);
    const by = (op.settings.ipu! - op.sourceIpu) * this.dg.device.tilesPerIpu;
    const info = op.outInfo(0);
    const dst = this.dg.addTensor(op.outId(0), src.dtype, info.shape, category, op.name);
    this.dg.setTileMapping(dst, src.mapping.shifted(by));
    if (this.exchange < 0) this.exchange = this.dg.addExchange('IpuCopy/exchange', op.name);
    this.dg.addCopy(this.exchange, { tensor: src.id, begin: 0, end: src.size }, { tensor: dst.id, begin: 0, end: dst.size });
    this.count++;
    tensors.set(op.outId(0), dst);
  }

  /** Close the run: its one exchange step (none when no copy is open). */
  close(): { kind: 'exchange'; exchange: number }[] {
    if (this.exchange < 0) return [];
    const ex = this.dg.exchanges[this.exchange];
    // Reports attribute the merged exchange to its first copy's op (a phase names one op).
    if (this.count > 1) ex.name = `IpuCopy/exchange (${this.count} tensors)`;
    const step = { kind: 'exchange' as const, exchange: this.exchange };
    this.exchange = -1;
    this.count = 0;
    return [step];
  }
}
