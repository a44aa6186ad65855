/**
 * Resize (ONNX 10, 11, 13, 18) and Upsample (7, 9), composites of ops
 * tilesim lowers already: both modes are separable, so each resized axis in
 * turn is
 *   nearest  Gather(x, idx, axis), idx[o] the input element output o takes
 *   linear   Gather(x, i0) * w0 + Gather(x, i1) * w1, w0 / w1 constants
 *            shaped [out, 1, ...] along the axis (broadcast by Mul)
 *   cubic    the same over four taps floor(c) - 1 ... floor(c) + 2 (ONNX's
 *            cubic weights with cubic_coeff_a; exclude_outside zeroes taps
 *            outside the axis and renormalises), summed by Sum
 * with idx / i0 / i1 / w computed at build time from the coordinate
 * transformation (half_pixel, half_pixel_symmetric, pytorch_half_pixel,
 * align_corners, asymmetric) and nearest_mode (round_prefer_floor,
 * round_prefer_ceil, floor, ceil; before Resize-11 onnxruntime's "simple":
 * floor when upsampling, ceil when downsampling). Gather moves rows as
 * exchanges of runs, each tile fetching the rows its outputs take, and the
 * gradients are Gather's, Mul's and Add's. Scales and sizes (and axes)
 * must be constants; tf_crop_and_resize and antialias are refused.
 */
import type { ExpandArgs, Expansion, OpDefinition, AttributeDef } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

const COORD_MODES = ['half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric'];
const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil', 'simple'];

interface AxisPlan {
  axis: number;
  inLen: number;
  outLen: number;
  scale: number;
}

/**
 * The input coordinate of output element o on an axis (ONNX's
 * coordinate_transformation_mode), in float32 step by step as onnxruntime
 * computes it: a coordinate that is an integer in exact arithmetic can fall
 * just below it (0.6 as a float32 scale), which decides floor and ceil.
 */
export function sourceCoord(mode: string, o: number, p: AxisPlan): number {
  const f = Math.fround;
  const { inLen, outLen } = p;
  const scale = f(p.scale);
  switch (mode) {
    case 'half_pixel':
      return f(f(f(o + 0.5) / scale) - 0.5);
    case 'half_pixel_symmetric': {
      const adjustment = f(outLen / f(scale * inLen));
      const offset = f(f(inLen / 2) * f(1 - adjustment));
      return f(offset + f(f(f(o + 0.5) / scale) - 0.5));
    }
    case 'pytorch_half_pixel':
      return outLen > 1 ? f(f(f(o + 0.5) / scale) - 0.5) : 0;
    case 'align_corners':
      return outLen === 1 ? 0 : f(f(o * (inLen - 1)) / (outLen - 1));
    default:
      return f(o / scale);
  }
}

/** The input element nearest mode `mode` picks for coordinate x (clamped into the axis). */
export function nearestIndex(mode: string, x: number, p: AxisPlan): number {
  let i: number;
  const frac = x - Math.floor(x);
  switch (mode) {
    case 'round_prefer_ceil':
      i = frac === 0.5 ? Math.ceil(x) : Math.round(x);
      break;
    case 'floor':
      i = Math.floor(x);
      break;
    case 'ceil':
      i = Math.ceil(x);
      break;
    case 'simple':
      i = p.scale < 1 ? Math.ceil(x) : Math.floor(x);
      break;
    default:
      i = frac === 0.5 ? Math.floor(x) : Math.round(x);
  }
  return Math.min(p.inLen - 1, Math.max(0, i));
}

