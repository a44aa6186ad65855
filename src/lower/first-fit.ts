/**
 * The first-fit interval allocator of one tile's temporaries (src/lower/memory.ts):
 * items come in order of first step; each goes at the lowest aligned offset
 * at or above `base` where it overlaps no placed item still live (whose last
 * step is not before its first).
 *
 * Whole models place over a million items, a few hundred live at once on a
 * tile but only a handful of holes between them. So the live items are kept
 * sorted by offset in parallel typed arrays (for expiry), and the holes
 * between them in a list of their own that the fit scans: a scan of every
 * live item per placement was most of allocation's time.
 */
export class FirstFit {
  private cap = 64;
  /** Live items, ascending by offset (so their aligned ends ascend too): offset, aligned end, last step. */
  private offset = new Float64Array(this.cap);
  private endAligned = new Float64Array(this.cap);
  private to = new Float64Array(this.cap);
  private n = 0;
  /** The holes between live items (and above base), ascending: [start, end), each non-empty. */
  private holeStart = new Float64Array(this.cap);
  private holeEnd = new Float64Array(this.cap);
  private holes = 0;
  /** At least the largest hole (exact after an expiry; holes only shrink until the next): most items go on top without a scan. */
  private maxHole = 0;
  private minTo = Infinity;
  private base = 0;

  constructor(private readonly alignment: number) {}

  private align(n: number): number {
    return Math.ceil(n / this.alignment) * this.alignment;
  }

  /** Start a tile (or frame): nothing placed, everything from `base` (aligned) up is free. */
  reset(base: number): void {
    this.n = 0;
    this.holes = 0;
    this.maxHole = 0;
    this.minTo = Infinity;
    this.base = base;
  }

  /** Place an item of `bytes` live over steps [from, to] (from never below an earlier item's): its offset. */
  place(bytes: number, from: number, to: number): number {
    if (from > this.minTo) this.expire(from);
    const n = this.n;
    let at = n;
    let offset = n > 0 ? Math.max(this.base, this.endAligned[n - 1]) : this.base;
    if (bytes === 0) {
      // Fits the first gap, even an empty one: at base.
      at = 0;
      offset = this.base;
    } else if (bytes <= this.maxHole) {
      for (let h = 0; h < this.holes; h++) {
        const start = this.holeStart[h];
        const end = this.holeEnd[h];
        if (end - start < bytes) continue;
        offset = start;
        at = this.firstAtOrAbove(end);
        const rest = this.align(start + bytes);
        if (rest < end) this.holeStart[h] = rest;
        else {
          this.holeStart.copyWithin(h, h + 1, this.holes);
          this.holeEnd.copyWithin(h, h + 1, this.holes);
          this.holes--;
        }
        break;
      }
    }
    if (n === this.cap) this.grow();
    if (at < n) {
      this.offset.copyWithin(at + 1, at, n);
      this.endAligned.copyWithin(at + 1, at, n);
      this.to.copyWithin(at + 1, at, n);
    }
    this.offset[at] = offset;
    this.endAligned[at] = this.align(offset + bytes);
    this.to[at] = to;
    this.n = n + 1;
    if (to < this.minTo) this.minTo = to;
    return offset;
  }

  /** Drop the items whose last step is before `from` (compacting in place) and find the holes anew. */
  private expire(from: number): void {
    let k = 0;
    let below = this.base;
    let minTo = Infinity;
    let maxHole = 0;
    this.holes = 0;
    for (let i = 0; i < this.n; i++) {
      const to = this.to[i];
      if (to < from) continue;
      const offset = this.offset[i];
      const end = this.endAligned[i];
      this.offset[k] = offset;
      this.endAligned[k] = end;
      this.to[k] = to;
      if (offset > below) {
        this.holeStart[this.holes] = below;
        this.holeEnd[this.holes] = offset;
        this.holes++;
        if (offset - below > maxHole) maxHole = offset - below;
      }
      if (end > below) below = end;
      if (to < minTo) minTo = to;
      k++;
    }
    this.n = k;
    this.minTo = minTo;
    this.maxHole = maxHole;
  }

  /** Index of the first live item whose offset is at least `offset`. */
  private firstAtOrAbove(offset: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offset[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private grow(): void {
    this.cap *= 2;
    const grow = (a: Float64Array) => {
      const g = new Float64Array(this.cap);
      g.set(a);
      return g;
    };
    this.offset = grow(this.offset);
    this.endAligned = grow(this.endAligned);
    this.to = grow(this.to);
    // Holes are at most one per live item.
    this.holeStart = grow(this.holeStart);
    this.holeEnd = grow(this.holeEnd);
  }
}
