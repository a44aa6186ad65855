/**
 * The WebAssembly SIMD kernels, as WAT text (assembled by sim/wasm/kernels.ts
 * with wabt: at build time into dist/sim/wasm/kernels.wasm, or at load time
 * when running from the TypeScript sources). Generated from templates here so
 * each op's loop is written once.
 *
 * They run over tile memory itself (the imported shared memory); every
 * pointer is a byte address in it, every count is in elements. The host's
 * Math.exp and Math.log are imported (softmax), and random fills run them
 * over a small memory of their own (kernels.ts, hostKernels).
 *
 * Rounding (docs/numerics.md): every arithmetic step is the reference's IEEE
 * operation, fp32 where it rounds to fp32 and f64 where it keeps a double,
 * in lanes or scalars alike, so results do not depend on which lanes a value
 * falls in; a sum keeps the reference's order (one chain per output, lanes
 * only across outputs). The matmul accumulates each output in ascending
 * contraction order, product rounded to fp32, then the sum: exactly the
 * TypeScript reference (sim/codelets/amp.ts).
 */

import { CONV_WAT } from './conv-wat.js';

/** Max pages of the imported memory: 4 GiB, wasm32's limit. */
export const MAX_PAGES = 65536;

const get = (x: string) => `(local.get $${x})`;

/** Accumulators of the 4 x 8 matmul block: row r, column half h. */
const acc = (r: number, h: number) => `c${r}${h}`;

/**
 * out[R, 8] = A[R rows, k] x B[k, 8 columns] for R = 1 to 4 ($block1x8 ..
 * $block4x8): A read as scalars through its row and column strides (bytes),
 * B rows `ldb` bytes apart, out rows `ldo`. Each output element is the same
 * chain whatever R (one fp32 multiply and add per k, in k order): the blocks
 * under 4 rows only serve a matrix's last rows, at the cost per row of the B
 * loads shared by fewer rows, instead of a row at a time.
 */
function blockRx8(R: number): string {
  const rows = Array.from({ length: R }, (_, r) => r);
  const locals = rows.flatMap((r) => [acc(r, 0), acc(r, 1)]).map((c) => `(local $${c} v128)`).join(' ');
  const mac = rows
    .map((r) => {
      const x = `(f32x4.splat (f32.load ${get(`a${r}`)}))`;
      return `(local.set $x ${x})
      (local.set $${acc(r, 0)} (f32x4.add ${get(acc(r, 0))} (f32x4.mul ${get('x')} ${get('b0')})))
      (local.set $${acc(r, 1)} (f32x4.add ${get(acc(r, 1))} (f32x4.mul ${get('x')} ${get('b1')})))`;
    })
    .join('\n      ');
  const stores = rows
    .map(
      (r) => `(v128.store ${get('o')} ${get(acc(r, 0))}) (v128.store offset=16 ${get('o')} ${get(acc(r, 1))}) (local.set $o (i32.add ${get('o')} ${get('ldo')}))`,
    )
    .join('\n    ');
  const rowLocals = rows.slice(1).map((r) => `(local $a${r} i32)`).join(' ');
  const rowStarts = rows.slice(1).map((r) => `(local.set $a${r} (i32.add ${get(`a${r - 1}`)} ${get('aRow')}))`).join('\n    ');
  const rowSteps = rows.map((r) => `(local.set $a${r} (i32.add ${get(`a${r}`)} ${get('aCol')}))`).join('\n      ');
  return `
  (func $block${R}x8 (param $a0 i32) (param $aRow i32) (param $aCol i32) (param $b i32) (param $ldb i32) (param $k i32) (param $o i32) (param $ldo i32)
    ${rowLocals} (local $i i32) (local $x v128) (local $b0 v128) (local $b1 v128) ${locals}
    ${rowStarts}
    (block $done (loop $next
      (br_if $done (i32.ge_u ${get('i')} ${get('k')}))
      (local.set $b0 (v128.load ${get('b')}))
      (local.set $b1 (v128.load offset=16 ${get('b')}))
      ${mac}
      ${rowSteps}
      (local.set $b (i32.add ${get('b')} ${get('ldb')}))
      (local.set $i (i32.add ${get('i')} (i32.const 1)))
      (br $next)))
    ${stores})`;
}

/** One output row from column j0 on: 4 columns at a time, then single columns. */
const ROW_TAIL = `
  (func $rowTail (param $a i32) (param $aCol i32) (param $b i32) (param $ldb i32) (param $k i32) (param $o i32) (param $j i32) (param $n i32)
    (local $ap i32) (local $bp i32) (local $i i32) (local $v v128) (local $s f32)
    (block $v4done (loop $v4
      (br_if $v4done (i32.gt_u (i32.add ${get('j')} (i32.const 4)) ${get('n')}))
      (local.set $ap ${get('a')}) (local.set $bp (i32.add ${get('b')} (i32.shl ${get('j')} (i32.const 2))))
      (local.set $v (v128.const i32x4 0 0 0 0)) (local.set $i (i32.const 0))
      (block $d (loop $l
        (br_if $d (i32.ge_u ${get('i')} ${get('k')}))
        (local.set $v (f32x4.add ${get('v')} (f32x4.mul (f32x4.splat (f32.load ${get('ap')})) (v128.load ${get('bp')}))))
        (local.set $ap (i32.add ${get('ap')} ${get('aCol')})) (local.set $bp (i32.add ${get('bp')} ${get('ldb')}))
        (local.set $i (i32.add ${get('i')} (i32.const 1))) (br $l)))
      (v128.store (i32.add ${get('o')} (i32.shl ${get('j')} (i32.const 2))) ${get('v')})
      (local.set $j (i32.add ${get('j')} (i32.const 4))) (br $v4)))
    (block $sdone (loop $s1
      (br_if $sdone (i32.ge_u ${get('j')} ${get('n')}))
      (local.set $ap ${get('a')}) (local.set $bp (i32.add ${get('b')} (i32.shl ${get('j')} (i32.const 2))))
      (local.set $s (f32.const 0)) (local.set $i (i32.const 0))
      (block $d (loop $l
        (br_if $d (i32.ge_u ${get('i')} ${get('k')}))
        (local.set $s (f32.add ${get('s')} (f32.mul (f32.load ${get('ap')}) (f32.load ${get('bp')}))))
        (local.set $ap (i32.add ${get('ap')} ${get('aCol')})) (local.set $bp (i32.add ${get('bp')} ${get('ldb')}))
        (local.set $i (i32.add ${get('i')} (i32.const 1))) (br $l)))
      (f32.store (i32.add ${get('o')} (i32.shl ${get('j')} (i32.const 2))) ${get('s')})
      (local.set $j (i32.add ${get('j')} (i32.const 1))) (br $s1))))`;

/**
 * out[rows, n] = op(A)[rows, k] x B[k, n], B row-major and out contiguous;
 * A read through byte strides (aRow, aCol), so either layout of A works.
 * Blocks of 4 rows x 8 columns (the last 1 to 3 rows: blocks of that many
 * rows), then each row's last n mod 8 columns.
 */
