import type { Timeline } from './kill-at.mjs';

export const KEEP_NEWEST_ONLY: string[];
export const DROP_ALL_BUT_PINNED: string[];

export interface PruneBuild {
  kind: 'device' | 'volume';
  archive: string;
  shas: string[];
  kept: number[];
}

export function buildPruneArchive(
  cli: string,
  dir: string,
  options?: { states?: number; mib?: number; pins?: number[]; kind?: 'device' | 'volume' },
): PruneBuild;

export function killPruneOnce(
  cli: string,
  build: PruneBuild,
  work: string,
  killMs: number,
  options?: { thorough?: boolean },
): Promise<{ killed: boolean; listedAfterKill: number[]; redoDropped: number; times: Timeline }>;

export function treeDigest(root: string): string;
