/** Milliseconds from spawn to each step of a run, as seen from outside. */
export interface Timeline {
  lockAt: number;
  commitAt: number;
  endAt: number;
}

export interface KillAt {
  ms: number;
  after: 'start' | 'lock' | 'commit';
}

export interface Killed {
  times: Timeline;
  killed: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runAndKill(
  cli: string,
  args: string[],
  kill: KillAt,
  arch: string,
  nextId: number,
): Promise<Killed>;
export function lockHolder(arch: string): number | undefined;
export function updateFile(id: number): string;
