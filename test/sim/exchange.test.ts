/**
 * The exchange model of sim/cost.ts: per-tile bytes sent and received, the
 * broadcast rules (a source sends shared data once; tiles of one shared bus
 * taking the same data split its receive), per-IPU buses, and the phase as
 * its busiest tile. Every expected number is worked out by hand in the
 * comments (tiny: 4 tiles, 4 B/cycle, 2 tiles per shared bus: buses {0,1}, {2,3}).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { busOf, exchangeCost, exchangeTraffic } from '../../sim/cost.js';
import type { Exchange, ExchangeCopy } from '../../sim/program.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { tiny } from '../helpers.js';
import { copyTable } from '../../sim/copies.js';

const ex = (copies: ExchangeCopy[]): Exchange => ({ id: 0, name: 'ex', op: 'op', copies: copyTable(copies) });
const copy = (srcTile: number, srcOffset: number, dstTile: number, bytes: number, dstOffset = 0): ExchangeCopy => ({ srcTile, srcOffset, dstTile, dstOffset, bytes });

describe('exchangeTraffic: broadcast and shared buses', () => {
  const dev = tiny();

  it('a broadcast of 32 bytes from tile 0 to tiles 1, 2, 3: one send; tiles 2 and 3 share their bus', () => {
    const e = ex([copy(0, 64, 1, 32), copy(0, 64, 2, 32, 8), copy(0, 64, 3, 32, 16)]);
    // tile 0 sends 32 once: ceil(32 / 4) = 8 cycles (3 x 32 = 96, 24 cycles, if each copy were a send)
    // tile 1 is the only receiver on bus {0, 1}: charged 32 -> 8
    // tiles 2 and 3 take the same data on bus {2, 3}: charged 32 / 2 = 16 each -> 4
    expect(exchangeTraffic(e, dev)).toEqual([
      { tile: 0, sent: 32, received: 0, receiveCharge: 0, cycles: 8 },
      { tile: 1, sent: 0, received: 32, receiveCharge: 32, cycles: 8 },
      { tile: 2, sent: 0, received: 32, receiveCharge: 16, cycles: 4 },
      { tile: 3, sent: 0, received: 32, receiveCharge: 16, cycles: 4 },
    ]);
    expect(exchangeCost(e, dev)).toEqual({ cycles: 8, tiles: [[0, 8], [1, 8], [2, 4], [3, 4]] });
  });

  it('receivers on one bus share only identical data', () => {
    // tile 0 sends A (40 B) to tile 2, tile 1 sends B (40 B) to tile 3: different data, no sharing:
    // every tile 40 bytes -> 10 cycles
    const e = ex([copy(0, 0, 2, 40), copy(1, 0, 3, 40)]);
    expect(exchangeCost(e, dev)).toEqual({ cycles: 10, tiles: [[0, 10], [1, 10], [2, 10], [3, 10]] });
  });

  it('two broadcasts into one pair: each receiver charged half of each', () => {
    // tile 0 sends A (16 B) to tiles 2, 3; tile 1 sends B (24 B) to tiles 2, 3.
    // senders: tile 0 16 -> 4, tile 1 24 -> 6; receivers: received 40, charged 8 + 12 = 20 -> 5. Phase: 6.
    const e = ex([copy(0, 0, 2, 16), copy(0, 0, 3, 16, 16), copy(1, 8, 2, 24, 16), copy(1, 8, 3, 24)]);
    const t = exchangeTraffic(e, dev);
    expect(t.map((x) => [x.tile, x.sent, x.received, x.receiveCharge, x.cycles])).toEqual([
      [0, 16, 0, 0, 4],
      [1, 24, 0, 0, 6],
      [2, 0, 40, 20, 5],
      [3, 0, 40, 20, 5],
    ]);
    expect(exchangeCost(e, dev).cycles).toBe(6);
  });

  it('the same offset with another length is other data', () => {
    // tile 0: 8 bytes at offset 0 to tile 1 and 12 bytes at offset 0 to tile 2: two sends, 20 bytes -> 5 cycles
    const t = exchangeTraffic(ex([copy(0, 0, 1, 8), copy(0, 0, 2, 12)]), dev);
    expect(t[0]).toEqual({ tile: 0, sent: 20, received: 0, receiveCharge: 0, cycles: 5 });
  });

  it('keeps half-byte charges exact and rounds up once per tile', () => {
    // tiles 0 and 1 each broadcast 6 bytes to tiles 2 and 3: each receiver charged 3 + 3 = 6 -> ceil(6/4) = 2
    // (rounding each 3-byte charge up separately would give 1 + 1 = 2 as well, but 5 broadcasts of 3 bytes from
    // 5 offsets give 7.5 -> 2, where per-message rounding would give 5)
    const e = ex([copy(0, 0, 2, 6), copy(0, 0, 3, 6), copy(1, 0, 2, 6), copy(1, 0, 3, 6)]);
    expect(exchangeTraffic(e, dev).find((x) => x.tile === 2)).toEqual({ tile: 2, sent: 0, received: 12, receiveCharge: 6, cycles: 2 });
    const five = ex([0, 8, 16, 24, 32].flatMap((o) => [copy(0, o, 2, 3), copy(0, o, 3, 3)]));
    expect(exchangeTraffic(five, dev).find((x) => x.tile === 3)).toEqual({ tile: 3, sent: 0, received: 15, receiveCharge: 7.5, cycles: 2 });
  });

  it('with 3 tiles per bus, three receivers of one message are charged a third each', () => {
    const d = tiny({ tilesPerIpu: 6, tilesPerSharedBus: 3 }); // buses {0,1,2}, {3,4,5}
    // tile 3 broadcasts 12 bytes to 0, 1, 2 (one bus: 4 each -> 1 cycle) and to 4 (alone on its bus: 12 -> 3)
    const t = exchangeTraffic(ex([copy(3, 0, 0, 12), copy(3, 0, 1, 12), copy(3, 0, 2, 12), copy(3, 0, 4, 12)]), d);
    expect(t.map((x) => [x.tile, x.sent, x.receiveCharge, x.cycles])).toEqual([
      [0, 0, 4, 1],
      [1, 0, 4, 1],
      [2, 0, 4, 1],
      [3, 12, 0, 3],
      [4, 0, 12, 3],
    ]);
  });

  it('buses never span two IPUs', () => {
    const d = tiny({ ipus: 2, tilesPerIpu: 3 }); // IPU 0: tiles 0-2 (buses {0,1}, {2}); IPU 1: tiles 3-5 ({3,4}, {5})
    expect([0, 1, 2, 3, 4, 5].map((t) => busOf(t, d))).toEqual([0, 0, 1, 2, 2, 3]);
    // tiles 2 and 3 receive the same 8 bytes but sit on different buses: 8 each -> 2 cycles
    const t = exchangeTraffic(ex([copy(0, 0, 2, 8), copy(0, 0, 3, 8)]), d);
    expect(t.map((x) => [x.tile, x.receiveCharge, x.cycles])).toEqual([
      [0, 0, 2],
      [2, 8, 2],
      [3, 8, 2],
    ]);
  });

  it('an all-tile shift on mk2 costs what one pair does: one IPU adds no cap beyond the per-tile rate', () => {
    const mk2 = loadDevicePreset('mk2');
    const n = mk2.tilesPerIpu;
    // every tile sends 400 bytes to the next: 100 cycles, as a single 400-byte copy
    const all = ex(Array.from({ length: n }, (_, t) => copy(t, 0, (t + 1) % n, 400)));
    expect(exchangeCost(all, mk2).cycles).toBe(100);
    expect(exchangeCost(ex([copy(5, 0, 6, 400)]), mk2).cycles).toBe(100);
  });

  it('does not depend on the order of the copies (property)', () => {
    const arb = fc.array(
      fc.record({ src: fc.integer({ min: 0, max: 3 }), dst: fc.integer({ min: 0, max: 3 }), off: fc.constantFrom(0, 8, 16), bytes: fc.constantFrom(1, 3, 8) }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(arb, fc.nat(), (cs, seed) => {
        const copies = cs.map((c, i) => copy(c.src, c.off, c.dst, c.bytes, i * 8));
        const shuffled = [...copies].sort((a, b) => ((a.dstOffset * 7919 + seed) % 13) - ((b.dstOffset * 7919 + seed) % 13));
        expect(exchangeTraffic(ex(shuffled), dev)).toEqual(exchangeTraffic(ex(copies), dev));
      }),
      { numRuns: 200 },
    );
  });

  it('ignores on-tile copies', () => {
    expect(exchangeTraffic(ex([copy(2, 0, 2, 4096)]), dev)).toEqual([]);
  });

  it('costs an exchange alike whatever was costed before it (the sums and stamps are kept between calls; property)', () => {
    // The traffic sums' columns and their stamps outlive a call: an exchange costed after others, on this device
    // or another, must cost what it costs alone.
    const arb = fc.array(
      fc.record({ src: fc.integer({ min: 0, max: 3 }), dst: fc.integer({ min: 0, max: 3 }), off: fc.constantFrom(0, 8, 16), bytes: fc.constantFrom(1, 3, 8) }),
      { maxLength: 12 },
    );
    const mk2 = loadDevicePreset('mk2');
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const ea = ex(a.map((c, i) => copy(c.src, c.off, c.dst, c.bytes, i * 8)));
        const eb = ex(b.map((c, i) => copy(c.src, c.off, c.dst, c.bytes, i * 8)));
        const alone = exchangeTraffic(ea, dev);
        const cost = exchangeCost(ea, dev);
        exchangeTraffic(eb, dev);
        exchangeCost(eb, mk2);
        expect(exchangeTraffic(ea, dev)).toEqual(alone);
        exchangeCost(eb, dev);
        expect(exchangeCost(ea, dev)).toEqual(cost);
      }),
      { numRuns: 200 },
    );
  });
});
