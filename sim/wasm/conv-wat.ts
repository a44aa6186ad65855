/**
 * The convolution kernels' WAT (part of KERNELS_WAT, sim/wasm/kernels-wat.ts):
 * one accumulation loop for the forward, dX and dW blocks
 * (sim/codelets/conv-kernel.ts drives them), lanes across W outputs of one
 * position that share their input values (output channels of one group, or dX
 * channels of one group), each lane one output's accumulator.
 *
 * Rounding (docs/numerics.md): the reference computes acc = fp32(acc + x w)
 * with the product exact in double, so the kernel does the same in f64
 * lanes: the weights are packed as f64 (exact), x is promoted (exact), the
 * product is exact, the f64 sum is the reference's double, and the demote and
 * promote back is its Math.fround. The order is the reference's: the
 * contraction index outermost, then the taps ascending on each axis.
 *
 * conv_acc{W}(t, x, w, o, bias, hasBias): the geometry table at `t`, i32 words:
 *   0 N, 1 xN, 2 oN, 3 oM, 4 C, 5 xC, 6 wC, 7 J0, 8 J1, 9 J2, 10 T0, 11 T1, 12 T2
 * For each of N items (x += xN, o += oN bytes), each output position (j0, j1,
 * j2) row-major (o += 4), and each lane l (its output at o + l oM), the sum
 * over C contraction steps (x += xC, w += wC bytes) of the valid taps: axis a's
 * table Ta holds per position 5 words [count, x, w, dx, dw], an arithmetic
 * run of taps (x in bytes, w in taps of W f64 each). Then + bias[l] (f32)
 * when hasBias, one rounding to f32.
 */

const get = (x: string) => `(local.get $${x})`;
const word = (base: string, i: number) => `(i32.load offset=${4 * i} ${get(base)})`;

/** Weights as f64 lanes: dst[((t K + k) W + l)] = w[l lane + t ts + k] (byte strides lane, ts; K taps). */
const CONV_PACK = `
  (func (export "conv_pack") (param $w i32) (param $lane i32) (param $ts i32) (param $T i32) (param $K i32) (param $W i32) (param $dst i32)
    (local $t i32) (local $k i32) (local $l i32) (local $src i32)
    (block $td (loop $tl
      (br_if $td (i32.ge_u ${get('t')} ${get('T')}))
      (local.set $k (i32.const 0))
      (block $kd (loop $kl
        (br_if $kd (i32.ge_u ${get('k')} ${get('K')}))
        (local.set $src (i32.add (i32.add ${get('w')} (i32.mul ${get('t')} ${get('ts')})) (i32.shl ${get('k')} (i32.const 2))))
        (local.set $l (i32.const 0))
        (block $ld (loop $ll
          (br_if $ld (i32.ge_u ${get('l')} ${get('W')}))
          (f64.store ${get('dst')} (f64.promote_f32 (f32.load ${get('src')})))
          (local.set $src (i32.add ${get('src')} ${get('lane')}))
          (local.set $dst (i32.add ${get('dst')} (i32.const 8)))
          (local.set $l (i32.add ${get('l')} (i32.const 1))) (br $ll)))
        (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $kl)))
      (local.set $t (i32.add ${get('t')} (i32.const 1))) (br $tl))))`;

/** `(block (loop ...))` counting `n` down to zero. */
const countdown = (n: string, body: string) => `(block $${n}d (loop $${n}l
      (br_if $${n}d (i32.eqz ${get(n)}))
      ${body}
      (local.set $${n} (i32.sub ${get(n)} (i32.const 1))) (br $${n}l)))`;

/** Index loop j from 0 to `end`. */
const upto = (j: string, end: string, body: string) => `(local.set $${j} (i32.const 0))
    (block $${j}d (loop $${j}l
      (br_if $${j}d (i32.ge_u ${get(j)} ${get(end)}))
      ${body}
      (local.set $${j} (i32.add ${get(j)} (i32.const 1))) (br $${j}l)))`;

