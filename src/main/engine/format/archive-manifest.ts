import { TidemarkError } from '../../../shared/errors.js';
import { checkFormatVersion, FORMAT_VERSION } from './version.js';

export const MANIFEST_NAME = 'tidemark.json';
export const MANIFEST_FORMAT = 'tidemark-archive';

export type PrimaryKind = 'device';

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
}

export function newManifest(fields: Omit<ArchiveManifest, 'format' | 'version'>): ArchiveManifest {
  return { format: MANIFEST_FORMAT, version: FORMAT_VERSION, ...fields };
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
  checkFormatVersion(m.version, `the archive at ${where}`);
  const valid =
    typeof m.archiveId === 'string' &&
    Number.isInteger(m.blockSize) &&
    m.blockSize > 0 &&
    m.primary?.kind === 'device' &&
    typeof m.primary.path === 'string' &&
    Number.isInteger(m.primary.size);
  if (!valid)
    throw new TidemarkError(
      'archive.corrupt',
      `${where}: the archive's ${MANIFEST_NAME} is incomplete`,
    );
  return m;
}
