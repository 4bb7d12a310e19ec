// Jobs and settings, persisted in the user data dir (jobs.json, settings.json).
import * as path from 'node:path';
import { z } from 'zod';
import type { Settings } from '../../shared/api.js';
import { DEFAULT_CACHE_LIMIT_BYTES } from '../../shared/cache.js';
import { jobConfigSchema, type JobConfig } from '../../shared/jobs.js';
import { readJson, writeJsonAtomic } from './atomic-file.js';

const jobsFileSchema = z.object({ version: z.literal(1), jobs: z.array(jobConfigSchema) });
const settingsSchema = z.object({
  pausedUntil: z.string().nullable(),
  notifications: z.boolean(),
  // Settings files written before the local cache came have no limit: the default applies.
  cacheLimitBytes: z.number().int().positive().default(DEFAULT_CACHE_LIMIT_BYTES),
});

export const DEFAULT_SETTINGS: Settings = {
  pausedUntil: null,
  notifications: true,
  cacheLimitBytes: DEFAULT_CACHE_LIMIT_BYTES,
};

export class ConfigStore {
  constructor(readonly dataDir: string) {}

  private get jobsFile(): string {
    return path.join(this.dataDir, 'jobs.json');
  }

  private get settingsFile(): string {
    return path.join(this.dataDir, 'settings.json');
  }

  async loadJobs(): Promise<JobConfig[]> {
    return (await readJson(this.jobsFile, jobsFileSchema, { version: 1, jobs: [] })).jobs;
  }

  async saveJobs(jobs: JobConfig[]): Promise<void> {
    await writeJsonAtomic(this.jobsFile, { version: 1, jobs });
  }

  async loadSettings(): Promise<Settings> {
    return readJson(this.settingsFile, settingsSchema, DEFAULT_SETTINGS);
  }

  async saveSettings(settings: Settings): Promise<void> {
    await writeJsonAtomic(this.settingsFile, settings);
  }
}
