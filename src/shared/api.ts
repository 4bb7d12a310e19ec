// The one API contract between the UI and the services, used by the Electron IPC layer, the
// preload bridge, the renderer and the headless server alike. Pure TypeScript + zod: no
// `node:*`, no `electron`, no DOM (STYLE.md, "Runtime layers").
import { z } from 'zod';
import type { ErrorInfo, Result } from './errors.js';
import {
  cacheLimitSchema,
  jobModeSchema,
  retentionSchema,
  scheduleSchema,
  type JobView,
} from './jobs.js';
import type { PruneReport, SpaceGuardReport } from './retention.js';
import type { CacheCollapse, CacheInfo } from './cache.js';
import {
  secondaryLocationSchema,
  secondaryOptionsSchema,
  DEFAULT_SECONDARY_OPTIONS,
} from './secondaries.js';
import type {
  BrowseReport,
  DiffReport,
  FileVersion,
  SearchReport,
  RestoreReport,
  StateInfo,
  VerifyReport,
  VolumeRestoreReport,
} from './states.js';

const id = z.string().min(1).max(64);
const path = z.string().trim().min(1, { message: 'choose a path' }).max(4096);

export const restoreWhatSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('everything') }),
  z.object({ kind: z.literal('subtree'), path }),
  z.object({ kind: z.literal('file'), path }),
  /** Volumes: several files and folders in one pass, each kept at its place in the tree. */
  z.object({ kind: z.literal('paths'), paths: z.array(path).min(1).max(10_000) }),
]);
export type RestoreWhat = z.infer<typeof restoreWhatSchema>;

export interface DriveInfo {
  device: string;
  description: string;
  /** Bytes, or null when the system does not say. */
  size: number | null;
  mountpoints: string[];
  removable: boolean;
  system: boolean;
  readOnly: boolean;
}

/** What the services think of a primary/secondary pair before a job is made of it. */
export interface ChoiceCheck {
  /** Reasons the pair cannot work; empty when it can. */
  errors: string[];
  /** Worth saying but not blocking ("the secondary has 2 GB free, the primary is 4 GB"). */
  warnings: string[];
  /** Reading the primary needs root / administrator rights. */
  needsElevation: boolean;
  primarySize: number | null;
}

/** What a restore would do, for the wizard's confirm step. */
export interface RestorePlan {
  /** The file that would be written (a folder as the target names a new file in it). */
  target: string;
  /** Bytes the restored state (or the chosen part of a volume state) holds. */
  bytes: number;
  /** Volumes: files that would be written. */
  files?: number;
  /** Free bytes where the target would be written, or null when unknown. */
  freeBytes: number | null;
  targetExists: boolean;
  /** Why the restore would fail as asked; empty when it would not. */
  problems: string[];
}

export type SnapshotOutcome = ({ changed: true; state: StateInfo } | { changed: false }) & {
  /** What the archive's space guard removed around this point (never silent). */
  spaceGuard?: SpaceGuardReport;
  /** Local cache on: where the new state went ('cache' while the secondary is away). */
  location?: 'secondary' | 'cache';
  /** Cached updates shipped to the secondary by this point, oldest first. */
  shipped?: number[];
  /** Why the secondary was not used. */
  unavailable?: string;
  /** Collapses made to keep the cache within its limit (reported, never silent). */
  collapsed?: CacheCollapse[];
  cache?: CacheInfo;
  /** What retention removed after this point, with the policy's reasons. */
  pruned?: PruneReport;
};

export interface Settings {
  /** Pause every job until this ISO time (the tray's "Pause for 1 hour"), or null. */
  pausedUntil: string | null;
  notifications: boolean;
  /** Bytes each job's local cache may take, unless the job sets its own limit. */
  cacheLimitBytes: number;
}

export const settingsPatchSchema = z.object({
  pausedUntil: z.string().datetime().nullable().optional(),
  notifications: z.boolean().optional(),
  cacheLimitBytes: cacheLimitSchema.optional(),
});

export interface AppInfo {
  version: string;
  /** 'desktop' under Electron, 'headless' under `tidemark serve`. */
  shell: 'desktop' | 'headless';
}

