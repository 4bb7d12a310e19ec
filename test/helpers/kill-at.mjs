// Shared by test/node/crash.test.ts and test/torture/kill-snapshot.mjs (plain JS so that the
// torture script runs under Node without a build); types in kill-at.d.mts.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Runs the CLI at `cli` and SIGKILLs it `kill.ms` after it started, after it took the archive
 * lock (`kill.after: 'lock'`, which leaves out the jitter of Node's start-up), or after update
 * `nextId` appeared under its name (`'commit'`); `kill.ms: Infinity` never kills. It watches the
 * archive every millisecond and tells when the lock was taken and when the update was committed.
 */
export function runAndKill(cli, args, kill, arch, nextId) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const times = { lockAt: NaN, commitAt: NaN, endAt: NaN };
    const committed = path.join(arch, 'updates', updateFile(nextId));
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let sent = false;
    let timer;
    const arm = () => {
      if (kill.ms === Infinity) return;
      timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) sent = child.kill('SIGKILL');
      }, kill.ms);
    };
    if (kill.after === 'start') arm();
    const watch = setInterval(() => {
      const now = performance.now() - started;
      if (Number.isNaN(times.lockAt) && lockHolder(arch) === child.pid) {
        times.lockAt = now;
        if (kill.after === 'lock') arm();
      }
      if (Number.isNaN(times.commitAt) && fs.existsSync(committed)) {
        times.commitAt = now;
        if (kill.after === 'commit') arm();
      }
    }, 1);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(watch);
      times.endAt = performance.now() - started;
      resolve({ code, signal, killed: sent && signal === 'SIGKILL', stdout, stderr, times });
    });
  });
}

/** The pid in the archive's lock file (a killed writer's stays there until the next one runs). */
export function lockHolder(arch) {
  try {
    return JSON.parse(fs.readFileSync(path.join(arch, 'lock'), 'utf8')).pid;
  } catch {
    return undefined;
  }
}

export const updateFile = (id) => `${String(id).padStart(10, '0')}.tmu`;
