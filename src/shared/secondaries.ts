// Extra secondaries of a job (fan-out) as the app adds, shows and changes them. Pure TypeScript
// + zod: shared by main, preload, renderer and the headless server.
import { z } from 'zod';
import { retentionSchema, type Retention } from './jobs.js';

const MIB = 1 << 20;

/** Where an extra secondary lives: a folder (another disk, a NAS mount) or an S3 bucket. */
export const secondaryLocationSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('folder'),
    path: z.string().trim().min(1, { message: 'choose a folder' }).max(4096),
  }),
  z.object({
    kind: z.literal('s3'),
    /** Empty: AWS itself. */
    endpoint: z
      .string()
      .trim()
      .max(2048)
      .refine((v) => v === '' || /^https?:\/\/[^\s/]+/.test(v), {
        message: 'the endpoint must be an http:// or https:// URL',
      }),
    region: z.string().trim().min(1, { message: 'give the region (e.g. us-east-1)' }).max(64),
    bucket: z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, {
        message: 'a bucket name has 3-63 lower-case letters, digits, dots and dashes',
      }),
    prefix: z.string().trim().max(1024),
    pathStyle: z.boolean(),
    /** Both empty: the usual AWS chain of this machine (environment, ~/.aws, roles). */
    accessKeyId: z.string().trim().max(256),
    secretAccessKey: z.string().max(1024),
  }),
]);
export type SecondaryLocation = z.infer<typeof secondaryLocationSchema>;

/** What may be changed on an extra secondary after it was added. */
export const secondaryOptionsSchema = z.object({
  /** Upload limit to it in bytes per second (S3); null: none. */
  bwlimitBytes: z
    .number()
    .int()
    .min(1024, { message: 'the upload limit must be at least 1024 bytes/s' })
    .max(2 ** 40)
    .nullable(),
  /** Its own retention, applied after each shipping; null: the job's. */
  retention: retentionSchema.nullable(),
  /** Bytes its queue in the local cache may take while it is away; null: no limit. */
  queueLimitBytes: z
    .number()
    .int()
    .min(MIB, { message: 'the queue limit must be at least 1 MiB' })
    .max(2 ** 50)
    .nullable(),
});
export type SecondaryOptions = z.infer<typeof secondaryOptionsSchema>;

export const DEFAULT_SECONDARY_OPTIONS: SecondaryOptions = {
  bwlimitBytes: null,
  retention: null,
  queueLimitBytes: null,
};

/**
 * An extra secondary's settings as the UI may see them: never a credential or a passphrase,
 * only whether they are set.
 */
export interface SecondarySettingsView extends SecondaryOptions {
  kind: 'folder' | 's3';
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  /** 'set': kept by the app (safeStorage or the data dir's secrets file); 'chain': AWS chain. */
  credentials?: 'set' | 'chain';
  /** A passphrase for it is kept by the app. */
  passphraseSet: boolean;
}

/** The retention a secondary follows: its own, else the job's. */
export function effectiveRetention(own: Retention | null, job: Retention): Retention {
  return own ?? job;
}
