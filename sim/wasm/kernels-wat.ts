/**
 * The WebAssembly SIMD kernels, as WAT text (assembled by sim/wasm/kernels.ts
 * with wabt: at build time into dist/sim/wasm/kernels.wasm, or at load time
 * when running from the TypeScript sources). Generated from templates here so
 * each op's loop is written once.
 *
 * They run over tile memory itself (the imported shared memory); every
 * pointer is a byte address in it, every count is in elements.
 *
 * Rounding (docs/numerics.md): every arithmetic step is one IEEE fp32
 * operation, f32x4 lanes or f32 scalars alike, so results do not depend on
 * which lanes a value falls in. The matmul accumulates each output in
 * ascending contraction order, product rounded to fp32, then the sum: exactly
 * the TypeScript reference (sim/codelets/amp.ts).
 */

/** Max pages of the imported memory: 4 GiB, wasm32's limit. */
export const MAX_PAGES = 65536;

const get = (x: string) => `(local.get $${x})`;

/** Accumulators of the 4 x 8 matmul block: row r, column half h. */
const acc = (r: number, h: number) => `c${r}${h}`;

/**
 * out[4, 8] = A[4 rows, k] x B[k, 8 columns]: A read as scalars through its
 * row and column strides (bytes), B rows `ldb` bytes apart, out rows `ldo`.
 */
function block4x8(): string {
  const rows = [0, 1, 2, 3];
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
  return `
  (func $block4x8 (param $a0 i32) (param $aRow i32) (param $aCol i32) (param $b i32) (param $ldb i32) (param $k i32) (param $o i32) (param $ldo i32)
    (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $i i32) (local $x v128) (local $b0 v128) (local $b1 v128) ${locals}
    (local.set $a1 (i32.add ${get('a0')} ${get('aRow')}))
    (local.set $a2 (i32.add ${get('a1')} ${get('aRow')}))
    (local.set $a3 (i32.add ${get('a2')} ${get('aRow')}))
    (block $done (loop $next
      (br_if $done (i32.ge_u ${get('i')} ${get('k')}))
      (local.set $b0 (v128.load ${get('b')}))
      (local.set $b1 (v128.load offset=16 ${get('b')}))
      ${mac}
      (local.set $a0 (i32.add ${get('a0')} ${get('aCol')}))
      (local.set $a1 (i32.add ${get('a1')} ${get('aCol')}))
      (local.set $a2 (i32.add ${get('a2')} ${get('aCol')}))
      (local.set $a3 (i32.add ${get('a3')} ${get('aCol')}))
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
 * Blocks of 4 rows x 8 columns, then row tails.
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
    (block $tdone (loop $tl
      (br_if $tdone (i32.ge_u ${get('r')} ${get('rows')}))
      (call $rowTail (i32.add ${get('a')} (i32.mul ${get('r')} ${get('aRow')})) ${get('aCol')} ${get('b')} ${get('ld')} ${get('k')}
        (i32.add ${get('o')} (i32.mul ${get('r')} ${get('ld')})) (i32.const 0) ${get('n')})
      (local.set $r (i32.add ${get('r')} (i32.const 1))) (br $tl))))`;

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
function elementwise(name: string, inputs: string[], vec: (x: string[]) => string, sca: (x: string[]) => string, scalarInput?: string): string {
  const params = [...inputs, 'o'].map((p) => `(param $${p} i32)`).join(' ');
  const at = (p: string) => `(i32.add ${get(p)} ${get('i')})`;
  const vload = (p: string) => (p === scalarInput ? get('sv') : `(v128.load ${at(p)})`);
  const sload = (p: string) => (p === scalarInput ? get('ss') : `(f32.load ${at(p)})`);
  const scalar = scalarInput ? `(local.set $ss (f32.load ${get(scalarInput)})) (local.set $sv (f32x4.splat ${get('ss')}))` : '';
  return `
  (func (export "${name}") ${params} (param $n i32)
    (local $i i32) (local $nb i32) (local $nv i32) (local $ss f32) (local $sv v128)
    ${scalar}
    (local.set $nb (i32.shl ${get('n')} (i32.const 2)))
    (local.set $nv (i32.and ${get('nb')} (i32.const -16)))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u ${get('i')} ${get('nv')}))
      (v128.store ${at('o')} ${vec(inputs.map(vload))})
      (local.set $i (i32.add ${get('i')} (i32.const 16))) (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${get('i')} ${get('nb')}))
      (f32.store ${at('o')} ${sca(inputs.map(sload))})
      (local.set $i (i32.add ${get('i')} (i32.const 4))) (br $sl))))`;
}

/** The binary ops: vector-vector and vector-scalar (b one element, a bias of length 1 or a scalar). */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

const binaries = BINARY_OPS.flatMap((op) => [
  elementwise(`${op}_vv`, ['a', 'b'], ([a, b]) => `(f32x4.${op} ${a} ${b})`, ([a, b]) => `(f32.${op} ${a} ${b})`),
  elementwise(`${op}_vs`, ['a', 'b'], ([a, b]) => `(f32x4.${op} ${a} ${b})`, ([a, b]) => `(f32.${op} ${a} ${b})`, 'b'),
]);

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
 */
const COPIES = `
  (func (export "copies") (param $t i32) (param $n i32) (local $e i32)
    (local.set $e (i32.add ${get('t')} (i32.mul ${get('n')} (i32.const 12))))
    (block $done (loop $next
      (br_if $done (i32.ge_u ${get('t')} ${get('e')}))
      (memory.copy (i32.load offset=4 ${get('t')}) (i32.load ${get('t')}) (i32.load offset=8 ${get('t')}))
      (local.set $t (i32.add ${get('t')} (i32.const 12))) (br $next))))`;

export const KERNELS_WAT = `(module
  (import "env" "memory" (memory 0 ${MAX_PAGES} shared))
${block4x8()}
${ROW_TAIL}
${MATMUL}
${TRANSPOSE}
${binaries.join('\n')}
${unaries.join('\n')}
${SUM_PARTS}
${COPIES}
)
`;