const MATMUL = `
  (func (export "matmul_f32") (param $a i32) (param $b i32) (param $o i32) (param $rows i32) (param $k i32) (param $n i32) (param $aRow i32) (param $aCol i32)
    (local $r i32) (local $j i32) (local $ld i32) (local $ar i32) (local $or i32) (local $q i32)
    (local.set $ld (i32.shl ${get('n')} (i32.const 2)))
    (block $rdone (loop $rl
      (br_if $rdone (i32.gt_u (i32.add ${get('r')} (i32.const 4)) ${get('rows')}))
      (local.set $ar (i32.add ${get('a')} (i32.mul ${get('r')} ${get('aRow')})))
      (local.set $or (i32.add ${get('o')} (i32.mul ${get('r')} ${get('ld')})))
      (local.set $j (i32.const 0))
      (block $jdone (loop $jl
        (br_if $jdone (i32.gt_u (i32.add ${get('j')} (i32.const 8)) ${get('n')}))
        (call $block4x8 ${get('ar')} ${get('aRow')} ${get('aCol')} (i32.add ${get('b')} (i32.shl ${get('j')} (i32.const 2))) ${get('ld')} ${get('k')}
          (i32.add ${get('or')} (i32.shl ${get('j')} (i32.const 2))) ${get('ld')})
        (local.set $j (i32.add ${get('j')} (i32.const 8))) (br $jl)))
      (local.set $q (i32.const 0))
      (block $qdone (loop $ql
        (br_if $qdone (i32.ge_u ${get('q')} (i32.const 4)))
        (call $rowTail (i32.add ${get('ar')} (i32.mul ${get('q')} ${get('aRow')})) ${get('aCol')} ${get('b')} ${get('ld')} ${get('k')}
          (i32.add ${get('or')} (i32.mul ${get('q')} ${get('ld')})) ${get('j')} ${get('n')})
        (local.set $q (i32.add ${get('q')} (i32.const 1))) (br $ql)))
      (local.set $r (i32.add ${get('r')} (i32.const 4))) (br $rl)))
    ;; The last rows (1 to 3): blocks of that many rows, then each row's last columns.
    (local.set $q (i32.sub ${get('rows')} ${get('r')}))
    (if (i32.gt_u ${get('q')} (i32.const 0)) (then
      (local.set $ar (i32.add ${get('a')} (i32.mul ${get('r')} ${get('aRow')})))
      (local.set $or (i32.add ${get('o')} (i32.mul ${get('r')} ${get('ld')})))
      (local.set $j (i32.const 0))
      (block $jdone (loop $jl
        (br_if $jdone (i32.gt_u (i32.add ${get('j')} (i32.const 8)) ${get('n')}))
        ${[1, 2, 3]
          .map(
            (R) => `(if (i32.eq ${get('q')} (i32.const ${R})) (then (call $block${R}x8 ${get('ar')} ${get('aRow')} ${get('aCol')} (i32.add ${get('b')} (i32.shl ${get('j')} (i32.const 2))) ${get('ld')} ${get('k')}
          (i32.add ${get('or')} (i32.shl ${get('j')} (i32.const 2))) ${get('ld')})))`,
          )
          .join('\n        ')}
        (local.set $j (i32.add ${get('j')} (i32.const 8))) (br $jl)))
      (block $tdone (loop $tl
        (br_if $tdone (i32.ge_u ${get('r')} ${get('rows')}))
        (call $rowTail (i32.add ${get('a')} (i32.mul ${get('r')} ${get('aRow')})) ${get('aCol')} ${get('b')} ${get('ld')} ${get('k')}
          (i32.add ${get('o')} (i32.mul ${get('r')} ${get('ld')})) ${get('j')} ${get('n')})
        (local.set $r (i32.add ${get('r')} (i32.const 1))) (br $tl))))))`;

/** dst[c, r] = src[r, c] for a row-major [rows, cols] src (packs a transposed B for the matmul). */
const TRANSPOSE = `
  (func (export "transpose_f32") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $s i32) (local $d i32) (local $ld i32)
    (local.set $ld (i32.shl ${get('rows')} (i32.const 2)))
    (block $rd (loop $rl
      (br_if $rd (i32.ge_u ${get('r')} ${get('rows')}))
      (local.set $d (i32.add ${get('dst')} (i32.shl ${get('r')} (i32.const 2))))
      (local.set $c (i32.const 0))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_u ${get('c')} ${get('cols')}))
        (f32.store ${get('d')} (f32.load ${get('src')}))
        (local.set $src (i32.add ${get('src')} (i32.const 4))) (local.set $d (i32.add ${get('d')} ${get('ld')}))
        (local.set $c (i32.add ${get('c')} (i32.const 1))) (br $cl)))
      (local.set $r (i32.add ${get('r')} (i32.const 1))) (br $rl))))`;

/**
 * A lane-wise loop over n elements: 4 at a time, then the tail one at a time.
 * `vec` / `sca` build the result from loads of each input at the offset.
 */
function elementwise(name: string, inputs: string[], vec: ((x: string[]) => string) | undefined, sca: (x: string[]) => string, scalarInput?: string, type: 'f32' | 'i32' = 'f32'): string {
  const params = [...inputs, 'o'].map((p) => `(param $${p} i32)`).join(' ');
  const at = (p: string) => `(i32.add ${get(p)} ${get('i')})`;
  const vload = (p: string) => (p === scalarInput ? get('sv') : `(v128.load ${at(p)})`);
  const sload = (p: string) => (p === scalarInput ? get('ss') : `(${type}.load ${at(p)})`);
  const scalar = scalarInput ? `(local.set $ss (${type}.load ${get(scalarInput)})) (local.set $sv (${type}x4.splat ${get('ss')}))` : '';
  vec ??= () => '';
  return `
  (func (export "${name}") ${params} (param $n i32)
    (local $i i32) (local $nb i32) (local $nv i32) (local $ss ${type}) (local $sv v128)
    ${scalar}
    (local.set $nb (i32.shl ${get('n')} (i32.const 2)))
    (local.set $nv ${vec(inputs) ? `(i32.and ${get('nb')} (i32.const -16))` : '(i32.const 0)'})
    ${
      vec(inputs)
        ? `(block $vd (loop $vl
      (br_if $vd (i32.ge_u ${get('i')} ${get('nv')}))
      (v128.store ${at('o')} ${vec(inputs.map(vload))})
      (local.set $i (i32.add ${get('i')} (i32.const 16))) (br $vl)))`
        : ''
    }
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('i')} ${get('nb')}))
      (${type}.store ${at('o')} ${sca(inputs.map(sload))})
      (local.set $i (i32.add ${get('i')} (i32.const 4))) (br $sl))))`;
}

/**
 * The binary ops: vector-vector, vector-scalar (b one element, a bias of
 * length 1 or a scalar) and scalar-vector (a one element: a broadcast row of a).
 */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

const binaries = BINARY_OPS.flatMap((op) => [
  elementwise(`${op}_vv`, ['a', 'b'], ([a, b]) => `(f32x4.${op} ${a} ${b})`, ([a, b]) => `(f32.${op} ${a} ${b})`),
  elementwise(`${op}_vs`, ['a', 'b'], ([a, b]) => `(f32x4.${op} ${a} ${b})`, ([a, b]) => `(f32.${op} ${a} ${b})`, 'b'),
  elementwise(`${op}_sv`, ['a', 'b'], ([a, b]) => `(f32x4.${op} ${a} ${b})`, ([a, b]) => `(f32.${op} ${a} ${b})`, 'a'),
]);

