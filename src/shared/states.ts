/** Shared shapes of what the engine reports; the CLI's `--json` output uses them as they are. */

export type Consistency = 'snapshot' | 'quiescent' | 'none';

export interface StateInfo {
  id: number;
  /** ISO 8601, UTC. */
  time: string;
  changedBlocks: number;
  /** Bytes this state's update added to the archive (its file size). */
  storedBytes: number;
  /** Hex BLAKE3 state hash; restore proves itself against it. */
  stateHash: string;
  consistency: Consistency;
  consistencyReason?: string;
}

export interface VerifyProblem {
  /** Archive-relative path of the damaged object. */
  file: string;
  message: string;
  /** States that cannot be restored as recorded because of this problem. */
  states: number[];
}

export interface VerifyReport {
  ok: boolean;
  deep: boolean;
  updatesChecked: number;
  blocksChecked: number;
  bytesChecked: number;
  statesChecked: number;
  problems: VerifyProblem[];
}

export interface RestoreReport {
  state: number;
  target: string;
  rollback: boolean;
  /** Blocks written to the target (for a rollback, only those that differed). */
  blocksWritten: number;
  bytesWritten: number;
  stateHash: string;
  verified: true;
}
