// Everything the bench creates (temp folders, mounts, loop devices) is registered here by name
// and undone in reverse order: at the end, on failure, and on SIGINT/SIGTERM.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { currentChild } from './proc.js';

const actions = [];
let installed = false;

/** Registers an undo step; returns a function that runs it now and forgets it. */
export function onCleanup(label, fn) {
  const entry = { label, fn };
  actions.push(entry);
  return () => {
    const i = actions.indexOf(entry);
    if (i < 0) return;
    actions.splice(i, 1);
    fn();
  };
}

export function cleanupAll() {
  while (actions.length > 0) {
    const { label, fn } = actions.pop();
    try {
      fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup of ${label} failed: ${err.message}\n`);
    }
  }
}

export function installSignalHandlers() {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping and cleaning up\n`);
      const child = currentChild();
      if (child && child.exitCode === null) {
        try {
          child.kill('SIGTERM');
        } catch {
          // already gone
        }
        // Give it a moment to let go of mounts before unmounting them.
        spawnSync('sleep', ['1']);
      }
      cleanupAll();
      process.exit(130);
    });
  }
}

export function unmountSync(dir) {
  const r = spawnSync('umount', [dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    // Busy for a moment (a killed child still closing files): retry once, then lazily.
    spawnSync('sleep', ['1']);
    const again = spawnSync('umount', [dir], { encoding: 'utf8' });
    if (again.status !== 0) {
      const lazy = spawnSync('umount', ['-l', dir], { encoding: 'utf8' });
      if (lazy.status !== 0) throw new Error(`umount ${dir}: ${again.stderr.trim()}`);
    }
  }
}

export function detachLoopSync(device) {
  const r = spawnSync('losetup', ['-d', device], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`losetup -d ${device}: ${r.stderr.trim()}`);
}

export function removeTreeSync(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
}
