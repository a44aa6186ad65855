/** The MLP of issue 12 (784-1024-1024-10, softmax cross entropy, SGD) on a full mk2: the report and trace scale tests run it. */
export const MLP_MK2_YAML = `
name: mlp-mk2
device: mk2
model:
  graph:
    inputs:
      x: {shape: [16, 784]}
      label: {shape: [16], dtype: int32}
    initializers:
      w1: {shape: [784, 1024], init: {normal: {std: 0.05, seed: 1}}}
      b1: {shape: [1024], init: {constant: 0}}
      w2: {shape: [1024, 1024], init: {normal: {std: 0.05, seed: 2}}}
      b2: {shape: [1024], init: {constant: 0}}
      w3: {shape: [1024, 10], init: {normal: {std: 0.05, seed: 3}}}
      b3: {shape: [10], init: {constant: 0}}
    nodes:
      - {op: MatMul, inputs: [x, w1], outputs: [h1]}
      - {op: Add, inputs: [h1, b1], outputs: [a1]}
      - {op: Relu, inputs: [a1], outputs: [r1]}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2]}
      - {op: Add, inputs: [h2, b2], outputs: [a2]}
      - {op: Relu, inputs: [a2], outputs: [r2]}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3]}
      - {op: Add, inputs: [h3, b3], outputs: [logits]}
    outputs: [logits]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}
  label: {random: {distribution: integers, low: 0, high: 9, seed: 4}}
train:
  loss: {type: softmaxCrossEntropy, input: logits, labels: label}
  optimizer: {type: sgd, lr: 0.01}
  steps: 3
`;
