import { TidemarkError } from '../../../shared/errors.js';
import { isEncryptionInfo, type EncryptionInfo } from '../encryption/archive-key.js';
import {
  checkFormatVersion,
  ENCRYPTED_MANIFEST_VERSION,
  ENCRYPTED_REPLICA_MANIFEST_VERSION,
  FORMAT_VERSION,
} from './version.js';

export const MANIFEST_NAME = 'tidemark.json';
export const MANIFEST_FORMAT = 'tidemark-archive';

export type PrimaryKind = 'device' | 'volume';

/** What a volume archive remembers about how its tree is captured. */
export interface VolumeSettings {
  /** Glob patterns (relative to the tree) left out of every state, the defaults included. */
  excludes: string[];
  /** Shell commands run before and after each point; a failing pre-hook skips the point. */
  preHook?: string;
  postHook?: string;
  /** The tree was a mount point at init: a point refuses it while nothing is mounted there. */
  mountPoint?: boolean;
}

/** Written once at init; says what the archive protects and how. */
export interface ArchiveManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  archiveId: string;
  createdAt: string;
  blockSize: number;
  primary: {
    kind: PrimaryKind;
    /** Absolute path of the primary when the archive was made. */
    path: string;
    size: number;
  };
  /** Only for `primary.kind` "volume". */
  volume?: VolumeSettings;
  /** Only for an encrypted archive (manifest version 2): how its data key is kept. */
  encryption?: EncryptionInfo;
  /**
   * Only for an extra secondary made by `secondary add` (fan-out): it shares `archiveId` with the
   * archive it mirrors, and this tells its machine-local files apart from that archive's.
   */
  replicaId?: string;
}

export function newManifest(fields: Omit<ArchiveManifest, 'format' | 'version'>): ArchiveManifest {
  return {
    format: MANIFEST_FORMAT,
    version: !fields.encryption
      ? FORMAT_VERSION
      : fields.replicaId
        ? ENCRYPTED_REPLICA_MANIFEST_VERSION
        : ENCRYPTED_MANIFEST_VERSION,
    ...fields,
  };
}

export function parseManifest(bytes: Buffer, where: string): ArchiveManifest {
  let m: ArchiveManifest;
  try {
    m = JSON.parse(bytes.toString('utf8')) as ArchiveManifest;
  } catch {
    throw new TidemarkError(
      'archive.corrupt',
      `${where}: the archive's ${MANIFEST_NAME} is unreadable`,
    );
  }
  if (m?.format !== MANIFEST_FORMAT) {
    throw new TidemarkError('archive.foreign', `${where} is not a Tidemark archive`);
  }
  checkFormatVersion(m.version, `the archive at ${where}`, ENCRYPTED_REPLICA_MANIFEST_VERSION);
  if (
    (m.version === ENCRYPTED_REPLICA_MANIFEST_VERSION) !==
    (m.encryption !== undefined && m.replicaId !== undefined)
  )
    throw new TidemarkError(
      'archive.corrupt',
      `${where}: the archive's ${MANIFEST_NAME} is incomplete (replica)`,
    );
  if (m.version >= ENCRYPTED_MANIFEST_VERSION !== (m.encryption !== undefined))
    throw new TidemarkError(
      'archive.corrupt',
      `${where}: the archive's ${MANIFEST_NAME} is incomplete (encryption)`,
    );
  if (m.encryption !== undefined && !isEncryptionInfo(m.encryption))
    throw new TidemarkError(
      'archive.newer-format',
      `the archive at ${where} is encrypted in a way this Tidemark does not know: update Tidemark`,
    );
  const kind: unknown = m.primary?.kind;
  if (typeof kind === 'string' && kind !== 'device' && kind !== 'volume') {
    // A kind of primary added after this build: refuse it clearly rather than misread it.
    throw new TidemarkError(
      'archive.newer-format',
      `the archive at ${where} protects a primary of kind "${kind}", unknown to this Tidemark: update Tidemark`,
    );
  }
  const valid =
    typeof m.archiveId === 'string' &&
    Number.isInteger(m.blockSize) &&
    m.blockSize > 0 &&
    (kind === 'device' || (kind === 'volume' && Array.isArray(m.volume?.excludes))) &&
    typeof m.primary.path === 'string' &&
    Number.isInteger(m.primary.size) &&
    // It names a local folder: never a path.
    (m.replicaId === undefined || /^[0-9a-f]{16}$/.test(String(m.replicaId)));
  if (!valid)
    throw new TidemarkError(
      'archive.corrupt',
      `${where}: the archive's ${MANIFEST_NAME} is incomplete`,
    );
  return m;
}
