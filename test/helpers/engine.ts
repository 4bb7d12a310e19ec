import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineHost, type EngineHostOptions } from '../../src/main/engine-host/engine-host.js';

/** The worker as `npm run build:node` compiled it: worker threads cannot load .ts files. */
export const WORKER_URL = new URL(
  `file://${path.resolve(import.meta.dirname, '../../out/node/main/engine-host/engine-worker.js')}`,
);

export function engineHost(options: Omit<EngineHostOptions, 'workerUrl'> = {}): EngineHost {
  return new EngineHost({ ...options, workerUrl: WORKER_URL });
}

/** A disk image of `mib` MiB of random bytes (incompressible, so every block is stored). */
export function randomImage(file: string, mib: number): void {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
}

/** Overwrites `bytes` bytes at `offset` with random data. */
export function scribble(file: string, offset: number, bytes: number): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, randomFillSync(Buffer.alloc(bytes)), 0, bytes, offset);
  fs.closeSync(fd);
}