/**
 * int32 Add, Sub, Mul as the reference computes them: the operation in
 * double, stored to an Int32Array (ToInt32: modulo 2^32). A sum or
 * difference is exact in double, so it is i32.add / i32.sub (4 lanes). A
 * product may round in double (past 2^53), so it is the f64 product truncated
 * through i64 and wrapped. (int32 Div stays TypeScript: the same scheme,
 * truncating a double quotient, measured no faster than the reference.)
 */
export const INT32_OPS = ['add', 'sub', 'mul'] as const;
export type Int32Op = (typeof INT32_OPS)[number];
const I32_OPS: Record<Int32Op, { vec?: (a: string, b: string) => string; sca: (a: string, b: string) => string }> = {
  add: { vec: (a, b) => `(i32x4.add ${a} ${b})`, sca: (a, b) => `(i32.add ${a} ${b})` },
  sub: { vec: (a, b) => `(i32x4.sub ${a} ${b})`, sca: (a, b) => `(i32.sub ${a} ${b})` },
  mul: { sca: (a, b) => `(i32.wrap_i64 (i64.trunc_sat_f64_s (f64.mul (f64.convert_i32_s ${a}) (f64.convert_i32_s ${b}))))` },
};

const int32Binaries = INT32_OPS.flatMap((op) => {
  const { vec, sca } = I32_OPS[op];
  const v = vec ? ([a, b]: string[]) => vec(a, b) : undefined;
  const f = ([a, b]: string[]) => sca(a, b);
  return [
    elementwise(`${op}_i32_vv`, ['a', 'b'], v, f, undefined, 'i32'),
    elementwise(`${op}_i32_vs`, ['a', 'b'], v, f, 'b', 'i32'),
    elementwise(`${op}_i32_sv`, ['a', 'b'], v, f, 'a', 'i32'),
  ];
});

