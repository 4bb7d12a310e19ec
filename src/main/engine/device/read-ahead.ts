/**
 * Reads a device primary from its start before its scan begins, only to fill the page cache: a
 * `tidemark snapshot` spends its first ~0.2 s loading the engine and opening the archive, time
 * in which a cold disk can deliver a good part of the device. The scan still reads every byte
 * itself (the read-ahead's data is thrown away), so this never changes what the scan sees, only
 * how soon: the scan stops it when it starts, before reading anything.
 */
import * as fs from 'node:fs';

const READ_BYTES = 2 << 20;
/** Beyond this the scan has surely started, or failed to: a bound on wasted reads. */
const MAX_BYTES = 1 << 30;
/**
 * A device already in the page cache gains nothing and would cost a core's copying: a few
 * 4 KiB reads spread over its first GiB tell. One from the disk took 60 µs to 80 ms here,
 * one from the cache (or from a hole of a sparse image) 6–22 µs; three slow ones of eight mean
 * a cold device (one or two may be a busy machine's hiccups).
 */
const PROBES = 8;
const PROBE_SPAN = 1 << 30;
const SLOW_NS = 40_000n;
const SLOW_PROBES = 3;

const running = new Map<string, () => void>();

/** Starts reading `file` sequentially unless it is in the page cache; an unreadable file is left. */
export function startReadAhead(file: string): void {
  if (running.has(file)) return;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
    if (isCached(fd)) {
      fs.closeSync(fd);
      return;
    }
  } catch {
    return;
  }
  let stopped = false;
  let next = 0;
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  // One read in flight is enough: the kernel reads ahead of a sequential reader on its own.
  const issue = (): void => {
    if (stopped || next >= MAX_BYTES) {
      fs.close(fd, () => undefined);
      running.delete(file);
      return;
    }
    const at = next;
    next += READ_BYTES;
    fs.read(fd, buffer, 0, READ_BYTES, at, (err, bytesRead) => {
      if (err || bytesRead < READ_BYTES) stopped = true;
      issue();
    });
  };
  running.set(file, () => {
    stopped = true;
  });
  issue();
}

function isCached(fd: number): boolean {
  const probe = Buffer.allocUnsafe(4096);
  // The first read of a process pays for more than the read itself: not timed.
  fs.readSync(fd, probe, 0, 1, 0);
  let slow = 0;
  for (let i = 0; i < PROBES; i++) {
    const at = Math.floor(((2 * i + 1) * PROBE_SPAN) / (2 * PROBES) / 4096) * 4096;
    const started = process.hrtime.bigint();
    fs.readSync(fd, probe, 0, probe.length, at);
    if (process.hrtime.bigint() - started > SLOW_NS && ++slow === SLOW_PROBES) return false;
  }
  return true;
}

/** Stops the read-ahead of `file` (a read in flight finishes on its own). */
export function stopReadAhead(file: string): void {
  running.get(file)?.();
}

/** Stops every read-ahead (a command that ends before its scan started). */
export function stopAllReadAhead(): void {
  for (const stop of running.values()) stop();
}
