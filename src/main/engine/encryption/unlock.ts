import * as fs from 'node:fs';
import { TidemarkError } from '../../../shared/errors.js';
import type { ClosableStore } from '../archive-target.js';
import type { ArchiveManifest } from '../format/archive-manifest.js';
import { remoteAccess, targetAccess } from '../storage/remote-access.js';
import { checkPassphrase, newEncryption, unwrapKey, type EncryptionInfo } from './archive-key.js';
import { EncryptedStore } from './encrypted-store.js';

/**
 * The passphrase of the archive `where` (its own, set by the app) or the one given to this
 * process: --passphrase-file, TIDEMARK_PASSPHRASE(_FILE).
 */
export function givenPassphrase(where?: string): string | undefined {
  const own = targetAccess(where)?.passphrase;
  if (own !== undefined) return own;
  const access = remoteAccess();
  if (access.passphrase !== undefined) return access.passphrase;
  if (process.env.TIDEMARK_PASSPHRASE) return process.env.TIDEMARK_PASSPHRASE;
  const file = process.env.TIDEMARK_PASSPHRASE_FILE;
  if (file) {
    try {
      return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch {
      throw new TidemarkError('usage', `cannot read TIDEMARK_PASSPHRASE_FILE ${file}`);
    }
  }
  return undefined;
}

/** The store through which an archive's objects are read and written: decrypting if need be. */
export async function unlockStore(
  store: ClosableStore,
  manifest: ArchiveManifest,
  where: string,
): Promise<ClosableStore> {
  if (!manifest.encryption) return store;
  const passphrase = checkPassphrase(givenPassphrase(where), where);
  const key = await unwrapKey(manifest.encryption, passphrase, manifest.archiveId, where);
  return new EncryptedStore(store, key, manifest.encryption.chunkSize);
}

/**
 * Whether a new archive is encrypted, and its key: on for s3:// archives unless --no-encrypt,
 * off for folders unless --encrypt. Asked before anything is written, so a missing passphrase
 * costs nothing.
 */
export async function encryptionForInit(
  remote: boolean,
  archiveId: string,
  where: string,
): Promise<EncryptionInfo | undefined> {
  const wanted = targetAccess(where)?.encrypt ?? remoteAccess().encrypt ?? remote;
  if (!wanted) return undefined;
  const passphrase = givenPassphrase(where);
  if (passphrase === undefined || passphrase === '')
    throw new TidemarkError(
      'archive.passphrase',
      `${where} would be encrypted${remote ? ' (the default for s3:// archives)' : ''}: give a passphrase with --passphrase-file FILE or TIDEMARK_PASSPHRASE${remote ? ', or choose --no-encrypt' : ''}`,
    );
  return (await newEncryption(passphrase, archiveId)).info;
}
