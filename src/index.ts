/**
 * tilesim's public API: what a custom-op module imports (`from 'tilesim'`),
 * and what a program driving sessions uses.
 */
export { Op, GradOp, GradOpInType, OutputGradOnlyGradOp, isGradOp } from './ir/op.js';
export type { GradInOutMapper, OpSettings, AttributeValue } from './ir/op.js';
export type { OperatorIdentifier } from './ir/opid.js';
export type { TensorInfo } from './ir/tensorinfo.js';
export { nelms, fmtInfo, sameInfo } from './ir/tensorinfo.js';
export type { DType } from './ir/dtype.js';
export { Graph } from './ir/graph.js';
export { OpRegistry, Attributes, defineOp, defineOpModule } from './ir/registry.js';
export type { OpDefinition, OpModule, OpCreateArgs, AttributeDef, Lowering, InputLayout, InputUse, OpClass, OpGuard, TypedOpDefinition } from './ir/registry.js';
// The op families the built-ins are written with, for custom ops written the same way (docs/custom-ops.md, "The short form").
export { ArgGradOp, gradOf, gradOut, fwdIn, fwdOut } from './ops/arg-grad.js';
export { UnaryOp, UnaryGradOp, UNARY_SPECS, defineUnaryOp } from './ops/unary.js';
export type { UnarySpec, UnaryGradSpec } from './ops/unary.js';
export { BroadcastBinaryOp, BroadcastArgGradOp, broadcastInputs, sameDType, operand, lowerReduceGrad, lowerElementwiseGrad } from './ops/binary.js';
export { lowerCommutative } from './ops/add.js';
export { LowerContext } from './lower/context.js';
export type { BuildTensor, Slice, TileRange } from './lower/devicegraph.js';
export { mapElementwise, mapBinaryBroadcast } from './lower/elementwise.js';
export { layoutFromReads, MAX_INTERVALS_PER_TILE } from './lower/layout.js';
export type { ReadGroup, ReadLayoutOptions, Run } from './lower/layout.js';
export { reduceLeading } from './lower/reduce.js';
export { mapBroadcast, type Operand, type MapBroadcastOptions } from './lower/broadcast.js';
export { reduceAxes, type ReduceAxesOptions } from './lower/reduce-axes.js';
// The device entry point's API too ('tilesim/device', sim/device-api.ts): codelet modules import it from there.
export type { Codelet, VertexArgs, VertexShape, FieldSpec } from '../sim/codelet.js';
export { regionCount, fieldDType } from '../sim/codelet.js';
export * as estimators from '../sim/codelets/estimators.js';
export { defineCodelet } from '../sim/define.js';
export { defineUnaryCodelet, defineUnaryGradCodelet } from '../sim/unary-codelets.js';
export type { CodeletDef, TypedVertexArgs, TypedVertexShape } from '../sim/define.js';
export type { VertexFields } from './lower/vertex-check.js';
export type { DeviceSpec } from '../sim/device.js';
export { UserError, RunError } from './errors.js';
export { gradcheck } from './autodiff/gradcheck.js';
export type { GradcheckOptions, GradcheckResult } from './autodiff/gradcheck.js';
export { autodiff } from './autodiff/autodiff.js';
export { createRegistry, loadOpModule } from './model/modules.js';
export type { LoadedOpModule } from './model/modules.js';
export { compile, PASSES } from './compile.js';
export type { Compiled, CompileOptions } from './compile.js';
export { run, runGraph, Session, TrainingSession, InferenceSession } from './session.js';
export type { RunOptions, RunResult, GraphRunRequest, StepResult, Feeds } from './session.js';
export { loadConfig, loadConfigText } from './config/load.js';
export { loadDevicePreset, listDevicePresets } from './config/devices.js';
export { readOnnxFile, importOnnx } from './onnx/import.js';
export { exportOnnx } from './onnx/export.js';
