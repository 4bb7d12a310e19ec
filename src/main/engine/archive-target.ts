import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import { prepareEmptyDir } from './archive-dir.js';
import { MANIFEST_NAME, parseManifest, type ArchiveManifest } from './format/archive-manifest.js';
import { FolderStore } from './storage/folder-store.js';
import type { ObjectStore } from './storage/object-store.js';
import { remoteAccess, s3Settings } from './storage/remote-access.js';
import { isS3Name, parseS3Name } from './storage/s3-name.js';
import type { S3Store } from './storage/s3-store.js';

export type ClosableStore = ObjectStore & { close(): Promise<void> };

/**
 * Where an archive's objects live and where its local files (catalog, map cache, lock, volume
 * journal) go. For a folder both are the folder. For `s3://BUCKET/PREFIX` the objects are in the
 * bucket and the local files in a per-user folder keyed by endpoint, bucket and prefix: they are
 * only an index and a cache, rebuilt from the bucket alone on a fresh machine.
 */
export interface ArchiveTarget {
  /** As the user named it: an absolute folder path or the s3:// URL. */
  name: string;
  remote: boolean;
  localDir: string;
  openStore(): ClosableStore;
}

function stateBase(): string {
  return (
    remoteAccess().stateDir ??
    process.env.TIDEMARK_STATE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tidemark')
  );
}

/**
 * Where the catalog, map cache and volume journal of an archive go. They hold block hashes and
 * paths, so for an encrypted folder archive they stay on this machine (keyed by the archive id)
 * instead of lying in plaintext beside the ciphertext on the backup disk; like for s3:// they
 * are rebuilt from the updates where missing. The lock stays with the archive.
 */
export function indexDirOf(target: ArchiveTarget, manifest: ArchiveManifest): string {
  if (target.remote || !manifest.encryption) return target.localDir;
  // An extra secondary shares the archive id of the archive it mirrors, not its index.
  const key = manifest.replicaId
    ? `${manifest.archiveId}-${manifest.replicaId}`
    : manifest.archiveId;
  return path.join(stateBase(), 'encrypted', key);
}

export async function archiveTarget(name: string): Promise<ArchiveTarget> {
  if (!isS3Name(name)) {
    const dir = path.resolve(name);
    return { name: dir, remote: false, localDir: dir, openStore: () => new FolderStore(dir) };
  }
  const address = parseS3Name(name);
  const { S3Store } = await import('./storage/s3-store.js');
  const normalised = `s3://${address.bucket}/${address.prefix}`;
  const settings = s3Settings(normalised);
  const key = createHash('sha256')
    .update(`${settings.endpoint ?? 'aws'}\n${address.bucket}\n${address.prefix}`)
    .digest('hex')
    .slice(0, 16);
  const base = stateBase();
  return {
    name: normalised,
    remote: true,
    localDir: path.join(base, 'remote', `${address.bucket}-${key}`),
    openStore: () => new S3Store(address, settings),
  };
}

/** Whether something that may be an archive is there (always worth trying for a remote one). */
export function archiveMayExist(name: string): boolean {
  return isS3Name(name) || fs.existsSync(name);
}

/** The manifest of the archive at `target`, read through its store. */
export async function readTargetManifest(
  target: ArchiveTarget,
  store: ObjectStore,
): Promise<ArchiveManifest> {
  if (!(await store.exists(MANIFEST_NAME))) {
    const any = (await store.list('')).length > 0;
    throw new TidemarkError(
      any ? 'archive.foreign' : 'archive.not-found',
      any
        ? `${target.name} is not a Tidemark archive (no ${MANIFEST_NAME})`
        : `no archive at ${target.name}`,
    );
  }
  const size = await store.size(MANIFEST_NAME);
  return parseManifest(await store.read(MANIFEST_NAME, 0, size), target.name);
}

/**
 * Checks that `target` may receive a new archive of `primaryPath` (see prepareEmptyDir); for a
 * remote one the bucket is created if missing and the prefix must hold no object. Returns whether
 * the local folder was created.
 */
export async function prepareTarget(
  target: ArchiveTarget,
  primaryPath: string,
  nextStep: string,
): Promise<boolean> {
  if (!target.remote) return prepareEmptyDir(target.localDir, primaryPath, nextStep);
  const store = target.openStore() as S3Store;
  try {
    await store.ensureBucket();
    if (await store.exists(MANIFEST_NAME)) {
      const m = await readTargetManifest(target, store);
      throw new TidemarkError(
        m.primary.path === primaryPath ? 'archive.not-empty' : 'archive.other-primary',
        m.primary.path === primaryPath
          ? `${target.name} already holds an archive of ${primaryPath}: use ${nextStep}`
          : `${target.name} holds the archive of another primary (${m.primary.path})`,
      );
    }
    if ((await store.list('')).length > 0)
      throw new TidemarkError(
        'archive.not-empty',
        `${target.name} is not empty and holds no Tidemark archive: choose an empty prefix`,
      );
  } finally {
    await store.close();
  }
  // Local files of an earlier archive under the same name are an index of nothing now.
  await fsp.rm(target.localDir, { recursive: true, force: true });
  await fsp.mkdir(target.localDir, { recursive: true });
  return true;
}

/** Deletes the objects a failed init wrote to a remote archive. */
export async function removeRemoteObjects(target: ArchiveTarget): Promise<void> {
  if (!target.remote) return;
  const store = target.openStore();
  try {
    for (const name of await store.list('')) await store.delete(name).catch(() => undefined);
    await store.removeIncomplete().catch(() => undefined);
  } finally {
    await store.close();
  }
}
