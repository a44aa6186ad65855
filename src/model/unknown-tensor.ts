import type { SourceLocation } from '../config/types.js';
import { UserError, closest } from '../errors.js';
import type { Graph } from '../ir/graph.js';

/** A config key naming a tensor the graph does not have: the key, the name, and the closest name it has. */
export function unknownTensor(graph: Graph, name: string, key: string, loc?: SourceLocation): UserError {
  const hint = closest(name, graph.allTensors().map((t) => t.id));
  return new UserError(`${key}: no tensor '${name}' in the graph${hint ? `; did you mean '${hint}'?` : ''}`, loc);
}
