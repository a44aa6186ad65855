/**
 * The linear mapping rule (Poplar's mapTensorLinearly, with a start tile):
 * DeviceGraph.mapLinearly applies it, and the planners that must agree with
 * it (the matmul's reduction chunks, memory estimates) compute it here.
 *
 * Whole grains in equal shares, each used tile holding at least
 * minBytesPerTile: fewer tiles for small tensors. A tensor that needs every
 * tile of the device starts at tile 0. A smaller one starts at a tile derived
 * from its element count alone and wraps around past the last tile, so small
 * tensors spread over the chip instead of all stacking on tile 0 and the
 * first few tiles (poputil's mapTensorLinearlyWithOffset; PopLibs rotates
 * start tiles the same way).
 *
 * Why the element count, not the tensor's id or name: tensors an
 * elementwise op combines have the same element count (a weight, its
 * gradient, its optimizer state and the update; a bias gradient and the
 * bias; an activation and its gradient; reshapes of either), so they get
 * the same start and, for one dtype, exactly the same tiles, and the op
 * needs no exchange. The start ignores the dtype and the tile count, so a
 * float16 and a float32 tensor of the same count start on the same tile and
 * mostly overlap (unless one of them needs every tile and so starts at 0). The rule depends on nothing but the numbers, so
 * every machine builds the same program. The cost: unrelated tensors of
 * equal size (e.g. every [768] bias and LayerNorm parameter of a
 * transformer layer) share tiles, as they all shared tile 0 before.
 */

export interface LinearLayout {
  /** Tiles used. */
  tiles: number;
  /** Elements on each used tile (the last may hold fewer). */
  perTile: number;
  /** Tile of elements [0, perTile); element e lives on (start + floor(e / perTile)) mod numTiles. */
  start: number;
}

/**
 * Knuth's multiplicative (Fibonacci) hash of the element count, scaled to
 * [0, numTiles) and rounded down to a multiple of `align` (the device's
 * tilesPerSharedBus): chunks 2i and 2i+1 stay bus-mates as they are from tile
 * 0, so the exchange's shared-bus discount sees the same pairs.
 */
export function linearStartTile(elems: number, tiles: number, numTiles: number, align = 1): number {
  const a = Math.max(1, Math.floor(align));
  const slots = Math.floor(numTiles / a);
  if (tiles >= numTiles || slots <= 1) return 0;
  const h = Math.imul(elems >>> 0, 0x9e3779b1) >>> 0;
  return Math.floor((h / 2 ** 32) * slots) * a;
}

export function linearLayout(elems: number, bytesPerElem: number, grain: number, minBytesPerTile: number, numTiles: number, align = 1): LinearLayout {
  const minElems = Math.max(grain, Math.ceil(minBytesPerTile / bytesPerElem / grain) * grain);
  const grains = Math.ceil(elems / grain);
  // Equal shares of whole grains, but never less than the minimum per tile: fewer tiles instead.
  const grainsPerTile = Math.max(Math.ceil(minElems / grain), Math.ceil(grains / numTiles));
  const tiles = Math.max(1, Math.ceil(grains / grainsPerTile));
  return { tiles, perTile: Math.min(elems, grainsPerTile * grain), start: linearStartTile(elems, tiles, numTiles, align) };
}

/** The tile of chunk i of a layout. */
export function layoutTile(l: LinearLayout, i: number, numTiles: number): number {
  return (l.start + i) % numTiles;
}