/** Every request: its parameter schema (checked at the boundary) and its result type. */
export const requestSchemas = {
  'app.info': z.object({}),
  'jobs.list': z.object({}),
  'jobs.create': z.object({
    name: z.string().trim().max(200).optional(),
    mode: jobModeSchema,
    primary: path,
    secondary: path,
    schedule: scheduleSchema,
  }),
  'jobs.update': z.object({
    id,
    name: z.string().trim().min(1).max(200).optional(),
    schedule: scheduleSchema.optional(),
    paused: z.boolean().optional(),
    retention: retentionSchema.optional(),
    /** Bytes this job's local cache may take; null follows the global setting. */
    cacheLimitBytes: cacheLimitSchema.nullable().optional(),
  }),
  'jobs.remove': z.object({ id }),
  'jobs.snapshot': z.object({ id }),
  'jobs.states': z.object({ id }),
  'jobs.restore': z.object({
    id,
    stateId: z.number().int().min(0),
    what: restoreWhatSchema,
    target: path,
    /** Onto an existing target: 'rollback' writes only what differs, 'force' everything. */
    overwrite: z.enum(['none', 'rollback', 'force']),
  }),
  'jobs.planRestore': z.object({
    id,
    stateId: z.number().int().min(0),
    what: restoreWhatSchema.default({ kind: 'everything' }),
    target: path,
    overwrite: z.enum(['none', 'rollback', 'force']),
  }),
  /** Volumes: one folder of a state ('' for the protected folder), a page at a time. */
  'jobs.browse': z.object({
    id,
    stateId: z.number().int().min(0),
    path: z.string().max(4096).default(''),
    offset: z.number().int().min(0).default(0),
    limit: z.number().int().min(1).max(5000).default(1000),
  }),
  /** Volumes: entries of a state whose name holds `query` ("where is my thesis.docx?"). */
  'jobs.search': z.object({
    id,
    stateId: z.number().int().min(0),
    query: z.string().trim().min(1, { message: 'type part of a name to search for' }).max(255),
    limit: z.number().int().min(1).max(5000).default(200),
  }),
  /** Volumes: every version of one file or folder, oldest first ("Versions of this file"). */
  'jobs.history': z.object({ id, path }),
  /** Volumes: what changed from state `from` to state `to` (paths with sizes). */
  'jobs.diff': z.object({
    id,
    from: z.number().int().min(0),
    to: z.number().int().min(0),
  }),
  'jobs.verify': z.object({ id, deep: z.boolean() }),
  /** Retention never removes a pinned state (as `tidemark pin` / `unpin`). */
  'jobs.pin': z.object({ id, stateId: z.number().int().min(0), pinned: z.boolean() }),
  /** What a retention policy would remove from the job's states now (nothing is removed). */
  'jobs.previewRetention': z.object({ id, retention: retentionSchema }),
  'jobs.cancel': z.object({ id }),
  /** Fan-out: a folder or an S3 bucket that gets every state (secrets are never sent back). */
  'jobs.addSecondary': z.object({
    id,
    location: secondaryLocationSchema,
    /** Encrypts it (AES-256-GCM, scrypt-wrapped key); empty or absent: not encrypted. */
    passphrase: z.string().max(1024).optional(),
    options: secondaryOptionsSchema.default(DEFAULT_SECONDARY_OPTIONS),
  }),
  'jobs.updateSecondary': z.object({
    id,
    target: path,
    options: secondaryOptionsSchema.partial(),
  }),
  'jobs.removeSecondary': z.object({ id, target: path }),
  'drives.list': z.object({}),
  'drives.check': z.object({
    mode: jobModeSchema.default('device'),
    primary: path,
    secondary: path,
  }),
  'settings.get': z.object({}),
  'settings.update': settingsPatchSchema,
} as const;

export interface ResponseTypes {
  'app.info': AppInfo;
  'jobs.list': JobView[];
  'jobs.create': JobView;
  'jobs.update': JobView;
  'jobs.remove': null;
  'jobs.snapshot': SnapshotOutcome;
  'jobs.states': StateInfo[];
  /** A device's report, or a volume's (it has `files`). */
  'jobs.restore': RestoreReport | VolumeRestoreReport;
  'jobs.planRestore': RestorePlan;
  'jobs.browse': BrowseReport;
  'jobs.diff': DiffReport;
  'jobs.history': FileVersion[];
  'jobs.search': SearchReport;
  'jobs.verify': VerifyReport;
  'jobs.pin': StateInfo[];
  /** A dry run's report: every state with the policy's decision and reason. */
  'jobs.previewRetention': PruneReport;
  'jobs.cancel': boolean;
  'jobs.addSecondary': JobView;
  'jobs.updateSecondary': JobView;
  'jobs.removeSecondary': JobView;
  'drives.list': DriveInfo[];
  'drives.check': ChoiceCheck;
  'settings.get': Settings;
  'settings.update': Settings;
}

