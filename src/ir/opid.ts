/** PopART's OperatorIdentifier: an op type is named by domain, type and version. */
export interface OperatorIdentifier {
  domain: string;
  type: string;
  version: number;
}

/** The ONNX default domain, written "" in ONNX files. */
export const ONNX_DOMAIN = 'ai.onnx';
export const GRAPHCORE_DOMAIN = 'ai.graphcore';

export function normDomain(domain: string): string {
  return domain === '' ? ONNX_DOMAIN : domain;
}

export function opidKey(id: Pick<OperatorIdentifier, 'domain' | 'type'>): string {
  return `${normDomain(id.domain)}::${id.type}`;
}

export function fmtOpid(id: OperatorIdentifier): string {
  return `${normDomain(id.domain)}::${id.type}:${id.version}`;
}
