import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt } from 'node:crypto';
import { TidemarkError } from '../../../shared/errors.js';

/** What the manifest of an encrypted archive holds about its key (see docs/FORMAT.md). */
export interface EncryptionInfo {
  cipher: 'aes-256-gcm';
  /** Plaintext bytes per authenticated chunk of an object. */
  chunkSize: number;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  /** base64 of IV (12) | AES-256-GCM of the 32-byte data key | tag (16), under the scrypt key. */
  wrappedKey: string;
}

export const CHUNK_SIZE = 64 * 1024;
// 128 MiB of memory and ~0.3 s per unlock here: costly for guessing, cheap for one backup run.
const KDF = { N: 1 << 17, r: 8, p: 1 };

function deriveKek(passphrase: string, kdf: EncryptionInfo['kdf']): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase.normalize('NFC'),
      Buffer.from(kdf.salt, 'base64'),
      32,
      { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

function aad(archiveId: string): Buffer {
  return Buffer.from(`tidemark data key ${archiveId}`, 'utf8');
}

export function checkPassphrase(passphrase: string | undefined, where: string): string {
  if (passphrase === undefined || passphrase === '')
    throw new TidemarkError(
      'archive.passphrase',
      `${where} is encrypted: give its passphrase with --passphrase-file FILE or TIDEMARK_PASSPHRASE`,
    );
  return passphrase;
}

/** A new random data key for an archive, wrapped under `passphrase`. */
export async function newEncryption(
  passphrase: string,
  archiveId: string,
): Promise<{ info: EncryptionInfo; key: Buffer }> {
  if (passphrase.length < 8)
    throw new TidemarkError('usage', 'the passphrase must have at least 8 characters');
  const kdf = { name: 'scrypt' as const, ...KDF, salt: randomBytes(16).toString('base64') };
  const kek = await deriveKek(passphrase, kdf);
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(aad(archiveId));
  const wrapped = Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]);
  return {
    info: {
      cipher: 'aes-256-gcm',
      chunkSize: CHUNK_SIZE,
      kdf,
      wrappedKey: wrapped.toString('base64'),
    },
    key,
  };
}

/**
 * Data keys this process unwrapped, by what unwrapped them: the app and `tidemark serve` open an
 * archive for every interval, and each scrypt costs ~0.65 s of a core and 128 MiB here. Only in
 * memory, beside the passphrase the process holds anyway.
 */
const unwrapped = new Map<string, Promise<Buffer>>();

/** The archive's data key; a wrong passphrase fails the key's authentication: a clear error. */
export function unwrapKey(
  info: EncryptionInfo,
  passphrase: string,
  archiveId: string,
  where: string,
): Promise<Buffer> {
  const id = createHash('sha256')
    .update(JSON.stringify([archiveId, info.wrappedKey, info.kdf, passphrase.normalize('NFC')]))
    .digest('base64');
  let key = unwrapped.get(id);
  if (!key) {
    key = unwrapOnce(info, passphrase, archiveId, where);
    unwrapped.set(id, key);
    key.catch(() => unwrapped.delete(id));
  }
  return key;
}

async function unwrapOnce(
  info: EncryptionInfo,
  passphrase: string,
  archiveId: string,
  where: string,
): Promise<Buffer> {
  const kek = await deriveKek(passphrase, info.kdf);
  const wrapped = Buffer.from(info.wrappedKey, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
    decipher.setAAD(aad(archiveId));
    decipher.setAuthTag(wrapped.subarray(wrapped.length - 16));
    return Buffer.concat([
      decipher.update(wrapped.subarray(12, wrapped.length - 16)),
      decipher.final(),
    ]);
  } catch {
    throw new TidemarkError(
      'archive.passphrase',
      `wrong passphrase for the encrypted archive ${where}`,
    );
  }
}

export function isEncryptionInfo(v: unknown): v is EncryptionInfo {
  const e = v as EncryptionInfo;
  return (
    e?.cipher === 'aes-256-gcm' &&
    Number.isInteger(e.chunkSize) &&
    e.chunkSize >= 4096 &&
    e.chunkSize <= 1 << 24 &&
    e.kdf?.name === 'scrypt' &&
    [e.kdf.N, e.kdf.r, e.kdf.p].every((n) => Number.isInteger(n) && n > 0) &&
    e.kdf.N <= 1 << 20 &&
    typeof e.kdf.salt === 'string' &&
    typeof e.wrappedKey === 'string'
  );
}