/** Unary ops whose fp32 result is one IEEE operation (or a select), as the TypeScript codelets compute them. */
export const UNARY_OPS = ['neg', 'abs', 'sqrt', 'relu'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

const zero = '(v128.const i32x4 0 0 0 0)';
const unaries = [
  elementwise('neg', ['x'], ([x]) => `(f32x4.neg ${x})`, ([x]) => `(f32.neg ${x})`),
  elementwise('abs', ['x'], ([x]) => `(f32x4.abs ${x})`, ([x]) => `(f32.abs ${x})`),
  elementwise('sqrt', ['x'], ([x]) => `(f32x4.sqrt ${x})`, ([x]) => `(f32.sqrt ${x})`),
  // x > 0 ? x : 0 (NaN and -0 give +0, as in JavaScript): the lanes where x > 0, others all-zero bits.
  elementwise('relu', ['x'], ([x]) => `(v128.and ${x} (f32x4.gt ${x} ${zero}))`, ([x]) => `(select ${x} (f32.const 0) (f32.gt ${x} (f32.const 0)))`),
  // y > 0 ? dy : 0.
  elementwise('relu_grad', ['dy', 'y'], ([dy, y]) => `(v128.and ${dy} (f32x4.gt ${y} ${zero}))`, ([dy, y]) => `(select ${dy} (f32.const 0) (f32.gt ${y} (f32.const 0)))`),
];

/**
 * out[i] = ((0 + p_0[off + i]) + p_1[off + i]) + ... for `np` partials whose
 * addresses are an i32 array at `ptrs` (MatMulReduce: the parts in order).
 */
const SUM_PARTS = `
  (func (export "sum_parts") (param $ptrs i32) (param $np i32) (param $off i32) (param $o i32) (param $n i32)
    (local $i i32) (local $nb i32) (local $nv i32) (local $p i32) (local $v v128) (local $s f32)
    (local.set $nb (i32.shl ${get('n')} (i32.const 2)))
    (local.set $nv (i32.and ${get('nb')} (i32.const -16)))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u ${get('i')} ${get('nv')}))
      (local.set $v ${zero}) (local.set $p (i32.const 0))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_u ${get('p')} ${get('np')}))
        (local.set $v (f32x4.add ${get('v')} (v128.load (i32.add (i32.add (i32.load (i32.add ${get('ptrs')} (i32.shl ${get('p')} (i32.const 2)))) ${get('off')}) ${get('i')}))))
        (local.set $p (i32.add ${get('p')} (i32.const 1))) (br $pl)))
      (v128.store (i32.add ${get('o')} ${get('i')}) ${get('v')})
      (local.set $i (i32.add ${get('i')} (i32.const 16))) (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('i')} ${get('nb')}))
      (local.set $s (f32.const 0)) (local.set $p (i32.const 0))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_u ${get('p')} ${get('np')}))
        (local.set $s (f32.add ${get('s')} (f32.load (i32.add (i32.add (i32.load (i32.add ${get('ptrs')} (i32.shl ${get('p')} (i32.const 2)))) ${get('off')}) ${get('i')}))))
        (local.set $p (i32.add ${get('p')} (i32.const 1))) (br $pl)))
      (f32.store (i32.add ${get('o')} ${get('i')}) ${get('s')})
      (local.set $i (i32.add ${get('i')} (i32.const 4))) (br $sl))))`;

/**
 * An exchange's copies (sim/exchange.ts): `n` records of three u32 at `t`,
 * (source address, destination address, bytes), run in order, each one
 * memory.copy (a memmove: the host's, far faster than a TypedArray
 * copyWithin over a SharedArrayBuffer, which copies with relaxed atomics).
 * A v128 load/store loop per record was tried: no faster in the matmul
 * bench (within noise, if anything slower), so memory.copy stays.
 */
const COPIES = `
  (func (export "copies") (param $t i32) (param $n i32) (local $e i32)
    (local.set $e (i32.add ${get('t')} (i32.mul ${get('n')} (i32.const 12))))
    (block $done (loop $next
      (br_if $done (i32.ge_u ${get('t')} ${get('e')}))
      (memory.copy (i32.load offset=4 ${get('t')}) (i32.load ${get('t')}) (i32.load offset=8 ${get('t')}))
      (local.set $t (i32.add ${get('t')} (i32.const 12))) (br $next))))`;


// ---------------------------------------------------------------------------
// Softmax and the norms (sim/codelets/softmax.ts, norm.ts, nn-util.ts).
//
// Each does the reference's operations in the reference's order: a sum that
// the reference accumulates in fp32 from +0 is one serial f32 chain here too
// (never split into lanes), and a step the reference computes in double
// (an fp32 value plus a double eps or scale, x - m fed to Math.exp) is an f64
// operation here. Lanes only go across independent elements (outputs, or
// columns each with its own chain). exp and log are the host's Math.exp and
// Math.log, imported: the same function on the same double gives the same bits.

/**
 * One softmax group: n elements `xs` bytes apart from x (the axis, stride
 * inner). m = max; s = sum of fp32(exp(x_k - m)) (the difference in double);
 * outputs k in [k0, k1) at o, `os` bytes apart: log-softmax (x_k - m) - fp32(log s),
 * softmax fp32(exp(fp32(x_k - m))) / s. The sum's exps are kept in scratch t
 * (n floats) and reused for an output whose fp32 difference is the double one
 * (the same argument, so the same exp): most of them.
 */
const SOFTMAX = `
  (func (export "softmax_group") (param $x i32) (param $xs i32) (param $n i32) (param $o i32) (param $os i32) (param $k0 i32) (param $k1 i32) (param $log i32) (param $t i32)
    (local $m f32) (local $s f32) (local $ls f32) (local $p i32) (local $q i32) (local $k i32) (local $mv v128) (local $v f32) (local $d f32) (local $dd f64) (local $e f32)
    (local.set $m (f32.const -inf))
    (local.set $p ${get('x')})
    (if (i32.eq ${get('xs')} (i32.const 4)) (then
      (local.set $mv (f32x4.splat (f32.const -inf)))
      (block $vd (loop $vl
        (br_if $vd (i32.gt_u (i32.add ${get('k')} (i32.const 4)) ${get('n')}))
        (local.set $mv (f32x4.max ${get('mv')} (v128.load ${get('p')})))
        (local.set $p (i32.add ${get('p')} (i32.const 16))) (local.set $k (i32.add ${get('k')} (i32.const 4))) (br $vl)))
      (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 ${get('mv')}) (f32x4.extract_lane 1 ${get('mv')}))
                             (f32.max (f32x4.extract_lane 2 ${get('mv')}) (f32x4.extract_lane 3 ${get('mv')}))))))
    (block $md (loop $ml
      (br_if $md (i32.ge_u ${get('k')} ${get('n')}))
      (local.set $m (f32.max ${get('m')} (f32.load ${get('p')})))
      (local.set $p (i32.add ${get('p')} ${get('xs')})) (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $ml)))
    (local.set $p ${get('x')}) (local.set $q ${get('t')}) (local.set $k (i32.const 0))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('k')} ${get('n')}))
      (local.set $e (f32.demote_f64 (call $exp (f64.sub (f64.promote_f32 (f32.load ${get('p')})) (f64.promote_f32 ${get('m')})))))
      (local.set $s (f32.add ${get('s')} ${get('e')}))
      (f32.store ${get('q')} ${get('e')})
      (local.set $p (i32.add ${get('p')} ${get('xs')})) (local.set $q (i32.add ${get('q')} (i32.const 4))) (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $sl)))
    (local.set $ls (f32.demote_f64 (call $log (f64.promote_f32 ${get('s')}))))
    (local.set $p (i32.add ${get('x')} (i32.mul ${get('k0')} ${get('xs')})))
    (local.set $q (i32.add ${get('t')} (i32.shl ${get('k0')} (i32.const 2))))
    (local.set $k ${get('k0')})
    (block $od (loop $ol
      (br_if $od (i32.ge_u ${get('k')} ${get('k1')}))
      (local.set $v (f32.load ${get('p')}))
      (local.set $d (f32.sub ${get('v')} ${get('m')}))
      (if ${get('log')}
        (then (f32.store ${get('o')} (f32.sub ${get('d')} ${get('ls')})))
        (else
          (local.set $dd (f64.sub (f64.promote_f32 ${get('v')}) (f64.promote_f32 ${get('m')})))
          (if (f64.eq (f64.promote_f32 ${get('d')}) ${get('dd')})
            (then (local.set $e (f32.load ${get('q')})))
            (else (local.set $e (f32.demote_f64 (call $exp (f64.promote_f32 ${get('d')}))))))
          (f32.store ${get('o')} (f32.div ${get('e')} ${get('s')}))))
      (local.set $p (i32.add ${get('p')} ${get('xs')})) (local.set $q (i32.add ${get('q')} (i32.const 4)))
      (local.set $o (i32.add ${get('o')} ${get('os')})) (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $ol))))

  (func (export "softmax_grad_group") (param $dy i32) (param $y i32) (param $xs i32) (param $n i32) (param $o i32) (param $os i32) (param $k0 i32) (param $k1 i32) (param $log i32)
    (local $s f32) (local $p i32) (local $k i32) (local $a f32) (local $b f32) (local $sv v128)
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('k')} ${get('n')}))
      (local.set $a (f32.load (i32.add ${get('dy')} ${get('p')})))
      (local.set $s (f32.add ${get('s')} (if (result f32) ${get('log')} (then ${get('a')}) (else (f32.mul ${get('a')} (f32.load (i32.add ${get('y')} ${get('p')})))))))
      (local.set $p (i32.add ${get('p')} ${get('xs')})) (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $sl)))
    (local.set $p (i32.mul ${get('k0')} ${get('xs')}))
    (local.set $k ${get('k0')})
    (if (i32.and (i32.eqz ${get('log')}) (i32.and (i32.eq ${get('xs')} (i32.const 4)) (i32.eq ${get('os')} (i32.const 4)))) (then
      (local.set $sv (f32x4.splat ${get('s')}))
      (block $vd (loop $vl
        (br_if $vd (i32.gt_u (i32.add ${get('k')} (i32.const 4)) ${get('k1')}))
        (v128.store ${get('o')} (f32x4.mul (v128.load (i32.add ${get('y')} ${get('p')})) (f32x4.sub (v128.load (i32.add ${get('dy')} ${get('p')})) ${get('sv')})))
        (local.set $p (i32.add ${get('p')} (i32.const 16))) (local.set $o (i32.add ${get('o')} (i32.const 16))) (local.set $k (i32.add ${get('k')} (i32.const 4))) (br $vl)))))
    (block $od (loop $ol
      (br_if $od (i32.ge_u ${get('k')} ${get('k1')}))
      (local.set $a (f32.load (i32.add ${get('dy')} ${get('p')})))
      (local.set $b (f32.load (i32.add ${get('y')} ${get('p')})))
      (f32.store ${get('o')} (if (result f32) ${get('log')}
        (then (f32.demote_f64 (f64.sub (f64.promote_f32 ${get('a')}) (f64.mul (f64.promote_f32 (f32.demote_f64 (call $exp (f64.promote_f32 ${get('b')})))) (f64.promote_f32 ${get('s')})))))
        (else (f32.mul ${get('b')} (f32.sub ${get('a')} ${get('s')})))))
      (local.set $p (i32.add ${get('p')} ${get('xs')})) (local.set $o (i32.add ${get('o')} ${get('os')})) (local.set $k (i32.add ${get('k')} (i32.const 1))) (br $ol))))`;

/** A loop over k in [k0, k1): 4 lanes at a time (`vec` at byte offset $p = 4 k), then single elements (`sca`). */
function lanes(vec: string, sca: string): string {
  return `
    (local.set $p (i32.shl ${get('k0')} (i32.const 2)))
    (local.set $e (i32.shl ${get('k1')} (i32.const 2)))
    (block $vd (loop $vl
      (br_if $vd (i32.gt_u (i32.add ${get('p')} (i32.const 16)) ${get('e')}))
      ${vec}
      (local.set $p (i32.add ${get('p')} (i32.const 16))) (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('p')} ${get('e')}))
      ${sca}
      (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $sl)))`;
}

/**
 * LayerNorm row statistics into the globals $mean and $rstd, as rowStats:
 * mean = fp32(fp32 sum / n), variance = fp32(fp32 sum of fp32 squares of
 * fp32(x - mean) / n), rstd = fp32(1 / fp32(sqrt(fp32(variance + eps)))), eps a double.
 */
const LN_STATS = `
  (global $mean (mut f32) (f32.const 0))
  (global $rstd (mut f32) (f32.const 0))
  (func $lnStats (param $x i32) (param $n i32) (param $eps f64)
    (local $s f32) (local $v f32) (local $d f32) (local $p i32) (local $e i32) (local $mean f32)
    (local.set $e (i32.add ${get('x')} (i32.shl ${get('n')} (i32.const 2))))
    (local.set $p ${get('x')})
    (block $d1 (loop $l1
      (br_if $d1 (i32.ge_u ${get('p')} ${get('e')}))
      (local.set $s (f32.add ${get('s')} (f32.load ${get('p')})))
      (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $l1)))
    (local.set $mean (f32.demote_f64 (f64.div (f64.promote_f32 ${get('s')}) (f64.convert_i32_u ${get('n')}))))
    (local.set $p ${get('x')})
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_u ${get('p')} ${get('e')}))
      (local.set $d (f32.sub (f32.load ${get('p')}) ${get('mean')}))
      (local.set $v (f32.add ${get('v')} (f32.mul ${get('d')} ${get('d')})))
      (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $l2)))
    (global.set $mean ${get('mean')})
    (global.set $rstd (f32.div (f32.const 1) (f32.sqrt (f32.demote_f64 (f64.add
      (f64.promote_f32 (f32.demote_f64 (f64.div (f64.promote_f32 ${get('v')}) (f64.convert_i32_u ${get('n')})))) ${get('eps')}))))))

  ;; out[i] = mean (which 0) or rstd (which 1) of rows x, x + n, ... (rows of them).
  (func (export "ln_stats_rows") (param $x i32) (param $n i32) (param $eps f64) (param $o i32) (param $rows i32) (param $which i32)
    (local $i i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u ${get('i')} ${get('rows')}))
      (call $lnStats (i32.add ${get('x')} (i32.mul (i32.mul ${get('i')} ${get('n')}) (i32.const 4))) ${get('n')} ${get('eps')})
      (f32.store (i32.add ${get('o')} (i32.shl ${get('i')} (i32.const 2))) (select (global.get $rstd) (global.get $mean) ${get('which')}))
      (local.set $i (i32.add ${get('i')} (i32.const 1))) (br $l))))

  ;;LayerNorm of the row at x (n elements), columns [k0, k1) into o (o: column k0's output):
  ;; fp32(fp32(fp32(x - mean) rstd) scale) (+ bias when hasBias).
  (func (export "ln_row") (param $x i32) (param $n i32) (param $eps f64) (param $scale i32) (param $bias i32) (param $hasBias i32) (param $o i32) (param $k0 i32) (param $k1 i32)
    (local $p i32) (local $e i32) (local $mv v128) (local $rv v128) (local $y v128) (local $ys f32) (local $m f32) (local $r f32)
    (call $lnStats ${get('x')} ${get('n')} ${get('eps')})
    (local.set $m (global.get $mean)) (local.set $r (global.get $rstd))
    (local.set $mv (f32x4.splat ${get('m')})) (local.set $rv (f32x4.splat ${get('r')}))
    (local.set $o (i32.sub ${get('o')} (i32.shl ${get('k0')} (i32.const 2))))
    ${lanes(
      `(local.set $y (f32x4.mul (f32x4.mul (f32x4.sub (v128.load (i32.add ${get('x')} ${get('p')})) ${get('mv')}) ${get('rv')}) (v128.load (i32.add ${get('scale')} ${get('p')}))))
      (if ${get('hasBias')} (then (local.set $y (f32x4.add ${get('y')} (v128.load (i32.add ${get('bias')} ${get('p')}))))))
      (v128.store (i32.add ${get('o')} ${get('p')}) ${get('y')})`,
      `(local.set $ys (f32.mul (f32.mul (f32.sub (f32.load (i32.add ${get('x')} ${get('p')})) ${get('m')}) ${get('r')}) (f32.load (i32.add ${get('scale')} ${get('p')}))))
      (if ${get('hasBias')} (then (local.set $ys (f32.add ${get('ys')} (f32.load (i32.add ${get('bias')} ${get('p')}))))))
      (f32.store (i32.add ${get('o')} ${get('p')}) ${get('ys')})`,
    )})

  ;; LayerNorm's dx for the row at x (dy at the same columns), columns [k0, k1) into o:
  ;; g = fp32(dy scale), xhat = fp32(fp32(x - mean) rstd); mg, mgx = fp32 sums of g and fp32(g xhat) over the row, / n;
  ;; dx = fp32(rstd fp32(fp32(g - mg) - fp32(xhat mgx))).
  (func (export "ln_grad_x_row") (param $dy i32) (param $x i32) (param $scale i32) (param $n i32) (param $eps f64) (param $o i32) (param $k0 i32) (param $k1 i32)
    (local $p i32) (local $e i32) (local $m f32) (local $r f32) (local $g f32) (local $sg f32) (local $sgx f32) (local $mg f32) (local $mgx f32)
    (local $mv v128) (local $rv v128) (local $gv v128) (local $mgv v128) (local $mgxv v128)
    (call $lnStats ${get('x')} ${get('n')} ${get('eps')})
    (local.set $m (global.get $mean)) (local.set $r (global.get $rstd))
    (local.set $e (i32.shl ${get('n')} (i32.const 2)))
    (block $d (loop $l
      (br_if $d (i32.ge_u ${get('p')} ${get('e')}))
      (local.set $g (f32.mul (f32.load (i32.add ${get('dy')} ${get('p')})) (f32.load (i32.add ${get('scale')} ${get('p')}))))
      (local.set $sg (f32.add ${get('sg')} ${get('g')}))
      (local.set $sgx (f32.add ${get('sgx')} (f32.mul ${get('g')} (f32.mul (f32.sub (f32.load (i32.add ${get('x')} ${get('p')})) ${get('m')}) ${get('r')}))))
      (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $l)))
    (local.set $mg (f32.demote_f64 (f64.div (f64.promote_f32 ${get('sg')}) (f64.convert_i32_u ${get('n')}))))
    (local.set $mgx (f32.demote_f64 (f64.div (f64.promote_f32 ${get('sgx')}) (f64.convert_i32_u ${get('n')}))))
    (local.set $mv (f32x4.splat ${get('m')})) (local.set $rv (f32x4.splat ${get('r')}))
    (local.set $mgv (f32x4.splat ${get('mg')})) (local.set $mgxv (f32x4.splat ${get('mgx')}))
    (local.set $o (i32.sub ${get('o')} (i32.shl ${get('k0')} (i32.const 2))))
    ${lanes(
      `(local.set $gv (f32x4.mul (v128.load (i32.add ${get('dy')} ${get('p')})) (v128.load (i32.add ${get('scale')} ${get('p')}))))
      (v128.store (i32.add ${get('o')} ${get('p')}) (f32x4.mul ${get('rv')} (f32x4.sub (f32x4.sub ${get('gv')} ${get('mgv')})
        (f32x4.mul (f32x4.mul (f32x4.sub (v128.load (i32.add ${get('x')} ${get('p')})) ${get('mv')}) ${get('rv')}) ${get('mgxv')}))))`,
      `(local.set $g (f32.mul (f32.load (i32.add ${get('dy')} ${get('p')})) (f32.load (i32.add ${get('scale')} ${get('p')}))))
      (f32.store (i32.add ${get('o')} ${get('p')}) (f32.mul ${get('r')} (f32.sub (f32.sub ${get('g')} ${get('mg')})
        (f32.mul (f32.mul (f32.sub (f32.load (i32.add ${get('x')} ${get('p')})) ${get('m')}) ${get('r')}) ${get('mgx')}))))`,
    )})

  ;; LayerNorm's dscale terms for the row at x: o[k] = fp32(o[k] + fp32(dy_k fp32(fp32(x_k - mean) rstd))) for k in [k0, k1),
  ;; dy: column k0's gradient; o: where column 0 of the row goes (NnLayerNormDyXhat passes its zeroed output, shifted).
  (func (export "ln_scale_row") (param $x i32) (param $n i32) (param $eps f64) (param $dy i32) (param $o i32) (param $k0 i32) (param $k1 i32)
    (local $p i32) (local $e i32) (local $m f32) (local $r f32) (local $mv v128) (local $rv v128)
    (call $lnStats ${get('x')} ${get('n')} ${get('eps')})
    (local.set $m (global.get $mean)) (local.set $r (global.get $rstd))
    (local.set $mv (f32x4.splat ${get('m')})) (local.set $rv (f32x4.splat ${get('r')}))
    (local.set $dy (i32.sub ${get('dy')} (i32.shl ${get('k0')} (i32.const 2))))
    ${lanes(
      `(v128.store (i32.add ${get('o')} ${get('p')}) (f32x4.add (v128.load (i32.add ${get('o')} ${get('p')}))
        (f32x4.mul (v128.load (i32.add ${get('dy')} ${get('p')})) (f32x4.mul (f32x4.sub (v128.load (i32.add ${get('x')} ${get('p')})) ${get('mv')}) ${get('rv')}))))`,
      `(f32.store (i32.add ${get('o')} ${get('p')}) (f32.add (f32.load (i32.add ${get('o')} ${get('p')}))
        (f32.mul (f32.load (i32.add ${get('dy')} ${get('p')})) (f32.mul (f32.sub (f32.load (i32.add ${get('x')} ${get('p')})) ${get('m')}) ${get('r')}))))`,
    )})`;

/**
 * NnChannelSum / NnBatchNormScalePartial: len elements of a row-major
 * [outer, G, inner] run from (g, j), each added to o[g - gMin] in element
 * order, one fp32 chain per channel; centred terms are
 * fp32(fp32(dy fp32(x - mean)) k), k = fp32(1 / fp32(sqrt(fp32(var + eps)))).
 */
const CHANNEL_SUM = `
  (func (export "channel_sum") (param $dy i32) (param $len i32) (param $o i32) (param $G i32) (param $inner i32) (param $g i32) (param $j i32) (param $gMin i32)
      (param $centered i32) (param $x i32) (param $mean i32) (param $var i32) (param $eps f64)
    (local $i i32) (local $run i32) (local $op i32) (local $acc f32) (local $m f32) (local $k f32) (local $t i32) (local $p i32) (local $q i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u ${get('i')} ${get('len')}))
      (local.set $run (i32.sub ${get('inner')} ${get('j')}))
      (if (i32.gt_u ${get('run')} (i32.sub ${get('len')} ${get('i')})) (then (local.set $run (i32.sub ${get('len')} ${get('i')}))))
      (local.set $op (i32.add ${get('o')} (i32.shl (i32.sub ${get('g')} ${get('gMin')}) (i32.const 2))))
      (local.set $acc (f32.load ${get('op')}))
      (local.set $p (i32.add ${get('dy')} (i32.shl ${get('i')} (i32.const 2))))
      (local.set $q (i32.add ${get('p')} (i32.shl ${get('run')} (i32.const 2))))
      (if ${get('centered')}
        (then
          (local.set $m (f32.load (i32.add ${get('mean')} (i32.shl (i32.sub ${get('g')} ${get('gMin')}) (i32.const 2)))))
          (local.set $k (f32.div (f32.const 1) (f32.sqrt (f32.demote_f64 (f64.add (f64.promote_f32
            (f32.load (i32.add ${get('var')} (i32.shl (i32.sub ${get('g')} ${get('gMin')}) (i32.const 2))))) ${get('eps')})))))
          (local.set $t (i32.sub (i32.add ${get('x')} (i32.shl ${get('i')} (i32.const 2))) ${get('p')}))
          (block $cd (loop $cl
            (br_if $cd (i32.ge_u ${get('p')} ${get('q')}))
            (local.set $acc (f32.add ${get('acc')} (f32.mul (f32.mul (f32.load ${get('p')}) (f32.sub (f32.load (i32.add ${get('p')} ${get('t')})) ${get('m')})) ${get('k')})))
            (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $cl))))
        (else
          (block $pd (loop $pl
            (br_if $pd (i32.ge_u ${get('p')} ${get('q')}))
            (local.set $acc (f32.add ${get('acc')} (f32.load ${get('p')})))
            (local.set $p (i32.add ${get('p')} (i32.const 4))) (br $pl)))))
      (f32.store ${get('op')} ${get('acc')})
      (local.set $i (i32.add ${get('i')} ${get('run')}))
      (local.set $j (i32.const 0))
      (local.set $g (i32.add ${get('g')} (i32.const 1)))
      (if (i32.eq ${get('g')} ${get('G')}) (then (local.set $g (i32.const 0))))
      (br $l))))`;


// ---------------------------------------------------------------------------
// The two-stage reductions (sim/codelets/reduce.ts, nn-util.ts).

/**
 * ReducePartial: len elements from column j of a [rows, cols] run, added per
 * column into double accumulators at acc (cols f64, zeroed here) in element
 * order (|x| when abs), then o[c] = fp32(acc[c]): the reference's Float64Array
 * sums. Lanes go across columns (two f64 lanes), each column its own chain.
 */
const REDUCE = `
  (func (export "reduce_partial") (param $x i32) (param $len i32) (param $acc i32) (param $cols i32) (param $j i32) (param $abs i32) (param $o i32)
    (local $i i32) (local $run i32) (local $pa i32) (local $px i32) (local $end i32) (local $v v128) (local $s f64)
    (memory.fill ${get('acc')} (i32.const 0) (i32.shl ${get('cols')} (i32.const 3)))
    (if (i32.eq ${get('cols')} (i32.const 1)) (then
      ;; One column: one chain over every element.
      (local.set $px ${get('x')}) (local.set $end (i32.add ${get('x')} (i32.shl ${get('len')} (i32.const 2))))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_u ${get('px')} ${get('end')}))
        (local.set $s (f64.add ${get('s')} (if (result f64) ${get('abs')} (then (f64.abs (f64.promote_f32 (f32.load ${get('px')})))) (else (f64.promote_f32 (f32.load ${get('px')}))))))
        (local.set $px (i32.add ${get('px')} (i32.const 4))) (br $cl)))
      (f32.store ${get('o')} (f32.demote_f64 ${get('s')}))
      (return)))
    (block $d (loop $l
      (br_if $d (i32.ge_u ${get('i')} ${get('len')}))
      (local.set $run (i32.sub ${get('cols')} ${get('j')}))
      (if (i32.gt_u ${get('run')} (i32.sub ${get('len')} ${get('i')})) (then (local.set $run (i32.sub ${get('len')} ${get('i')}))))
      (local.set $pa (i32.add ${get('acc')} (i32.shl ${get('j')} (i32.const 3))))
      (local.set $px (i32.add ${get('x')} (i32.shl ${get('i')} (i32.const 2))))
      (local.set $end (i32.add ${get('px')} (i32.shl ${get('run')} (i32.const 2))))
      (block $vd (loop $vl
        (br_if $vd (i32.gt_u (i32.add ${get('px')} (i32.const 8)) ${get('end')}))
        (local.set $v (f64x2.promote_low_f32x4 (v128.load64_zero ${get('px')})))
        (if ${get('abs')} (then (local.set $v (f64x2.abs ${get('v')}))))
        (v128.store ${get('pa')} (f64x2.add (v128.load ${get('pa')}) ${get('v')}))
        (local.set $px (i32.add ${get('px')} (i32.const 8))) (local.set $pa (i32.add ${get('pa')} (i32.const 16))) (br $vl)))
      (if (i32.lt_u ${get('px')} ${get('end')}) (then
        (local.set $s (f64.promote_f32 (f32.load ${get('px')})))
        (if ${get('abs')} (then (local.set $s (f64.abs ${get('s')}))))
        (f64.store ${get('pa')} (f64.add (f64.load ${get('pa')}) ${get('s')}))))
      (local.set $i (i32.add ${get('i')} ${get('run')}))
      (local.set $j (i32.const 0))
      (br $l)))
    (local.set $i (i32.const 0))
    (block $od (loop $ol
      (br_if $od (i32.ge_u ${get('i')} ${get('cols')}))
      (f32.store (i32.add ${get('o')} (i32.shl ${get('i')} (i32.const 2))) (f32.demote_f64 (f64.load (i32.add ${get('acc')} (i32.shl ${get('i')} (i32.const 3))))))
      (local.set $i (i32.add ${get('i')} (i32.const 1))) (br $ol))))

  ;; ReduceFinal: o[i] = fp32((((0 + p_0[i]) + p_1[i]) + ...) x scale), the sum and the product in double,
  ;; the np partials' addresses an i32 array at ptrs. Two outputs per step (f64 lanes).
  (func (export "reduce_final") (param $ptrs i32) (param $np i32) (param $o i32) (param $n i32) (param $scale f64)
    (local $i i32) (local $nb i32) (local $nv i32) (local $p i32) (local $v v128) (local $s f64) (local $sv v128)
    (local.set $sv (f64x2.splat ${get('scale')}))
    (local.set $nb (i32.shl ${get('n')} (i32.const 2)))
    (local.set $nv (i32.and ${get('nb')} (i32.const -8)))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u ${get('i')} ${get('nv')}))
      (local.set $v ${zero}) (local.set $p (i32.const 0))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_u ${get('p')} ${get('np')}))
        (local.set $v (f64x2.add ${get('v')} (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (i32.load (i32.add ${get('ptrs')} (i32.shl ${get('p')} (i32.const 2)))) ${get('i')})))))
        (local.set $p (i32.add ${get('p')} (i32.const 1))) (br $pl)))
      (v128.store64_lane 0 (i32.add ${get('o')} ${get('i')}) (f32x4.demote_f64x2_zero (f64x2.mul ${get('v')} ${get('sv')})))
      (local.set $i (i32.add ${get('i')} (i32.const 8))) (br $vl)))
    (if (i32.lt_u ${get('i')} ${get('nb')}) (then
      (local.set $p (i32.const 0))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_u ${get('p')} ${get('np')}))
        (local.set $s (f64.add ${get('s')} (f64.promote_f32 (f32.load (i32.add (i32.load (i32.add ${get('ptrs')} (i32.shl ${get('p')} (i32.const 2)))) ${get('i')})))))
        (local.set $p (i32.add ${get('p')} (i32.const 1))) (br $pl)))
      (f32.store (i32.add ${get('o')} ${get('i')}) (f32.demote_f64 (f64.mul ${get('s')} ${get('scale')}))))))

  ;; o[i] = fp32(x[i] x scale), the product in double (NnPartialsFinal's scaling; x may be o).
  (func (export "scale_f64") (param $x i32) (param $o i32) (param $n i32) (param $scale f64)
    (local $i i32) (local $nb i32) (local $nv i32) (local $sv v128)
    (local.set $sv (f64x2.splat ${get('scale')}))
    (local.set $nb (i32.shl ${get('n')} (i32.const 2)))
    (local.set $nv (i32.and ${get('nb')} (i32.const -8)))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u ${get('i')} ${get('nv')}))
      (v128.store64_lane 0 (i32.add ${get('o')} ${get('i')}) (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add ${get('x')} ${get('i')}))) ${get('sv')})))
      (local.set $i (i32.add ${get('i')} (i32.const 8))) (br $vl)))
    (if (i32.lt_u ${get('i')} ${get('nb')}) (then
      (f32.store (i32.add ${get('o')} ${get('i')}) (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (i32.add ${get('x')} ${get('i')}))) ${get('scale')}))))))`;


// ---------------------------------------------------------------------------
// float16 <-> float32 at the vertex boundary (sim/half.ts, sim/execute.ts).

const i32x4 = (v: number) => `(i32x4.splat (i32.const ${v | 0}))`;

/**
 * Four fp16 bit patterns (u32 lanes) to fp32 bits, as sim/half.ts's table:
 * normals and infinities by moving the exponent, subnormals as m x 2^-24
 * (exact), NaNs keeping sign and payload (the table holds them so; a
 * TypeScript copy of them may set the quiet bit, depending on the JIT tier).
 */
function halfToFloatLanes(h: string): string {
  return `(local.set $h ${h})
      (local.set $em (v128.and ${get('h')} ${i32x4(0x7fff)}))
      (local.set $r (i32x4.add (i32x4.shl ${get('em')} (i32.const 13)) ${i32x4(112 << 23)}))
      (local.set $big (i32x4.ge_u ${get('em')} ${i32x4(0x7c00)}))
      (local.set $r (i32x4.add ${get('r')} (v128.and ${get('big')} ${i32x4(112 << 23)})))
      (local.set $r (v128.bitselect (f32x4.mul (f32x4.convert_i32x4_u ${get('em')}) (f32x4.splat (f32.const 0x1p-24))) ${get('r')} (i32x4.lt_u ${get('em')} ${i32x4(0x400)})))
      (v128.or ${get('r')} (i32x4.shl (v128.and ${get('h')} ${i32x4(0x8000)}) (i32.const 16)))`;
}

/**
 * fp32 bits (u32 lanes) to fp16 bits, rounding to nearest even as
 * toHalfBits: overflow to infinity, NaN to the quiet NaN 0x7e00 with the sign,
 * results below fp16's normals rounded by an fp32 add of 0.5 (whose ulp is
 * fp16's smallest subnormal: the add rounds to nearest even there), normals
 * by adding 0xfff plus the kept mantissa's low bit before the shift.
 */
function floatToHalfLanes(x: string): string {
  return `(local.set $h ${x})
      (local.set $s (v128.and ${get('h')} ${i32x4(0x80000000)}))
      (local.set $em (v128.xor ${get('h')} ${get('s')}))
      (local.set $r (i32x4.shr_u (i32x4.add (i32x4.add ${get('em')} ${i32x4(0xc8000fff)}) (v128.and (i32x4.shr_u ${get('em')} (i32.const 13)) ${i32x4(1)})) (i32.const 13)))
      (local.set $r (v128.bitselect (i32x4.sub (f32x4.add ${get('em')} (f32x4.splat (f32.const 0.5))) ${i32x4(0x3f000000)}) ${get('r')} (i32x4.lt_u ${get('em')} ${i32x4(0x38800000)})))
      (local.set $r (v128.bitselect (v128.or ${i32x4(0x7c00)} (v128.and (i32x4.gt_u ${get('em')} ${i32x4(0x7f800000)}) ${i32x4(0x200)})) ${get('r')} (i32x4.ge_u ${get('em')} ${i32x4(0x47800000)})))
      (v128.or ${get('r')} (i32x4.shr_u ${get('s')} (i32.const 16)))`;
}

const HALF = `
  (func (export "half_decode") (param $src i32) (param $dst i32) (param $n i32)
    (local $h v128) (local $em v128) (local $r v128) (local $big v128) (local $v v128) (local $e i32)
    (local.set $e (i32.add ${get('src')} (i32.shl ${get('n')} (i32.const 1))))
    (block $vd (loop $vl
      (br_if $vd (i32.gt_u (i32.add ${get('src')} (i32.const 8)) ${get('e')}))
      (v128.store ${get('dst')} ${halfToFloatLanes(`(i32x4.extend_low_i16x8_u (v128.load64_zero ${get('src')}))`)})
      (local.set $src (i32.add ${get('src')} (i32.const 8))) (local.set $dst (i32.add ${get('dst')} (i32.const 16))) (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('src')} ${get('e')}))
      (v128.store32_lane 0 ${get('dst')} ${halfToFloatLanes(`(i32x4.splat (i32.load16_u ${get('src')}))`)})
      (local.set $src (i32.add ${get('src')} (i32.const 2))) (local.set $dst (i32.add ${get('dst')} (i32.const 4))) (br $sl))))

  (func (export "half_encode") (param $x i32) (param $dst i32) (param $n i32)
    (local $h v128) (local $s v128) (local $em v128) (local $r v128) (local $e i32)
    (local.set $e (i32.add ${get('x')} (i32.shl ${get('n')} (i32.const 2))))
    (block $vd (loop $vl
      (br_if $vd (i32.gt_u (i32.add ${get('x')} (i32.const 16)) ${get('e')}))
      (v128.store64_lane 0 ${get('dst')} (i16x8.narrow_i32x4_u ${floatToHalfLanes(`(v128.load ${get('x')})`)} ${zero}))
      (local.set $x (i32.add ${get('x')} (i32.const 16))) (local.set $dst (i32.add ${get('dst')} (i32.const 8))) (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('x')} ${get('e')}))
      (v128.store16_lane 0 ${get('dst')} ${floatToHalfLanes(`(i32x4.splat (i32.load ${get('x')}))`)})
      (local.set $x (i32.add ${get('x')} (i32.const 4))) (local.set $dst (i32.add ${get('dst')} (i32.const 2))) (br $sl))))`;


// ---------------------------------------------------------------------------
// Seeded random fills (src/util/random.ts): splitmix32 is counter-based, so
// four lanes draw elements i .. i + 3 at once, the very values of the loop.

/** splitmix32's output for the states in the lanes of `st`. */
const MIX = (st: string) => `(local.set $z ${st})
      (local.set $z (i32x4.mul (v128.xor ${get('z')} (i32x4.shr_u ${get('z')} (i32.const 16))) ${i32x4(0x21f0aaad)}))
      (local.set $z (i32x4.mul (v128.xor ${get('z')} (i32x4.shr_u ${get('z')} (i32.const 15))) ${i32x4(0x735a2d97)}))
      (local.set $z (v128.xor ${get('z')} (i32x4.shr_u ${get('z')} (i32.const 15))))`;

/** The two f64 lanes (half 0: elements 0, 1; half 1: 2, 3) of u = z / 2^32 mapped as the fill: uniform low + span u, integer low + floor(u span). */
const DRAW = (half: 0 | 1, integer: boolean) => {
  const lanes = half === 0 ? get('z') : `(i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 ${get('z')} ${get('z')})`;
  const u = `(f64x2.mul (f64x2.convert_low_i32x4_u ${lanes}) (f64x2.splat (f64.const 0x1p-32)))`;
  return integer ? `(f64x2.add ${get('lo')} (f64x2.floor (f64x2.mul ${u} ${get('sp')})))` : `(f64x2.add ${get('lo')} (f64x2.mul ${get('sp')} ${u}))`;
};

/** The fill loop for one mapping and one element type (f32 rounded to nearest, f64, i32 truncated). */
function randomLoop(integer: boolean, type: 0 | 1 | 2): string {
  const store =
    type === 1
      ? `(v128.store ${get('dst')} ${get('a')}) (v128.store offset=16 ${get('dst')} ${get('b')}) (local.set $dst (i32.add ${get('dst')} (i32.const 32)))`
      : `(v128.store ${get('dst')} (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (${type === 0 ? 'f32x4.demote_f64x2_zero' : 'i32x4.trunc_sat_f64x2_s_zero'} ${get('a')}) (${type === 0 ? 'f32x4.demote_f64x2_zero' : 'i32x4.trunc_sat_f64x2_s_zero'} ${get('b')})))
        (local.set $dst (i32.add ${get('dst')} (i32.const 16)))`;
  return `(block $d (loop $l
      (br_if $d (i32.ge_u ${get('e')} ${get('n')}))
      ${MIX(get('s'))}
      (local.set $a ${DRAW(0, integer)})
      (local.set $b ${DRAW(1, integer)})
      ${store}
      (local.set $s (i32x4.add ${get('s')} ${i32x4(0x9e3779b9 * 4)}))
      (local.set $e (i32.add ${get('e')} (i32.const 4))) (br $l)))`;
}

/**
 * ceil(n / 4) x 4 draws from state `st` (the state before element 0) into
 * dst as f32 (type 0, rounded to nearest), f64 (1) or i32 (2, truncated; the
 * caller keeps the values inside int32). The caller advances the state by n.
 */
const RANDOM = `
  (func (export "random_fill") (param $st i32) (param $n i32) (param $dst i32) (param $integer i32) (param $low f64) (param $span f64) (param $type i32)
    (local $s v128) (local $z v128) (local $a v128) (local $b v128) (local $lo v128) (local $sp v128) (local $e i32)
    (local.set $s (i32x4.add (i32x4.splat ${get('st')}) (v128.const i32x4 0x9e3779b9 0x3c6ef372 0xdaa66d2b 0x78dde6e4)))
    (local.set $lo (f64x2.splat ${get('low')})) (local.set $sp (f64x2.splat ${get('span')}))
    ${[false, true]
      .flatMap((integer) => ([0, 1, 2] as const).map((type) => `(if (i32.and (i32.eq ${get('integer')} (i32.const ${integer ? 1 : 0})) (i32.eq ${get('type')} (i32.const ${type}))) (then ${randomLoop(integer, type)} (return)))`))
      .join('\n    ')})`;

export const KERNELS_WAT = `(module
  (import "env" "memory" (memory 0 ${MAX_PAGES} shared))
  (import "env" "exp" (func $exp (param f64) (result f64)))
  (import "env" "log" (func $log (param f64) (result f64)))
${[1, 2, 3, 4].map(blockRx8).join('\n')}
${ROW_TAIL}
${MATMUL}
${TRANSPOSE}
${binaries.join('\n')}
${int32Binaries.join('\n')}
${unaries.join('\n')}
${SUM_PARTS}
${COPIES}
${SOFTMAX}
${LN_STATS}
${CHANNEL_SUM}
${REDUCE}
${HALF}
${RANDOM}
${CONV_WAT}
)
`;
