/**
 * The report's insights: the tiles, tensors, compute sets and exchanges that
 * cost the most memory or cycles, each with what would reduce it. Plain rules
 * over the report's own numbers, so every line can be checked against a view.
 */
import type { ReportData } from './report-data.js';
import type { TensorRow } from './tensors.js';

export interface Insight {
  kind: 'memory' | 'tensor' | 'vertices' | 'compute' | 'exchange' | 'sync';
  title: string;
  detail: string;
  advice: string;
}

const n = (x: number) => Math.round(x).toLocaleString('en-US');
const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(0)}%` : '0%');

export function insights(d: ReportData): Insight[] {
  const out: Insight[] = [];
  const m = d.summary.memory;
  const tiles = d.tables.tiles;
  const peak = tiles[m.maxTile];
  const stepName = (i: number) => (d.program[i] ? `${i} ${d.program[i].name}` : String(i));

  if (peak && peak.bytes > 0) {
    const parts = { 'always-live data': peak.alwaysLive, temporaries: peak.temporaries, code: peak.code, 'vertex state': peak.vertexState };
    const [top] = Object.entries(parts).sort((a, b) => b[1] - a[1]);
    const advice: Record<string, string> = {
      'always-live data': 'Variables, constants and host-stream buffers stay for the whole run: spread the largest (below) over more tiles, or keep them in float16.',
      temporaries: "Tensors live at this tile's peak set it: a smaller availableMemoryProportion (device field) makes matmul plans use fewer temporaries, and a smaller batch shortens activations.",
      code: 'Each distinct codelet on the tile costs codeBytesPerCodelet: fewer kinds of vertex on this tile (ops mapped elsewhere) cut it.',
      'vertex state': 'Many small vertices: each costs words of state per field and region; fewer, larger contiguous regions per vertex cut it.',
    };
    out.push({
      kind: 'memory',
      title: `Tile ${m.maxTile} has the most memory in use: ${n(peak.bytes)} B, ${pct(peak.bytes, m.tileCapacity)} of ${n(m.tileCapacity)} B`,
      detail: Object.entries(parts).map(([k, v]) => `${k} ${n(v)} B (${pct(v, peak.bytes)})`).join(', ') + `; the mean tile uses ${n(m.meanTileBytes)} B.`,
      advice: advice[top[0]],
    });
    if (m.meanTileBytes > 0 && peak.bytes > 2 * m.meanTileBytes) {
      out.push({
        kind: 'memory',
        title: `Tile ${m.maxTile} holds ${(peak.bytes / m.meanTileBytes).toFixed(1)}x the mean tile`,
        detail: `${m.tilesUsed} of ${tiles.length} tiles hold data; the peak tile sets how big a model fits.`,
        advice: 'Tensors too small to spread (below minBytesPerTile, or with few elements) pile onto the first tiles: map small tensors round the device, or raise the batch so they spread.',
      });
    }
    const vertexStateTiles = tiles.filter((t) => t.bytes > 0 && t.vertexState > 0.2 * t.bytes);
    if (vertexStateTiles.length) {
      const worst = vertexStateTiles.reduce((a, b) => (b.vertexState > a.vertexState ? b : a));
      const onTile = d.programTiles.filter((r) => r.tile === worst.tile && r.vertices > 0);
      const vertices = onTile.reduce((a, r) => a + r.vertices, 0);
      const regions = onTile.reduce((a, r) => a + r.regions, 0);
      out.push({
        kind: 'vertices',
        title: `Vertex state on tile ${worst.tile} is high: ${n(worst.vertexState)} B, ${pct(worst.vertexState, worst.bytes)} of its memory`,
        detail: `${n(vertices)} vertices with ${n(regions)} regions over ${onTile.length} compute sets; ${vertexStateTiles.length} tiles spend over 20% of their memory on vertex state.`,
        advice: 'Many small vertices: fewer vertices with longer contiguous regions (a layout that keeps each tile\'s elements together) cut both state and per-vertex cycles.',
      });
    }
  }

  // Tensors at the peak tile, largest first.
  const onPeak = [...d.tensors].filter((t) => t.peakTileBytes > 0).sort((a, b) => b.peakTileBytes - a.peakTileBytes).slice(0, 3);
  for (const t of onPeak) out.push(tensorInsight(t, m.maxTile, peak?.bytes ?? 0, stepName));
  // A large tensor held mostly by one tile.
  const lopsided = d.tensors.filter((t) => t.tiles > 1 && t.bytes >= 4096 && t.maxTileBytes > 0.5 * t.bytes).sort((a, b) => b.maxTileBytes - a.maxTileBytes)[0];
  if (lopsided) {
    out.push({
      kind: 'tensor',
      title: `Tensor ${lopsided.name} keeps ${pct(lopsided.maxTileBytes, lopsided.bytes)} of its ${n(lopsided.bytes)} B on tile ${lopsided.maxTile}`,
      detail: `It spans ${lopsided.tiles} tiles but one holds most of it (${lopsided.category}, made by ${lopsided.op || 'the host'}).`,
      advice: 'Map it evenly (mapLinearly over its elements) so no tile carries it alone.',
    });
  }

  const compute = d.program.filter((r) => r.kind === 'compute');
  // A step's length: the steps' mean. The program rows' sum is that too, except in a pipeline, where their
  // cycles include the lanes overlapped with another IPU's, so the sum overstates a step; it stands in when there are no step rows.
  const steps = d.tables.steps;
  const stepCycles = steps.length ? steps.reduce((a, s) => a + s.cycles, 0) / steps.length : d.program.reduce((a, r) => a + r.cycles + r.syncCycles, 0);
  // Compute sets that run on few tiles for long: the work could spread.
  const totalTiles = tiles.length;
  const narrow = compute.filter((r) => r.tiles > 0 && r.tiles <= totalTiles / 8 && r.cycles > 0).sort((a, b) => b.cycles - a.cycles).slice(0, 3);
  for (const r of narrow) {
    out.push({
      kind: 'compute',
      title: `${r.name} runs on ${r.tiles} of ${totalTiles} tiles for ${n(r.cycles)} cycles a step (${pct(r.cycles, stepCycles)} of a step)`,
      detail: `${n(r.vertices)} vertices, ${n(r.regions)} regions (${r.codelets}); busiest tile ${r.busiestTile} at ${n(r.maxTileCycles)} cycles.`,
      advice: 'Its output is mapped on few tiles: spreading that tensor (or the op\'s work) over more tiles divides the cycles.',
    });
  }
  const imbalanced = compute.filter((r) => r.tiles > 1 && r.meanTileCycles > 0 && r.maxTileCycles > 1.5 * r.meanTileCycles).sort((a, b) => b.maxTileCycles - b.meanTileCycles - (a.maxTileCycles - a.meanTileCycles))[0];
  if (imbalanced) {
    out.push({
      kind: 'compute',
      title: `${imbalanced.name} is unbalanced: tile ${imbalanced.busiestTile} takes ${n(imbalanced.maxTileCycles)} cycles, the mean tile ${n(imbalanced.meanTileCycles)}`,
      detail: `The compute set lasts as long as its busiest tile; ${imbalanced.tiles} tiles work.`,
      advice: 'Give every tile a similar share of elements (or vertices) so the phase is not waiting on one tile.',
    });
  }
  const manyVertices = compute.filter((r) => r.tiles > 0 && r.vertices / r.tiles >= 8).sort((a, b) => b.vertices / b.tiles - a.vertices / a.tiles)[0];
  if (manyVertices) {
    out.push({
      kind: 'vertices',
      title: `${manyVertices.name} has ${n(manyVertices.vertices / manyVertices.tiles)} vertices per tile`,
      detail: `${n(manyVertices.vertices)} vertices and ${n(manyVertices.regions)} regions on ${manyVertices.tiles} tiles (${manyVertices.codelets}).`,
      advice: 'Each vertex pays its own start-up cycles and state: merge the small regions into fewer, longer ones.',
    });
  }

  const exchanges = d.program.filter((r) => r.kind === 'exchange' && r.bytes > 0).sort((a, b) => b.bytes - a.bytes).slice(0, 3);
  const exCycles = d.program.filter((r) => r.kind === 'exchange').reduce((a, r) => a + r.cycles, 0);
  for (const r of exchanges) {
    out.push({
      kind: 'exchange',
      title: `${r.name} moves ${n(r.bytes)} B a step over ${r.tiles} tiles`,
      detail: `${n(r.cycles)} cycles (${pct(r.cycles, exCycles)} of the exchange cycles of a step); busiest tile ${r.busiestTile}.`,
      advice: `Its op (${r.op || 'host'}) copies operands to where its vertices run: laying the operand out on those tiles beforehand, or planning the op to use the operand where it lies, removes the copy.`,
    });
  }

  const sync = d.summary.cycles.sync;
  if (d.summary.cycles.total > 0 && sync > 0.2 * d.summary.cycles.total) {
    const supersteps = d.program.filter((r) => r.syncCycles > 0).length;
    out.push({
      kind: 'sync',
      title: `Syncs take ${pct(sync, d.summary.cycles.total)} of all cycles`,
      detail: `${supersteps} syncs a step.`,
      advice: 'Every compute set not straight after an exchange, and every exchange, starts with a sync: fewer, larger compute sets (elementwise ops fused, or one compute set for several small tensors) cut them.',
    });
  }
  return out;
}

function tensorInsight(t: TensorRow, tile: number, tileBytes: number, stepName: (i: number) => string): Insight {
  const always = t.liveFrom < 0;
  const when = always ? 'it is always live' : `it is live from step ${stepName(t.liveFrom)} to ${stepName(t.liveTo)}`;
  let advice: string;
  // A variable live only part of the run is a weight off chip or sharded over the replicas (train.weightTensorLocationSettings).
  if (t.category === 'variable' && !always) advice = 'A weight loaded from Streaming Memory or gathered from the replicas\' shards: it takes this memory only from its load or gather to its last use, so fewer ops between them shorten that.';
  else if (t.category === 'variable' || t.category === 'constant') advice = 'A weight or constant lives all run: spread it over more tiles, keep it in float16, or (a weight, with replicas) shard it over the replicas or keep it off chip (train.weightTensorLocationSettings).';
  else if (t.category === 'exchange') advice = `An exchange buffer of ${t.op || 'the host'}: it holds operands copied onto this tile; using the operand where it lies avoids the copy.`;
  else if (always) advice = 'It is always live (a host stream buffer or state carried between steps): a smaller batch shrinks it.';
  else advice = `It lives across ${t.liveTo - t.liveFrom + 1} program steps: a smaller batch shrinks it, and recomputing it nearer its use would shorten it.`;
  return {
    kind: 'tensor',
    title: `Tensor ${t.name} is ${pct(t.peakTileBytes, tileBytes)} of tile ${tile}'s peak (${n(t.peakTileBytes)} B)`,
    detail: `${t.category} ${t.dtype} [${t.shape}], ${n(t.bytes)} B over ${t.tiles} tiles, made by ${t.op || 'the host'}; ${when}.`,
    advice,
  };
}