function convAcc(W: 1 | 4 | 8): string {
  const shift = Math.log2(8 * W);
  const nv = W / 2;
  const accs = W === 1 ? [] : Array.from({ length: nv }, (_, v) => `a${v}`);
  const locals = W === 1 ? '(local $s f64)' : ['xv', ...accs].map((a) => `(local $${a} v128)`).join(' ');
  const zero = W === 1 ? '(local.set $s (f64.const 0))' : accs.map((a) => `(local.set $${a} (v128.const i64x2 0 0))`).join(' ');
  const round64 = (v: string) => (W === 1 ? `(f64.promote_f32 (f32.demote_f64 ${v}))` : `(f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero ${v}))`);
  const mac =
    W === 1
      ? `(local.set $s ${round64(`(f64.add ${get('s')} (f64.mul (f64.promote_f32 (f32.load ${get('xp')})) (f64.load ${get('wp')})))`)})`
      : `(local.set $xv (f64x2.splat (f64.promote_f32 (f32.load ${get('xp')}))))
        ${accs.map((a, v) => `(local.set $${a} ${round64(`(f64x2.add ${get(a)} (f64x2.mul ${get('xv')} (v128.load offset=${16 * v} ${get('wp')})))`)})`).join('\n        ')}`;
  const lane = (l: number) => (W === 1 ? get('s') : `(f64x2.extract_lane ${l % 2} ${get(accs[l >> 1])})`);
  const stores = Array.from({ length: W }, (_, l) => {
    const v = lane(l);
    return `(f32.store ${get('ol')} (f32.demote_f64 (select (f64.add ${v} (f64.promote_f32 (f32.load offset=${4 * l} ${get('bias')}))) ${v} ${get('hasBias')})))
        (local.set $ol (i32.add ${get('ol')} ${get('oM')}))`;
  }).join('\n        ');
  return `
  (func (export "conv_acc${W}") (param $t i32) (param $x i32) (param $w i32) (param $o i32) (param $bias i32) (param $hasBias i32)
    (local $N i32) (local $xN i32) (local $oN i32) (local $oM i32) (local $C i32) (local $xC i32) (local $wC i32)
    (local $J0 i32) (local $J1 i32) (local $J2 i32) (local $T0 i32) (local $T1 i32) (local $T2 i32)
    (local $nn i32) (local $j0 i32) (local $j1 i32) (local $j2 i32) (local $e0 i32) (local $e1 i32) (local $e2 i32)
    (local $xn i32) (local $op i32) (local $ol i32) (local $c i32) (local $xc i32) (local $wc i32)
    (local $n0 i32) (local $n1 i32) (local $n2 i32) (local $xa i32) (local $wa i32) (local $xb i32) (local $wb i32)
    (local $xp i32) (local $wp i32) (local $dx2 i32) (local $dw2 i32) (local $k2 i32) ${locals}
    (local.set $N ${word('t', 0)}) (local.set $xN ${word('t', 1)}) (local.set $oN ${word('t', 2)}) (local.set $oM ${word('t', 3)})
    (local.set $C ${word('t', 4)}) (local.set $xC ${word('t', 5)}) (local.set $wC ${word('t', 6)})
    (local.set $J0 ${word('t', 7)}) (local.set $J1 ${word('t', 8)}) (local.set $J2 ${word('t', 9)})
    (local.set $T0 ${word('t', 10)}) (local.set $T1 ${word('t', 11)}) (local.set $T2 ${word('t', 12)})
    ${upto(
      'nn',
      'N',
      `(local.set $xn (i32.add ${get('x')} (i32.mul ${get('nn')} ${get('xN')})))
      (local.set $op (i32.add ${get('o')} (i32.mul ${get('nn')} ${get('oN')})))
      ${upto(
        'j0',
        'J0',
        `(local.set $e0 (i32.add ${get('T0')} (i32.mul ${get('j0')} (i32.const 20))))
      ${upto(
        'j1',
        'J1',
        `(local.set $e1 (i32.add ${get('T1')} (i32.mul ${get('j1')} (i32.const 20))))
      ${upto(
        'j2',
        'J2',
        `(local.set $e2 (i32.add ${get('T2')} (i32.mul ${get('j2')} (i32.const 20))))
        (local.set $k2 ${word('e2', 0)}) (local.set $dx2 ${word('e2', 3)}) (local.set $dw2 (i32.shl ${word('e2', 4)} (i32.const ${shift})))
        ${zero}
        (local.set $xc ${get('xn')}) (local.set $wc ${get('w')}) (local.set $c ${get('C')})
        ${countdown(
          'c',
          `(local.set $xa (i32.add ${get('xc')} ${word('e0', 1)}))
        (local.set $wa (i32.add ${get('wc')} (i32.shl ${word('e0', 2)} (i32.const ${shift}))))
        (local.set $n0 ${word('e0', 0)})
        ${countdown(
          'n0',
          `(local.set $xb (i32.add ${get('xa')} ${word('e1', 1)}))
        (local.set $wb (i32.add ${get('wa')} (i32.shl ${word('e1', 2)} (i32.const ${shift}))))
        (local.set $n1 ${word('e1', 0)})
        ${countdown(
          'n1',
          `(local.set $xp (i32.add ${get('xb')} ${word('e2', 1)}))
        (local.set $wp (i32.add ${get('wb')} (i32.shl ${word('e2', 2)} (i32.const ${shift}))))
        (local.set $n2 ${get('k2')})
        ${countdown(
          'n2',
          `${mac}
        (local.set $xp (i32.add ${get('xp')} ${get('dx2')})) (local.set $wp (i32.add ${get('wp')} ${get('dw2')}))`,
        )}
        (local.set $xb (i32.add ${get('xb')} ${word('e1', 3)})) (local.set $wb (i32.add ${get('wb')} (i32.shl ${word('e1', 4)} (i32.const ${shift}))))`,
        )}
        (local.set $xa (i32.add ${get('xa')} ${word('e0', 3)})) (local.set $wa (i32.add ${get('wa')} (i32.shl ${word('e0', 4)} (i32.const ${shift}))))`,
        )}
        (local.set $xc (i32.add ${get('xc')} ${get('xC')})) (local.set $wc (i32.add ${get('wc')} ${get('wC')}))`,
        )}
        (local.set $ol ${get('op')})
        ${stores}
        (local.set $op (i32.add ${get('op')} (i32.const 4)))`,
      )}`,
      )}`,
      )}`,
    )})`;
}

export const CONV_WAT = [CONV_PACK, convAcc(8), convAcc(4), convAcc(1)].join('\n');
