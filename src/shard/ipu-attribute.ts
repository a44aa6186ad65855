/**
 * PopART's virtual graph attribute: an ONNX node's `__ipu_number` (an int)
 * names the IPU it runs on. It is not an attribute of the op, so it is taken
 * off the node's attributes into NodeDecl.ipu before the op sees them.
 */
import type { NodeDecl } from '../config/types.js';
import { UserError } from '../errors.js';

export const IPU_ATTRIBUTE = '__ipu_number';

/** PopART's pipeline stage attribute (model.pipelining): taken into NodeDecl.pipelineStage the same way. */
export const PIPELINE_STAGE_ATTRIBUTE = '__pipeline_stage';

/** Move `__ipu_number` and `__pipeline_stage` from the node's attributes to node.ipu and node.pipelineStage. */
export function takeIpuAttribute(node: NodeDecl): void {
  takePipelineStage(node);
  if (!(IPU_ATTRIBUTE in node.attributes)) return;
  const { [IPU_ATTRIBUTE]: value, ...rest } = node.attributes;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new UserError(`node '${node.name}' (${node.op}): attribute ${IPU_ATTRIBUTE} must be a non-negative integer (the IPU the op runs on), got ${JSON.stringify(value)}`, node.loc);
  }
  if (node.ipu !== undefined && node.ipu !== value) {
    throw new UserError(`node '${node.name}' (${node.op}): ipu ${node.ipu} and attribute ${IPU_ATTRIBUTE} ${value} disagree; give one`, node.loc);
  }
  node.attributes = rest;
  node.ipu = value;
}

function takePipelineStage(node: NodeDecl): void {
  if (!(PIPELINE_STAGE_ATTRIBUTE in node.attributes)) return;
  const { [PIPELINE_STAGE_ATTRIBUTE]: value, ...rest } = node.attributes;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new UserError(`node '${node.name}' (${node.op}): attribute ${PIPELINE_STAGE_ATTRIBUTE} must be a non-negative integer (the op's pipeline stage), got ${JSON.stringify(value)}`, node.loc);
  }
  if (node.pipelineStage !== undefined && node.pipelineStage !== value) {
    throw new UserError(`node '${node.name}' (${node.op}): pipelineStage ${node.pipelineStage} and attribute ${PIPELINE_STAGE_ATTRIBUTE} ${value} disagree; give one`, node.loc);
  }
  node.attributes = rest;
  node.pipelineStage = value;
}