/** The cubic convolution weights of taps -1, 0, 1, 2 for fraction t (ONNX's, with coefficient A). */
export function cubicCoeffs(t: number, A: number): number[] {
  const far = (d: number) => ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
  const near = (d: number) => ((A + 2) * d - (A + 3)) * d * d + 1;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

function expandResize(kind: 'resize' | 'upsample', version: number) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const x = b.info(0);
    const r = x.shape.length;
    const a = args.attributes;
    const has = (k: string) => a.has(k);
    if (x.dtype !== 'float32' && x.dtype !== 'float16') b.fail(`X must be float32 or float16, got ${fmtInfo(x)}`);
    let mode = a.string('mode');
    if (mode === 'bilinear' || mode === 'trilinear') mode = 'linear';
    if (mode === 'cubic' && (kind !== 'resize' || version < 11)) b.fail(`mode 'cubic' needs Resize-11 or later`);
    if (mode !== 'nearest' && mode !== 'linear' && mode !== 'cubic') b.fail(`mode '${mode}' is not supported (supported: nearest, linear, cubic)`);
    const coord = kind === 'resize' && version >= 11 ? a.string('coordinate_transformation_mode') : 'asymmetric';
    if (coord === 'tf_crop_and_resize') b.fail(`coordinate_transformation_mode 'tf_crop_and_resize' is not supported (it needs roi)`);
    if (!COORD_MODES.includes(coord)) b.fail(`coordinate_transformation_mode '${coord}' is not supported; supported: ${COORD_MODES.join(', ')}`);
    const nearestMode = kind === 'resize' && version >= 11 ? a.string('nearest_mode') : 'simple';
    if (!NEAREST_MODES.includes(nearestMode)) b.fail(`nearest_mode '${nearestMode}' is not supported; supported: ${NEAREST_MODES.slice(0, 4).join(', ')}`);
    if (has('antialias') && a.int('antialias') !== 0) b.fail('antialias = 1 is not supported');
    const cubicA = has('cubic_coeff_a') ? a.float('cubic_coeff_a') : -0.75;
    const excludeOutside = has('exclude_outside') && a.int('exclude_outside') !== 0;

    // Scales or sizes, per axis listed in `axes` (18), else per axis of X.
    let axes = Array.from({ length: r }, (_, k) => k);
    if (version >= 18 && kind === 'resize' && a.ints('axes').length) {
      axes = a.ints('axes').map((v) => {
        if (v < -r || v >= r) b.fail(`axes [${a.ints('axes').join(', ')}] are out of range for rank ${r}`);
        return v < 0 ? v + r : v;
      });
      if (new Set(axes).size !== axes.length) b.fail(`axes [${axes.join(', ')}] repeat an axis`);
    }
    const present = (i: number) => args.node.inputs.length > i && args.node.inputs[i] !== '' && (args.inputInfos[i]?.shape.reduce((p, d) => p * d, 1) ?? 0) > 0;
    let scales: number[] | undefined;
    let sizes: number[] | undefined;
    if (kind === 'upsample') scales = version >= 9 ? b.constant(1, 'scales') : a.floats('scales');
    else if (version === 10) scales = b.constant(1, 'scales');
    else {
      if (present(2)) scales = b.constant(2, 'scales');
      if (present(3)) sizes = b.constant(3, 'sizes');
      if (scales && sizes) b.fail('give scales or sizes, not both');
      if (!scales && !sizes) b.fail('needs scales or sizes');
    }
    const given = (scales ?? sizes)!;
    if (given.length !== axes.length) b.fail(`${scales ? 'scales' : 'sizes'} [${given.join(', ')}] must have ${axes.length} entries (one per ${axes.length === r ? 'axis of X' : 'axis in axes'})`);
    const plans: AxisPlan[] = [];
    if (scales) {
      if (scales.some((s) => !(s > 0))) b.fail(`scales [${scales.join(', ')}] must be positive`);
      axes.forEach((axis, j) => plans.push({ axis, inLen: x.shape[axis], outLen: Math.floor(x.shape[axis] * scales![j]), scale: scales![j] }));
    } else {
      const policy = has('keep_aspect_ratio_policy') ? a.string('keep_aspect_ratio_policy') : 'stretch';
      if (sizes!.some((s) => !(s >= 1))) b.fail(`sizes [${sizes!.join(', ')}] must be >= 1`);
      if (policy === 'stretch') axes.forEach((axis, j) => plans.push({ axis, inLen: x.shape[axis], outLen: sizes![j], scale: Math.fround(sizes![j] / x.shape[axis]) }));
      else {
        if (policy !== 'not_larger' && policy !== 'not_smaller') b.fail(`keep_aspect_ratio_policy '${policy}' is not one of stretch, not_larger, not_smaller`);
        const ratios = axes.map((axis, j) => sizes![j] / x.shape[axis]);
        const s = policy === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
        axes.forEach((axis) => plans.push({ axis, inLen: x.shape[axis], outLen: Math.round(s * x.shape[axis]), scale: s }));
      }
    }
    for (const p of plans) if (p.outLen < 1) b.fail(`axis ${p.axis} of ${fmtInfo(x)} would resize to ${p.outLen} elements`);

    const work = plans.filter((p) => !(p.outLen === p.inLen && p.scale === 1));
    const out = args.node.outputs[0];
    let cur = args.node.inputs[0];
    if (work.length === 0) {
      b.add('Identity', 13, [cur], {}, out);
      return b.done();
    }
    const shape = [...x.shape];
    work.forEach((p, j) => {
      const last = j === work.length - 1 ? out : undefined;
      const coords = Array.from({ length: p.outLen }, (_, o) => sourceCoord(coord, o, p));
      if (mode === 'nearest') {
        cur = b.add('Gather', 13, [cur, b.ints('idx', coords.map((c) => nearestIndex(nearestMode, c, p)))], { axis: p.axis }, last);
      } else {
        // Taps floor(c) + t0 ... (linear: 0, 1; cubic: -1 ... 2), indices clamped (edge), weights per output element.
        const clamp = (i: number) => Math.min(p.inLen - 1, Math.max(0, i));
        const taps = mode === 'linear' ? [0, 1] : [-1, 0, 1, 2];
        const weights = coords.map((c) => {
          const t = c - Math.floor(c);
          if (mode === 'linear') return [1 - t, t];
          const w = cubicCoeffs(t, cubicA);
          if (!excludeOutside) return w;
          // exclude_outside: taps outside the axis weigh 0, the rest renormalised.
          const inside = w.map((v, k) => (Math.floor(c) + taps[k] >= 0 && Math.floor(c) + taps[k] < p.inLen ? v : 0));
          const sum = inside.reduce((x, y) => x + y, 0);
          return inside.map((v) => v / sum);
        });
        const wShape = shape.map((_, k) => (k === p.axis ? p.outLen : 1));
        const terms = taps.map((t0, k) => {
          const idx = coords.map((c) => clamp(Math.floor(c) + t0));
          const g = b.add('Gather', 13, [cur, b.ints(`i${k}`, idx)], { axis: p.axis });
          return b.add('Mul', 14, [g, b.tensor(`w${k}`, x.dtype, wShape, Float32Array.from(weights, (w) => w[k]))]);
        });
        cur = terms.length === 2 ? b.add('Add', 14, terms, {}, last) : b.add('Sum', 13, terms, {}, last);
      }
      shape[p.axis] = p.outLen;
    });
    return b.done();
  };
}

