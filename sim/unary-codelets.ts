/**
 * The unary family's codelet shapes, for codelet modules (`tilesim/device`):
 * a forward codelet out[i] = f(in[i]) and a grad codelet
 * out[i] = g(gradOut[i], in[i] or fwdOut[i]), on float32 or float16 fields,
 * costed as PopLibs' UnaryOp1D / BinaryOp1D MultiVertices with the loop given
 * (the estimators the built-in unary codelets use, sim/codelets/unary.ts).
 * A custom elementwise op then needs only its arithmetic and its loop cost
 * (docs/custom-ops.md, "The short form").
 */
import { fieldDType, regionCount } from './codelet.js';
import { binaryMultiVertex, unaryMultiVertex, type LoopCost } from './codelets/estimators.js';
import { defineCodelet, type CodeletDef, type ParamSpecs, type ParamValues } from './define.js';
import type { Region } from './program.js';

const FLOATS = ['float32', 'float16'] as const;
const FLOAT_IN = { direction: 'input', dtypes: FLOATS } as const;
const FLOAT_OUT = { direction: 'output', dtypes: FLOATS } as const;
const UNARY_FIELDS = { in: FLOAT_IN, out: FLOAT_OUT } as const;
/** A grad codelet's fields: y', the forward tensor its rule reads (x as `in`, y as `fwdOut`), and x'. */
export type UnaryGradFields<W extends 'in' | 'fwdOut'> = { gradOut: typeof FLOAT_IN; out: typeof FLOAT_OUT } & Record<W, typeof FLOAT_IN>;

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
export function defineUnaryCodelet<const P extends ParamSpecs>(
  s: Common<P> & { f: (p: ParamValues<P>) => (x: number) => number },
): CodeletDef<typeof UNARY_FIELDS, P> {
  return defineCodelet({
    domain: s.domain,
    name: s.name,
    kind: 'multi',
    fields: UNARY_FIELDS,
    params: s.params,
    compute({ fields, params }) {
      const f = s.f(params);
      const x = fields.in;
      const y = fields.out;
      for (let i = 0; i < y.length; i++) y[i] = f(x[i]);
    },
    cycles: (v, device) => unaryMultiVertex(regionCount(v.fields.out), fieldDType(v.fields.out), s.loop, device),
    estimateSource: s.estimateSource,
  });
}

/** out[i] = g(gradOut[i], fwd[i]), fwd the forward input (`reads: 'in'`) or output (`reads: 'fwdOut'`). */
export function defineUnaryGradCodelet<const W extends 'in' | 'fwdOut', const P extends ParamSpecs>(
  s: Common<P> & { reads: W; g: (p: ParamValues<P>) => (dy: number, fwd: number) => number },
): CodeletDef<UnaryGradFields<W>, P> {
  const fields: UnaryGradFields<W> = { gradOut: FLOAT_IN, out: FLOAT_OUT, ...({ [s.reads]: FLOAT_IN } as Record<W, typeof FLOAT_IN>) };
  return defineCodelet({
    domain: s.domain,
    name: s.name,
    kind: 'multi',
    fields,
    params: s.params,
    compute({ fields: f, params }) {
      const g = s.g(params);
      // A generic field name leaves TypeScript unable to resolve the views: the shapes are fixed above.
      const views = f as { gradOut: Float32Array; out: Float32Array } & Record<W, Float32Array>;
      const dy = views.gradOut;
      const fwd = views[s.reads];
      const dx = views.out;
      for (let i = 0; i < dx.length; i++) dx[i] = g(dy[i], fwd[i]);
    },
    cycles(v, device) {
      const out = (v.fields as { out: Region }).out;
      return binaryMultiVertex(regionCount(out), fieldDType(out), s.loop, device);
    },
    estimateSource: s.estimateSource,
  });
}
