/**
 * Splitting a tile's regions among its workers, as PopLibs' poputil
 * splitRegionsBetweenWorkers (lib/poputil/Util.cpp splitRegions): the regions'
 * elements, taken in order, are cut into whole grains, and the grains into
 * at most `maxParts` partitions as even as grains allow; a region may be split
 * between two partitions. With `minPerPart`, fewer partitions are made when
 * that keeps each at least that large without making the largest larger.
 */

/** One piece of a partition: [index of the region, offset into it, length]. */
export type RegionPiece = [region: number, offset: number, length: number];

/** The partitions of regions of the given lengths (in order), each a list of pieces. */
export function splitRegions(lengths: readonly number[], grain: number, maxParts: number, minPerPart = 0): RegionPiece[][] {
  let total = 0;
  for (const n of lengths) total += n;
  if (total === 0) return [];
  const grains = Math.ceil(total / grain);
  let perPart = Math.ceil(grains / maxParts);
  if (minPerPart > 0) {
    // As many partitions as can hold minPerPart each, if that is fewer, without a larger largest one.
    const most = Math.max(1, Math.floor(grains / Math.ceil(minPerPart / grain)));
    perPart = Math.max(perPart, Math.ceil(grains / most));
  }
  const count = Math.ceil(grains / perPart);
  const parts: RegionPiece[][] = [];
  let region = 0;
  let offset = 0;
  for (let p = 0; p < count; p++) {
    // Grains [g0, g1) go to partition p: spread evenly, the last one possibly short.
    const g0 = Math.floor((p * grains) / count);
    const g1 = Math.floor(((p + 1) * grains) / count);
    let left = Math.min(total, g1 * grain) - g0 * grain;
    const part: RegionPiece[] = [];
    while (left > 0) {
      if (offset === lengths[region]) {
        region++;
        offset = 0;
        continue;
      }
      const n = Math.min(left, lengths[region] - offset);
      part.push([region, offset, n]);
      offset += n;
      left -= n;
    }
    parts.push(part);
  }
  return parts;
}
