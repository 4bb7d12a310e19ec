import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TidemarkError } from '../../../shared/errors.js';
import { SyncBehind } from '../sync-behind.js';
import { archiveIoError } from './io-errors.js';
import type { ObjectStore, ObjectWriter } from './object-store.js';

/** Marks a file still being written: never listed, removed after a crash. */
export const TEMP_MARK = '.incomplete-';

/** fsyncs a directory so that a rename or unlink in it survives power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fsc.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * `mkdir -p`, with the real reason when it fails. Node's recursive mkdir reports every failure
 * below the deepest existing folder as ENOENT (a read-only disk included), which would read as
 * "missing from the archive"; creating the first missing level alone tells EROFS, EACCES, ENOSPC.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    let first = dir;
    while (path.dirname(first) !== first && !(await exists(path.dirname(first))))
      first = path.dirname(first);
    await fsp.mkdir(first);
    // The level could be made after all (something changed meanwhile): finish the job.
    await fsp.mkdir(dir, { recursive: true });
  }
}

/**
 * Objects as files in a folder (usually on an external disk). An object is written under a
 * temporary name, fsynced, renamed into place and its directory fsynced: a crash leaves either
 * the whole object or a temporary file that `removeIncomplete` deletes.
 */
export class FolderStore implements ObjectStore {
  readonly location: string;
  private readonly handles = new Map<string, FileHandle>();

  constructor(readonly root: string) {
    this.location = root;
  }

  private full(name: string): string {
    if (name.includes('..') || path.isAbsolute(name))
      throw new TidemarkError('internal', `bad object name ${name}`);
    return path.join(this.root, name);
  }

  async create(name: string): Promise<ObjectWriter> {
    const final = this.full(name);
    const dir = path.dirname(final);
    try {
      await makeDirs(dir);
      const temp = path.join(
        dir,
        `${path.basename(final)}${TEMP_MARK}${randomBytes(6).toString('hex')}`,
      );
      const handle = await fsp.open(temp, 'wx');
      return new FolderWriter(name, final, temp, handle);
    } catch (err) {
      throw archiveIoError(err, `creating ${name}`);
    }
  }

  private async handle(name: string): Promise<FileHandle> {
    let handle = this.handles.get(name);
    if (!handle) {
      try {
        handle = await fsp.open(this.full(name), 'r');
      } catch (err) {
        throw archiveIoError(err, name);
      }
      this.handles.set(name, handle);
    }
    return handle;
  }

  async read(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const handle = await this.handle(name);
    const buffer = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw archiveIoError(err, `reading ${name}`);
    }
    if (done < length)
      throw new TidemarkError('archive.corrupt', `${name} is shorter than expected (truncated)`);
    return buffer.subarray(0, length);
  }

  async size(name: string): Promise<number> {
    try {
      return (await fsp.stat(this.full(name))).size;
    } catch (err) {
      throw archiveIoError(err, name);
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await fsp.access(this.full(name));
      return true;
    } catch {
      return false;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const dir = path.posix.dirname(prefix + 'x');
    const base = dir === '.' ? prefix : prefix.slice(dir.length + 1);
    let entries: string[];
    try {
      entries = await fsp.readdir(dir === '.' ? this.root : this.full(dir));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw archiveIoError(err, `listing ${prefix}`);
    }
    return entries
      .filter((e) => e.startsWith(base) && !e.includes(TEMP_MARK))
      .map((e) => (dir === '.' ? e : `${dir}/${e}`))
      .sort();
  }

  async delete(name: string): Promise<void> {
    await this.closeHandle(name);
    try {
      await fsp.rm(this.full(name), { force: true });
      await syncDirectory(path.dirname(this.full(name)));
    } catch (err) {
      throw archiveIoError(err, `deleting ${name}`);
    }
  }

  async removeIncomplete(): Promise<number> {
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name.includes(TEMP_MARK)) {
          await fsp.rm(p, { force: true });
          removed++;
        }
      }
    };
    await walk(this.root);
    return removed;
  }

  private async closeHandle(name: string): Promise<void> {
    const handle = this.handles.get(name);
    if (handle) {
      this.handles.delete(name);
      await handle.close();
    }
  }

  async close(): Promise<void> {
    for (const name of [...this.handles.keys()]) await this.closeHandle(name);
  }
}

class FolderWriter implements ObjectWriter {
  length = 0;
  private closed = false;
  private readonly behind: SyncBehind;

  constructor(
    readonly name: string,
    private readonly final: string,
    private readonly temp: string,
    private readonly handle: FileHandle,
  ) {
    this.behind = new SyncBehind(handle);
  }

  async write(data: Uint8Array): Promise<void> {
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.handle.write(
          data,
          done,
          data.length - done,
          this.length + done,
        );
        done += bytesWritten;
      }
      this.length += data.length;
    } catch (err) {
      throw archiveIoError(err, `writing ${this.name}`);
    }
  }

  async writeAhead(): Promise<void> {
    try {
      await this.handle.datasync();
    } catch (err) {
      throw archiveIoError(err, `writing ${this.name}`);
    }
  }

  syncBehind(): void {
    this.behind.kick();
  }

  async commit(): Promise<void> {
    try {
      // Also fails if a datasync started by syncBehind failed: the kernel may report a failed
      // write-back to one sync only.
      await this.behind.sync();
      await this.handle.close();
      this.closed = true;
      // One writer at a time holds the archive lock, so check-then-rename is put-if-absent here;
      // link() would be atomic but exFAT/FAT backup disks have no hard links.
      if (await exists(this.final)) {
        throw new TidemarkError('archive.corrupt', `${this.name} already exists in the archive`);
      }
      await fsp.rename(this.temp, this.final);
      await syncDirectory(path.dirname(this.final));
    } catch (err) {
      await this.abort();
      throw archiveIoError(err, `committing ${this.name}`);
    }
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.behind.settle();
      await this.handle.close().catch(() => undefined);
    }
    await fsp.rm(this.temp, { force: true }).catch(() => undefined);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}
