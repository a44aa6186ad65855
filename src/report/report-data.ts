/** What report.html is drawn from: everything a run folder holds (so `sim report` redraws it from the folder alone). */
import type { LivenessRow } from './liveness.js';
import type { ProgramRow, ProgramTileRow } from './program-view.js';
import type { Summary } from './summary.js';
import type { TensorRow } from './tensors.js';
import type { ProfileTables } from './types.js';

export interface ReportData {
  summary: Summary;
  tables: ProfileTables;
  liveness: LivenessRow[];
  /** The batch program's leaf steps, one step's cycles (profile/program.csv). */
  program: ProgramRow[];
  /** Per program step, the tiles it uses (profile/program-tiles.csv). */
  programTiles: ProgramTileRow[];
  /** The largest tensors (profile/tensors.csv; see selectTensors). */
  tensors: TensorRow[];
}
