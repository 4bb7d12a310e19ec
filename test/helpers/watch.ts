import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './cli.js';

/** A `tidemark watch` child process whose JSON lines are collected as they come. */
export class WatchProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  stderr = '';
  private readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(archive: string, every: string, extra: string[] = []) {
    this.child = spawn(
      process.execPath,
      [CLI, 'watch', archive, '--every', every, '--json', ...extra],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buffered = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
        buffered = buffered.slice(nl + 1);
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => resolve({ code, signal })),
    );
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Waits until a line satisfies `test` (after `from` lines), or fails after `ms`. */
  async waitFor(
    test: (line: Record<string, unknown>) => boolean,
    ms = 20_000,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const end = Date.now() + ms;
    for (;;) {
      const found = this.lines.slice(from).find(test);
      if (found) return found;
      if (Date.now() > end)
        throw new Error(
          `watch: no matching line in ${ms} ms; lines ${JSON.stringify(this.lines)}; stderr ${this.stderr}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
