// Running the measured commands: wall time, peak RSS (through /usr/bin/time) and clean failures.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The child being waited for, so that an interrupt can stop it before cleaning up. */
let current = null;

export function currentChild() {
  return current;
}

/** Runs a command to completion; rejects with its stderr when it fails (unless `allowFail`). */
export function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: { ...process.env, ...(options.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current = child;
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => {
      current = null;
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      current = null;
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      const result = {
        code,
        signal,
        wall,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if ((code !== 0 || signal) && !options.allowFail) {
        reject(
          new Error(
            `${[cmd, ...args].join(' ')} failed (${signal ?? `exit ${code}`}): ${result.stderr.trim().slice(-2000)}`,
          ),
        );
      } else resolve(result);
    });
  });
}

/**
 * Runs a command under /usr/bin/time: wall time measured here around the whole process, peak
 * RSS (VmHWM of the child, in bytes) as reported by getrusage through time(1).
 */
export async function timed(cmd, args, options = {}) {
  const statFile = path.join(options.scratch ?? '/tmp', `time-${process.pid}-${Date.now()}.txt`);
  try {
    const result = await run(
      '/usr/bin/time',
      ['-f', '%e %M', '-o', statFile, cmd, ...args],
      options,
    );
    const [, rssKb] = fs.readFileSync(statFile, 'utf8').trim().split(/\s+/).slice(-2);
    return { ...result, maxRss: Number(rssKb) * 1024 };
  } finally {
    fs.rmSync(statFile, { force: true });
  }
}

export function runSync(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options });
  if ((r.status !== 0 || r.error) && !options.allowFail) {
    throw new Error(`${[cmd, ...args].join(' ')} failed: ${r.error?.message ?? r.stderr?.trim()}`);
  }
  return r;
}

/** Writes dirty pages and empties the page cache, so the next read comes from the disk. */
export function dropCaches() {
  runSync('sync', []);
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

export function canDropCaches() {
  try {
    dropCaches();
    return true;
  } catch {
    return false;
  }
}

/** Reads a file (or every file of a folder) so that it sits in the page cache. */
export function warm(target) {
  const st = fs.statSync(target);
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(target)) warm(path.join(target, e));
    return;
  }
  if (!st.isFile()) return;
  const fd = fs.openSync(target, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** Bytes a folder takes on disk, as `du -sb` counts them (apparent sizes). */
export function duBytes(dir) {
  const r = runSync('du', ['-sb', dir]);
  return Number(r.stdout.split(/\s+/)[0]);
}

/** Bytes allocated on disk (sparse files count what they hold). */
export function duAllocated(target) {
  const r = runSync('du', ['-s', '--block-size=1', target]);
  return Number(r.stdout.split(/\s+/)[0]);
}

export function which(cmd) {
  for (const dir of (process.env.PATH ?? '')
    .split(':')
    .concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}
