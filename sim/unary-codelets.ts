/**
 * The unary family's codelet shapes, for codelet modules (`tilesim/device`):
 * a forward codelet out[i] = f(in[i]) and a grad codelet
 * out[i] = g(gradOut[i], in[i] or fwdOut[i]), on float32 or float16 fields,
 * costed as PopLibs' UnaryOp1D / BinaryOp1D MultiVertices with the loop given.
 * They are the built-in unary codelets' own generators (sim/codelets/unary.ts),
 * given a domain and one loop cost for every dtype. A custom elementwise op
 * then needs only its arithmetic and its loop cost (docs/custom-ops.md,
 * "The short form").
 */
import { gradCodelet, unaryCodelet, type GradFields, type UnaryFields } from './codelets/unary.js';
import type { LoopCost } from './codelets/estimators.js';
import type { CodeletDef, ParamSpecs, ParamValues } from './define.js';

/** A grad codelet's fields: y', the forward tensor its rule reads (x as `in`, y as `fwdOut`), and x'. */
export type UnaryGradFields<W extends 'in' | 'fwdOut'> = GradFields<W>;

interface Common<P extends ParamSpecs> {
  domain: string;
  name: string;
  /** The vertex params the arithmetic reads (floats arrive as doubles: Math.fround what the device holds as float). */
  params: P;
  /** The inner loop's cost per vector (PopLibs' figures: estimators.RELU_LOOP, addLoop(dtype), ...). */
  loop: LoopCost;
  estimateSource: string;
}

/** out[i] = f(in[i]), f made once per vertex from its params. */
export function defineUnaryCodelet<const P extends ParamSpecs>(s: Common<P> & { f: (p: ParamValues<P>) => (x: number) => number }): CodeletDef<UnaryFields, P> {
  return unaryCodelet(s.name, s.params, s.f, () => s.loop, s.estimateSource, undefined, undefined, s.domain);
}

/** out[i] = g(gradOut[i], fwd[i]), fwd the forward input (`reads: 'in'`) or output (`reads: 'fwdOut'`). */
export function defineUnaryGradCodelet<const W extends 'in' | 'fwdOut', const P extends ParamSpecs>(
  s: Common<P> & { reads: W; g: (p: ParamValues<P>) => (dy: number, fwd: number) => number },
): CodeletDef<UnaryGradFields<W>, P> {
  return gradCodelet(s.name, s.reads, s.params, s.g, () => s.loop, s.estimateSource, undefined, s.domain);
}
