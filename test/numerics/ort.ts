/** onnxruntime-node as the independent numerics oracle: run one ONNX node on given inputs. */
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export interface OrtNode {
  opType: string;
  domain?: string;
  attributes?: Record<string, number>;
  inputs: Record<string, { shape: number[]; data: Float32Array }>;
  outputs: string[];
  opset?: number;
}

export async function runOrt(node: OrtNode): Promise<Record<string, Float32Array>> {
  const valueInfo = (name: string, shape?: number[]) => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: shape ? { dim: shape.map((d) => ({ dimValue: d })) } : undefined } },
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: node.opset ?? 18 }],
    graph: {
      name: 'oracle',
      node: [
        {
          opType: node.opType,
          domain: node.domain ?? '',
          input: Object.keys(node.inputs),
          output: node.outputs,
          attribute: Object.entries(node.attributes ?? {}).map(([name, f]) => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f })),
        },
      ],
      input: Object.entries(node.inputs).map(([n, v]) => valueInfo(n, v.shape)),
      output: node.outputs.map((n) => valueInfo(n)),
    },
  });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const feeds: Record<string, ort.Tensor> = {};
  for (const [n, v] of Object.entries(node.inputs)) feeds[n] = new ort.Tensor('float32', v.data, v.shape);
  const result = await session.run(feeds);
  const out: Record<string, Float32Array> = {};
  for (const n of node.outputs) out[n] = result[n].data as Float32Array;
  await session.release();
  return out;
}