export type Method = keyof typeof requestSchemas;
export type Params<M extends Method> = z.input<(typeof requestSchemas)[M]>;
export type ParsedParams<M extends Method> = z.output<(typeof requestSchemas)[M]>;
export type Response<M extends Method> = ResponseTypes[M];

/** Pushed from the services to every UI. */
export type ApiEvent =
  | { type: 'job'; job: JobView }
  | { type: 'job-removed'; id: string }
  | { type: 'settings'; settings: Settings }
  | { type: 'failure'; jobId: string; error: ErrorInfo }
  /** Worth a notification though nothing failed (the local cache full: states collapsed). */
  | { type: 'notice'; jobId: string; level: 'info' | 'warn'; message: string };

/**
 * Requests only the desktop app answers, in its Electron glue (the headless server has no
 * native dialogs): the renderer offers them only when `window.tidemark` exists.
 */
export const desktopRequestSchemas = {
  /** The system's open dialog, over the Tidemark window. */
  'dialog.open': z.object({
    kind: z.enum(['file', 'folder']),
    title: z.string().trim().min(1).max(200),
  }),
} as const;

export interface DesktopResponseTypes {
  /** null when the person closed the dialog without choosing. */
  'dialog.open': { path: string | null };
}

export type DesktopMethod = keyof typeof desktopRequestSchemas;
export type DesktopParams<M extends DesktopMethod> = z.input<(typeof desktopRequestSchemas)[M]>;
export type DesktopParsedParams<M extends DesktopMethod> = z.output<
  (typeof desktopRequestSchemas)[M]
>;
export type DesktopResponse<M extends DesktopMethod> = DesktopResponseTypes[M];

export function isDesktopMethod(value: unknown): value is DesktopMethod {
  return typeof value === 'string' && Object.hasOwn(desktopRequestSchemas, value);
}

export function isMethod(value: unknown): value is Method {
  return typeof value === 'string' && Object.hasOwn(requestSchemas, value);
}

/** Checks untrusted parameters; a failure reads as one line for people. */
export function parseParams<M extends Method>(method: M, params: unknown): Result<ParsedParams<M>> {
  return parseWith(requestSchemas[method], method, params) as Result<ParsedParams<M>>;
}

/** parseParams for the desktop-only requests. */
export function parseDesktopParams<M extends DesktopMethod>(
  method: M,
  params: unknown,
): Result<DesktopParsedParams<M>> {
  return parseWith(desktopRequestSchemas[method], method, params) as Result<DesktopParsedParams<M>>;
}

function parseWith(schema: z.ZodType, method: string, params: unknown): Result<unknown> {
  const parsed = schema.safeParse(params ?? {});
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` ${issue.path.join('.')}` : '';
  return {
    ok: false,
    error: {
      code: 'usage',
      // What is wrong first, for people; where, for whoever wrote the request.
      message: `${issue?.message ?? 'bad parameters'} (${method}${where})`,
      retryable: false,
    },
  };
}

/**
 * The health of the event stream: 'live'; 'reconnecting' after it dropped (events may be
 * missed meanwhile); 'lost' when it was closed for good (e.g. the server restarted with a new
 * token and refuses this page's cookie).
 */
export type LiveLink = 'live' | 'reconnecting' | 'lost';

/** One call through whatever carries it (IPC or HTTP). */
export interface ApiTransport {
  call<M extends Method>(method: M, params: Params<M>): Promise<Result<Response<M>>>;
  /**
   * Returns a function that unsubscribes. `onLink` hears of changes of the stream's health;
   * IPC never drops, so the preload bridge never calls it.
   */
  subscribe(listener: (event: ApiEvent) => void, onLink?: (link: LiveLink) => void): () => void;
}

/**
 * What the preload script exposes to the renderer as `window.tidemark`. contextBridge copies
 * what crosses it, so members are plain data or functions taking and returning plain data.
 */
export interface TidemarkBridge extends ApiTransport {
  /** The app version (package.json "version"), as reported by the main process. */
  readonly version: string;
  /** A desktop-only request (desktopRequestSchemas), answered by the Electron glue. */
  desktop<M extends DesktopMethod>(
    method: M,
    params: DesktopParams<M>,
  ): Promise<Result<DesktopResponse<M>>>;
}

/** The IPC channels the preload bridge uses (calls, desktop-only calls, events). */
export const IPC_CALL = 'tidemark:call';
export const IPC_DESKTOP_CALL = 'tidemark:desktop';
export const IPC_EVENT = 'tidemark:event';

/**
 * The switch the main process appends to the renderer's command line (`additionalArguments`)
 * to hand the version to the sandboxed preload, which has no `app` module.
 */
export const VERSION_SWITCH = '--tidemark-version=';
