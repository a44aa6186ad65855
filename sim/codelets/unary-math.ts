/**
 * Scalar math the unary codelets need beyond Math: erf and the two GELU forms
 * with their derivatives. Everything is evaluated in double precision; the
 * codelet rounds once when it stores to float32 (or float16).
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const SQRT_PI = Math.sqrt(Math.PI);
const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
/** sqrt(2 / pi) and the cubic coefficient of the tanh form of GELU (ONNX Gelu-20). */
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** erfc(x) for x >= 2.5 by its continued fraction (80 terms: below 1e-15 relative there). */
function erfcLarge(ax: number): number {
  let k = ax;
  for (let n = 80; n >= 1; n--) k = ax + n / 2 / k;
  return Math.exp(-ax * ax) / (SQRT_PI * k);
}

/**
 * The error function to about 1e-15 relative: its Maclaurin series for
 * |x| < 2.5 (the largest term is about 83, so cancellation costs two digits),
 * 1 - erfc(|x|) beyond.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (Number.isNaN(x)) return NaN;
  if (ax < 2.5) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) <= 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  if (ax === Infinity) return Math.sign(x);
  const c = erfcLarge(ax);
  return x > 0 ? 1 - c : c - 1;
}

/** d erf / dx = 2 / sqrt(pi) exp(-x^2). */
export function erfGrad(x: number): number {
  return TWO_OVER_SQRT_PI * Math.exp(-x * x);
}

/** GELU, exact form: x Phi(x) = x/2 (1 + erf(x / sqrt 2)). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * SQRT1_2));
}

/** d/dx of the exact form: Phi(x) + x phi(x). */
export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** GELU, tanh form: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x * x * x)));
}

/** d/dx of the tanh form: (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2). */
export function geluTanhGrad(x: number): number {
  const t = Math.tanh(GELU_K * (x + GELU_C * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
}
