/**
 * tilesim's device entry point, `import ... from 'tilesim/device'`: all a
 * codelet module may import. A custom op is an op module (host side, `from
 * 'tilesim'`) plus a codelet module (this entry only), as Poplar keeps
 * codelets in their own file (`graph.addCodelets("codelets.cpp")`): pool
 * workers load only the codelet module, so no host code runs there.
 *
 * Everything here comes from sim/ and imports nothing from src/.
 */
export { defineCodelet, shortCodeletName } from './define.js';
export type {
  ArraySpecs,
  ArrayType,
  ArrayValues,
  CodeletDef,
  CodeletDefinition,
  DtypesOf,
  ElemOf,
  FieldRegion,
  FieldSpecs,
  FieldView,
  ParamSpecs,
  ParamType,
  ParamValues,
  TypedVertexArgs,
  TypedVertexShape,
} from './define.js';
export type { Codelet, ElemArray, FieldDirection, FieldSpec, VertexArgs, VertexShape } from './codelet.js';
export { regionCount, fieldDType } from './codelet.js';
export * as estimators from './codelets/estimators.js';
export type { DeviceSpec } from './device.js';
export type { DeviceDType, Region, FieldValue } from './program.js';
// The unary family's codelet shapes (the short form of a custom elementwise op).
export { defineUnaryCodelet, defineUnaryGradCodelet } from './unary-codelets.js';
export type { UnaryGradFields } from './unary-codelets.js';
export type { LoopCost } from './codelets/estimators.js';
// A 1-D elementwise codelet's multi-region (2-D) form, which mapElementwise places on tiles holding several runs.
export { regionCounts, regionsInPlace, withMultiRegion } from './codelets/multi-region.js';