function resizeAttributes(version: number): Record<string, AttributeDef> {
  const attrs: Record<string, AttributeDef> = { mode: { type: 'string', default: 'nearest', description: 'nearest, linear or cubic (11 on)' } };
  if (version >= 11) {
    attrs.coordinate_transformation_mode = { type: 'string', default: 'half_pixel', description: 'half_pixel, half_pixel_symmetric, pytorch_half_pixel, align_corners or asymmetric' };
    attrs.nearest_mode = { type: 'string', default: 'round_prefer_floor', description: 'round_prefer_floor, round_prefer_ceil, floor or ceil' };
    attrs.cubic_coeff_a = { type: 'float', default: -0.75, description: 'cubic: the coefficient A' };
    attrs.exclude_outside = { type: 'int', default: 0, description: 'cubic: 1 gives taps outside the input weight 0 and renormalises' };
    attrs.extrapolation_value = { type: 'float', default: 0, description: 'tf_crop_and_resize only (refused)' };
  }
  if (version >= 18) {
    attrs.antialias = { type: 'int', default: 0, description: '1 is refused' };
    attrs.axes = { type: 'ints', default: [], description: 'the axes scales or sizes refer to (default all)' };
    attrs.keep_aspect_ratio_policy = { type: 'string', default: 'stretch', description: 'with sizes: stretch, not_larger or not_smaller' };
  }
  return attrs;
}

export const resizeDefinitions: OpDefinition[] = [
  ...versions('Resize', [10, 11, 13, 18], (id) => ({
    description: 'nearest, linear or cubic resize with constant scales or sizes: a composite of Gather per axis (linear and cubic: two or four Gathers, weighted by constant Muls, and an Add or Sum)',
    inputs:
      id.version === 10
        ? [{ name: 'X' }, { name: 'scales' }]
        : [{ name: 'X' }, { name: 'roi', optional: true }, { name: 'scales', optional: true }, { name: 'sizes', optional: true }],
    outputs: [{ name: 'Y' }],
    attributes: resizeAttributes(id.version),
    grad: true,
    expand: expandResize('resize', id.version),
  })),
  ...versions('Upsample', [7, 9], (id) => ({
    description: "Resize's older form (asymmetric coordinates; nearest takes floor(x / scale)): the same composite",
    inputs: id.version >= 9 ? [{ name: 'X' }, { name: 'scales' }] : [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      mode: { type: 'string', default: 'nearest', description: 'nearest or linear (bilinear taken as linear)' },
      ...(id.version < 9 ? { scales: { type: 'floats', description: 'per axis of X, >= 1' } as AttributeDef } : {}),
    },
    grad: true,
    expand: expandResize('upsample', id.version),
  })),
];
