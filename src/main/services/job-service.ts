// The jobs: their configuration (persisted), their states (from the archive, through the
// engine worker) and what each is doing now. Every change is pushed as an event.
import { randomUUID } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { ParsedParams, RestorePlan, RestoreWhat, SnapshotOutcome } from '../../shared/api.js';
import { DEFAULT_CACHE_LIMIT_BYTES, type CacheInfo } from '../../shared/cache.js';
import { isTidemarkError, TidemarkError, type ErrorInfo } from '../../shared/errors.js';
import {
  describeSpaceGuard,
  type PruneReport,
  type SpaceGuardReport,
} from '../../shared/retention.js';
import {
  DEFAULT_SCHEDULE,
  RESTORE_WHAT,
  type Activity,
  type ActivityKind,
  type JobConfig,
  type JobLogEntry,
  type JobStatus,
  type JobView,
} from '../../shared/jobs.js';
import type {
  BrowseReport,
  DiffReport,
  FileVersion,
  SearchReport,
  RestoreReport,
  SecondaryStatus,
  StateInfo,
  VerifyReport,
  VolumeRestoreReport,
} from '../../shared/states.js';
import type { EngineHost } from '../engine-host/engine-host.js';
import { MANIFEST_NAME } from '../engine/format/archive-manifest.js';
import type { ConfigStore } from './config-store.js';
import { formatBytes } from '../cli/format-human.js';
import { checkChoice, freeBytes, listDrives } from './drives.js';
import type { EventBus } from './event-bus.js';
import { cacheOutcomeNotes, pruneNotes, type Note } from './job-notes.js';
import { secondariesOf } from './secondary-registry.js';
import { JobSecondaries, secondaryNotes } from './job-secondaries.js';
import { FileSecretStore, type SecretStore } from './secret-store.js';
import { liesWithin } from './path-within.js';

export type Now = () => Date;

interface JobRuntime {
  config: JobConfig;
  states: StateInfo[];
  secondaryPresent: boolean;
  activity: Activity | null;
  abort: AbortController | null;
  lastError: ErrorInfo | null;
  lastAttempt: Date | null;
  nextRunAt: string | null;
  waiting: string | null;
  lastProgressEvent: number;
  /** The local cache; null until the worker said what it holds. */
  cache: CacheInfo | null;
  /** The cache's folder for this archive (an archive itself: cached states are read there). */
  cacheArchive: string | null;
  log: JobLogEntry[];
  secondaries: SecondaryStatus[];
}

/** Lines of a job's log kept for the UI (older ones are in the app's stderr). */
const LOG_LINES = 50;

/** Progress events per job at most this often: enough for a smooth bar, cheap over SSE. */
const PROGRESS_EVENT_MS = 250;

export class JobService {
  private readonly jobs = new Map<string, JobRuntime>();
  /** Called after a job's configuration or states changed: the scheduler plans again. */
  onSettled: () => void = () => undefined;
  /** The global cache limit (settings), for jobs without their own. */
  globalCacheLimit: () => number = () => DEFAULT_CACHE_LIMIT_BYTES;
  /** The local caches, one subfolder per archive, in the user data dir (primary side). */
  readonly cacheDir: string;
  /** Extra secondaries added in the app; their secrets in `secrets` (safeStorage in Electron). */
  readonly extra: JobSecondaries;

  constructor(
    private readonly engine: EngineHost,
    private readonly store: ConfigStore,
    private readonly events: EventBus,
    private readonly now: Now,
    secrets: SecretStore = FileSecretStore.headless(store.dataDir),
  ) {
    this.cacheDir = path.join(store.dataDir, 'cache');
    this.extra = new JobSecondaries(engine, store.dataDir, this.cacheDir, secrets);
  }

  async load(): Promise<void> {
    for (const config of await this.store.loadJobs()) {
      this.jobs.set(config.id, this.runtime(config));
    }
    await Promise.all([...this.jobs.values()].map((job) => this.refresh(job)));
  }

  list(): JobView[] {
    return [...this.jobs.values()].map((job) => this.view(job));
  }

  get(id: string): JobView {
    return this.view(this.job(id));
  }

  configs(): JobConfig[] {
    return [...this.jobs.values()].map((j) => j.config);
  }

  runtimeOf(id: string): {
    lastRun: Date | null;
    secondaryPresent: boolean;
    busy: boolean;
    /** Updates waiting in the local cache for the secondary. */
    cached: number;
    /** A point can be recorded without the secondary (the cache starts from its last state). */
    cacheReady: boolean;
  } {
    const job = this.job(id);
    const last = job.states.at(-1);
    const times = [last ? new Date(last.time) : null, job.lastAttempt].filter(
      (d): d is Date => d !== null,
    );
    return {
      lastRun: times.length ? new Date(Math.max(...times.map((d) => d.getTime()))) : null,
      secondaryPresent: job.secondaryPresent,
      busy: job.activity !== null,
      cached: job.cache?.pending ?? 0,
      cacheReady: job.cache !== null && job.states.length > 0,
    };
  }

  /** What the scheduler decided, shown on the job's card. */
  setPlan(id: string, nextRunAt: Date | null, waiting: string | null): void {
    const job = this.jobs.get(id);
    if (!job) return;
    const next = nextRunAt?.toISOString() ?? null;
    if (job.nextRunAt === next && job.waiting === waiting) return;
    job.nextRunAt = next;
    job.waiting = waiting;
    this.publish(job);
  }

  /** Whether the secondary is there now; returns true when it has just come back. */
  async probeSecondary(id: string): Promise<boolean> {
    const job = this.jobs.get(id);
    if (!job) return false;
    const was = job.secondaryPresent;
    job.secondaryPresent = await exists(path.join(job.config.secondary, MANIFEST_NAME));
    if (was !== job.secondaryPresent) {
      if (job.secondaryPresent) await this.refresh(job);
      this.publish(job);
    }
    return !was && job.secondaryPresent;
  }

  async create(p: ParsedParams<'jobs.create'>): Promise<JobView> {
    // A folder is recorded by its real path, as the archive's manifest records it.
    const primary =
      p.mode === 'volume'
        ? await fsp.realpath(path.resolve(p.primary)).catch(() => path.resolve(p.primary))
        : path.resolve(p.primary);
    const secondary = path.resolve(p.secondary);
    const check = await checkChoice(p.mode, primary, secondary, await listDrives().catch(() => []));
    if (check.errors.length > 0) throw new TidemarkError('job.bad-choice', check.errors[0] ?? '');
    if (this.configs().some((c) => c.secondary === secondary))
      throw new TidemarkError('job.bad-choice', `a job already keeps its archive in ${secondary}`);
    const config: JobConfig = {
      id: randomUUID(),
      name: p.name || path.basename(primary),
      mode: p.mode,
      primary,
      secondary,
      schedule: p.schedule,
      retention: { keep: 'all' },
      paused: false,
      createdAt: this.now().toISOString(),
    };
    const job = this.runtime(config);
    this.jobs.set(config.id, job);
    await this.persist();
    const adopted = await exists(path.join(secondary, MANIFEST_NAME));
    if (adopted) await this.refresh(job);
    // The baseline reads the whole primary: run it in the background; the card shows it.
    else void this.baseline(job).catch(() => undefined);
    this.publish(job);
    this.onSettled();
    return this.view(job);
  }

  /** A job for an archive made with the CLI (`tidemark serve --archive DIR`). */
  async adopt(archiveDir: string): Promise<JobView> {
    const secondary = path.resolve(archiveDir);
    const existing = [...this.jobs.values()].find((j) => j.config.secondary === secondary);
    if (existing) return this.view(existing);
    const summary = await this.engine.call('inspect', { archive: secondary });
    const config: JobConfig = {
      id: randomUUID(),
      name: path.basename(summary.primary),
      mode: summary.mode,
      primary: summary.primary,
      secondary,
      schedule: DEFAULT_SCHEDULE,
      retention: { keep: 'all' },
      paused: false,
      createdAt: this.now().toISOString(),
    };
    const job = this.runtime(config);
    this.jobs.set(config.id, job);
    await this.persist();
    await this.refresh(job);
    this.publish(job);
    this.onSettled();
    return this.view(job);
  }

  async update(p: ParsedParams<'jobs.update'>): Promise<JobView> {
    const job = this.job(p.id);
    job.config = {
      ...job.config,
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.schedule !== undefined ? { schedule: p.schedule } : {}),
      ...(p.paused !== undefined ? { paused: p.paused } : {}),
      ...(p.retention !== undefined ? { retention: p.retention } : {}),
      ...(p.cacheLimitBytes !== undefined ? { cacheLimitBytes: p.cacheLimitBytes } : {}),
    };
    await this.persist();
    this.publish(job);
    this.onSettled();
    return this.view(job);
  }

  /** Adds an extra secondary (a folder or a bucket) holding every state of the job. */
  async addSecondary(p: ParsedParams<'jobs.addSecondary'>): Promise<JobView> {
    const job = this.idle(p.id);
    const target = await this.extra.add(job.config, p.location, p.passphrase, p.options);
    this.note(job, { level: 'info', message: `secondary ${target} added with every state` });
    await this.fanOut(job, false);
    this.publish(job);
    return this.view(job);
  }

  async updateSecondary(p: ParsedParams<'jobs.updateSecondary'>): Promise<JobView> {
    const job = this.job(p.id);
    await this.extra.update(job.config, p.target, p.options);
    await this.fanOut(job, false);
    this.publish(job);
    return this.view(job);
  }

  /** Stops fanning out to an extra secondary; its archive stays as it is. */
  async removeSecondary(p: ParsedParams<'jobs.removeSecondary'>): Promise<JobView> {
    const job = this.idle(p.id);
    await this.extra.remove(job.config, p.target);
    this.note(job, {
      level: 'info',
      message: `secondary ${p.target} removed (its archive is kept)`,
    });
    await this.fanOut(job, false);
    this.publish(job);
    return this.view(job);
  }

  private idle(id: string): JobRuntime {
    const job = this.job(id);
    if (job.activity)
      throw new TidemarkError('job.busy', `${job.config.name} is busy (${job.activity.kind})`, {
        retryable: true,
      });
    return job;
  }

  /** Forgets the job; its archive stays where it is. */
  async remove(id: string): Promise<void> {
    const job = this.job(id);
    job.abort?.abort();
    this.jobs.delete(id);
    await this.persist();
    this.events.emit({ type: 'job-removed', id });
  }

  async states(id: string): Promise<StateInfo[]> {
    const job = this.job(id);
    await this.refresh(job);
    return job.states;
  }

  private baseline(job: JobRuntime): Promise<StateInfo> {
    const { primary, secondary } = job.config;
    return this.run(job, 'baseline', async (onProgress, signal) => {
      const state = await this.engine.call(
        'init',
        { primary, archive: secondary, mode: job.config.mode },
        { onProgress, signal, onLog: this.log(job) },
      );
      await this.refresh(job);
      return state;
    });
  }

  /** Ends the interval now; a job whose baseline never completed (cancelled, failed) records it. */
  async snapshot(id: string): Promise<SnapshotOutcome> {
    const job = this.job(id);
    job.lastAttempt = this.now();
    if (job.states.length === 0 && !job.secondaryPresent) {
      return { changed: true, state: await this.baseline(job) };
    }
    return this.run(job, 'snapshot', async (onProgress, signal) => {
      const outcome = await this.engine.call(
        'snapshot',
        { archive: job.config.secondary, cache: this.cacheSettings(job) },
        { onProgress, signal, onLog: this.log(job) },
      );
      this.noteAll(job, cacheOutcomeNotes(outcome));
      const merged = (outcome.collapsed ?? []).reduce((n, c) => n + c.removedStates.length, 0);
      if (job.cache && merged > 0) job.cache.collapsed += merged;
      if (outcome.spaceGuard) this.noteSpaceGuard(job, outcome.spaceGuard);
      // Extra secondaries get (or queue) the new update before the archive's retention may
      // merge the state they last received into it: they never see a gap.
      await this.fanOut(job, true);
      const { retention } = job.config;
      // Retention works on the secondary; states in the cache wait until they are shipped.
      if (retention.keep === 'policy' && outcome.location !== 'cache') {
        const { keep: _keep, ...settings } = retention;
        const pruned = await this.engine.call('prune', {
          archive: job.config.secondary,
          now: this.now().toISOString(),
          dryRun: false,
          settings,
        });
        outcome.pruned = pruned;
        this.noteAll(job, pruneNotes(pruned));
        // The cache keeps the secondary's state list for when it is away: not the dropped ones.
        if (pruned.dropped > 0)
          await this.engine.call('primeCache', {
            archive: job.config.secondary,
            cache: this.cacheSettings(job),
          });
      }
      await this.refresh(job);
      return outcome;
    });
  }

  /** Ships the cached updates now (the secondary came back and no snapshot is wanted yet). */
  async flush(id: string): Promise<number[]> {
    const job = this.job(id);
    return this.run(job, 'ship', async () => {
      const r = await this.engine.call('flush', {
        archive: job.config.secondary,
        cache: this.cacheSettings(job),
      });
      this.noteAll(job, cacheOutcomeNotes({ shipped: r.shipped }));
      if (r.spaceGuard) this.noteSpaceGuard(job, r.spaceGuard);
      await this.refresh(job);
      return r.shipped;
    });
  }

  private noteSpaceGuard(job: JobRuntime, g: SpaceGuardReport): void {
    // The CLI's line: what went, why it fell short and what it did instead (kept the base, ran
    // out of space) matter to the user as much as what it removed.
    this.note(job, { level: 'warn', message: describeSpaceGuard(g) });
  }

  /** Pins or unpins a state (retention never removes a pinned state); returns the states. */
  async pin(p: ParsedParams<'jobs.pin'>): Promise<StateInfo[]> {
    const job = this.job(p.id);
    if (!job.secondaryPresent)
      throw new TidemarkError(
        'archive.unavailable',
        `pinning is recorded on the secondary, which is not connected (${job.config.secondary})`,
        { retryable: true },
      );
    const r = await this.engine.call('pin', {
      archive: job.config.secondary,
      stateId: p.stateId,
      pinned: p.pinned,
    });
    if (r.changed)
      this.note(job, {
        level: 'info',
        message: `state ${r.state} ${r.pinned ? 'pinned: retention keeps it' : 'unpinned'}`,
      });
    await this.refresh(job);
    this.publish(job);
    return job.states;
  }

  /** The job's states as a policy would thin them out now: a dry run on the secondary. */
  async previewRetention(p: ParsedParams<'jobs.previewRetention'>): Promise<PruneReport> {
    const job = this.job(p.id);
    if (!job.secondaryPresent)
      throw new TidemarkError(
        'archive.unavailable',
        `the states to thin out are on the secondary, which is not connected (${job.config.secondary})`,
        { retryable: true },
      );
    if (p.retention.keep !== 'policy')
      throw new TidemarkError('usage', 'keeping every state removes nothing: there is no preview');
    const { keep: _keep, ...settings } = p.retention;
    return this.engine.call('prune', {
      archive: job.config.secondary,
      now: this.now().toISOString(),
      dryRun: true,
      settings,
    });
  }

  private cacheSettings(job: JobRuntime): { cacheDir: string; limitBytes: number } {
    return {
      cacheDir: this.cacheDir,
      limitBytes: job.config.cacheLimitBytes ?? this.globalCacheLimit(),
    };
  }

  async restore(p: ParsedParams<'jobs.restore'>): Promise<RestoreReport | VolumeRestoreReport> {
    const job = this.job(p.id);
    if (job.config.mode === 'volume') return this.restoreVolume(job, p);
    if (!RESTORE_WHAT[job.config.mode].includes(p.what.kind))
      throw new TidemarkError(
        'usage',
        `a ${job.config.mode} is restored whole, not ${describe(p.what)}`,
      );
    const target = await restoreTarget(p.target, job.config.primary, p.stateId);
    return this.run(job, 'restore', (onProgress, signal) =>
      this.engine.call(
        'restore',
        {
          archive: job.config.secondary,
          stateId: p.stateId,
          target,
          rollback: p.overwrite === 'rollback',
          force: p.overwrite === 'force',
          cacheDir: this.cacheDir,
        },
        { onProgress, signal, onLog: this.log(job) },
      ),
    );
  }

  private async restoreVolume(
    job: JobRuntime,
    p: ParsedParams<'jobs.restore'>,
  ): Promise<VolumeRestoreReport> {
    if (p.overwrite === 'rollback')
      throw new TidemarkError(
        'usage',
        'rollback is for devices: a folder is restored file by file',
      );
    const where = volumeRestoreTarget(job.config.primary, p.what, p.target);
    return this.run(job, 'restore', async (onProgress, signal) => {
      const report = await this.engine.call(
        'restore',
        {
          archive: job.config.secondary,
          stateId: p.stateId,
          target: where.target,
          rollback: false,
          force: p.overwrite === 'force',
          cacheDir: this.cacheDir,
          ...(where.path ? { path: where.path } : {}),
          ...(where.paths ? { paths: where.paths } : {}),
        },
        { onProgress, signal, onLog: this.log(job) },
      );
      return report as VolumeRestoreReport;
    });
  }

  /** The children of one folder of a volume state, for the tree browser. */
  browse(p: ParsedParams<'jobs.browse'>): Promise<BrowseReport> {
    const job = this.volumeJob(p.id);
    return this.engine.call('browse', {
      archive: this.archiveOf(job, p.stateId),
      stateId: p.stateId,
      path: p.path,
      offset: p.offset,
      limit: p.limit,
    });
  }

  /** What changed between two states of a volume. */
  diff(p: ParsedParams<'jobs.diff'>): Promise<DiffReport> {
    const job = this.volumeJob(p.id);
    return this.engine.call('diff', { archive: this.archiveOf(job, p.to), from: p.from, to: p.to });
  }

  /** Entries of a volume state whose name holds the query. */
  search(p: ParsedParams<'jobs.search'>): Promise<SearchReport> {
    const job = this.volumeJob(p.id);
    return this.engine.call('search', {
      archive: this.archiveOf(job, p.stateId),
      stateId: p.stateId,
      query: p.query,
      limit: p.limit,
    });
  }

  /** The versions of one path of a volume, oldest first. */
  history(id: string, file: string): Promise<FileVersion[]> {
    const job = this.volumeJob(id);
    return this.engine.call('history', { archive: job.config.secondary, path: file });
  }

  private volumeJob(id: string): JobRuntime {
    const job = this.job(id);
    if (job.config.mode !== 'volume')
      throw new TidemarkError(
        'usage',
        `${job.config.name} protects a device: it has no files to browse`,
      );
    return job;
  }

  private async planVolumeRestore(
    job: JobRuntime,
    p: ParsedParams<'jobs.planRestore'>,
  ): Promise<RestorePlan> {
    const where = volumeRestoreTarget(job.config.primary, p.what, p.target);
    const existing = await fsp.stat(where.target).catch(() => null);
    const plan: RestorePlan = {
      target: where.target,
      bytes: 0,
      files: 0,
      freeBytes: await freeBytes(where.target),
      targetExists: existing !== null,
      problems: [],
    };
    try {
      for (const one of where.paths ?? [where.path]) {
        const m = await this.engine.call('measure', {
          archive: this.archiveOf(job, p.stateId),
          stateId: p.stateId,
          path: one,
        });
        plan.bytes += m.bytes;
        plan.files = (plan.files ?? 0) + m.files;
      }
    } catch (err) {
      if (!isTidemarkError(err)) throw err;
      // A state only the cache holds is measured by the restore itself (the secondary is away).
      if (!this.inCache(job, p.stateId)) plan.problems.push(err.message);
    }
    const original = await liesWithin(job.config.primary, where.target);
    if (original && p.overwrite !== 'force')
      plan.problems.push(
        `${where.target} is the protected folder's live data: choose the original location explicitly, or another folder`,
      );
    else if (!original && existing && p.overwrite === 'none') {
      const empty = existing.isDirectory() && (await fsp.readdir(where.target)).length === 0;
      if (!empty || (where.path !== '' && !where.paths))
        plan.problems.push(`${where.target} exists: choose a new folder (nothing is overwritten)`);
    }
    if (!existing && plan.freeBytes !== null && plan.freeBytes < plan.bytes)
      plan.problems.push(
        `not enough space: the restore needs ${formatBytes(plan.bytes)}, ${formatBytes(plan.freeBytes)} are free`,
      );
    return plan;
  }

  async planRestore(p: ParsedParams<'jobs.planRestore'>): Promise<RestorePlan> {
    const job = this.job(p.id);
    if (job.config.mode === 'volume') return this.planVolumeRestore(job, p);
    const target = await restoreTarget(p.target, job.config.primary, p.stateId);
    // While the secondary is away a cached state's size is the primary's (a device keeps its size).
    const bytes = this.inCache(job, p.stateId)
      ? ((await fsp.stat(job.config.primary).catch(() => null))?.size ?? 0)
      : (await this.engine.call('inspect', { archive: job.config.secondary })).primarySize;
    const existing = await fsp.stat(target).catch(() => null);
    const plan: RestorePlan = {
      target,
      bytes,
      freeBytes: await freeBytes(target),
      targetExists: existing !== null,
      problems: [],
    };
    if (!job.states.some((s) => s.id === p.stateId))
      plan.problems.push(`state ${p.stateId} does not exist`);
    if (existing && p.overwrite === 'none')
      plan.problems.push(`${target} exists: choose a new name (nothing is overwritten)`);
    if (!existing && plan.freeBytes !== null && plan.freeBytes < plan.bytes)
      plan.problems.push(
        `not enough space: the state needs ${formatBytes(plan.bytes)}, ${formatBytes(plan.freeBytes)} are free`,
      );
    return plan;
  }

  /**
   * Where a state is read: the secondary, or the cache's own archive for a state that lives
   * there while the secondary is away (it also holds the secondary's latest state, its base).
   */
  private archiveOf(job: JobRuntime, stateId: number): string {
    if (job.secondaryPresent || !job.cacheArchive) return job.config.secondary;
    const cachedOrBase =
      this.inCache(job, stateId) ||
      stateId === job.states.filter((s) => s.location !== 'cache').at(-1)?.id;
    return cachedOrBase ? job.cacheArchive : job.config.secondary;
  }

  private inCache(job: JobRuntime, stateId: number): boolean {
    const location = job.states.find((s) => s.id === stateId)?.location;
    return location === 'cache' || (location === 'both' && !job.secondaryPresent);
  }

  verify(id: string, deep: boolean): Promise<VerifyReport> {
    const job = this.job(id);
    return this.run(job, 'verify', (onProgress, signal) =>
      this.engine.call(
        'verify',
        { archive: job.config.secondary, deep },
        { onProgress, signal, onLog: this.log(job) },
      ),
    );
  }

  cancel(id: string): boolean {
    const job = this.job(id);
    if (!job.abort) return false;
    job.abort.abort();
    return true;
  }

  /** Engine log lines of a job's calls, prefixed with the job (stderr of the app or server). */
  private log(job: JobRuntime): (level: 'info' | 'warn', message: string) => void {
    return (level, message) =>
      (level === 'warn' ? console.warn : console.info)(`tidemark: ${job.config.name}: ${message}`);
  }

  /** A line for the job's log in the UI (and the app's stderr), and a notice if it asks for one. */
  private note(job: JobRuntime, note: Note): void {
    const entry = { time: this.now().toISOString(), level: note.level, message: note.message };
    job.log = [...job.log, entry].slice(-LOG_LINES);
    this.log(job)(note.level, note.message);
    if (note.notify)
      this.events.emit({
        type: 'notice',
        jobId: job.config.id,
        level: note.level,
        message: note.message,
      });
  }

  private noteAll(job: JobRuntime, notes: Note[]): void {
    for (const n of notes) this.note(job, n);
  }

  private async run<T>(
    job: JobRuntime,
    kind: ActivityKind,
    work: (onProgress: (done: number, total: number) => void, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (job.activity) {
      throw new TidemarkError('job.busy', `${job.config.name} is busy (${job.activity.kind})`, {
        retryable: true,
      });
    }
    const started = this.now();
    const abort = new AbortController();
    job.activity = { kind, startedAt: started.toISOString(), done: 0, total: 0, etaSeconds: null };
    job.abort = abort;
    // The first progress of every activity is shown at once.
    job.lastProgressEvent = 0;
    this.publish(job);
    const onProgress = (done: number, total: number): void => {
      const activity = job.activity;
      if (!activity) return;
      const elapsed = (this.now().getTime() - started.getTime()) / 1000;
      activity.done = done;
      activity.total = total;
      activity.etaSeconds =
        done > 0 && elapsed > 0.5 ? Math.round((elapsed * (total - done)) / done) : null;
      const t = Date.now();
      if (t - job.lastProgressEvent >= PROGRESS_EVENT_MS || done === total) {
        job.lastProgressEvent = t;
        this.publish(job);
      }
    };
    try {
      const value = await work(onProgress, abort.signal);
      if (kind !== 'restore' && kind !== 'verify') job.lastError = null;
      return value;
    } catch (err) {
      const info = isTidemarkError(err)
        ? err.toInfo()
        : { code: 'internal' as const, message: String(err), retryable: false };
      // A cancel is the user's own doing: not a failure to raise.
      if (info.code !== 'job.cancelled') {
        job.lastError = info;
        this.events.emit({ type: 'failure', jobId: job.config.id, error: info });
      }
      throw err;
    } finally {
      job.activity = null;
      job.abort = null;
      this.publish(job);
      this.onSettled();
    }
  }

  /**
   * Fan-out: ships the new update to each extra secondary (`secondary add` on the CLI, same data
   * dir), or only reads where each is; one that is away is reported in the job, never an error.
   */
  private async fanOut(job: JobRuntime, ship: boolean): Promise<void> {
    const archive = path.resolve(job.config.secondary);
    const targets = await secondariesOf(archive, this.store.dataDir);
    if (targets.length === 0) {
      job.secondaries = [];
      return;
    }
    try {
      const { access, policies, views } = await this.extra.forFanOut(job.config, targets);
      const list = await this.engine.call('secondaries', {
        archive,
        targets,
        cacheDir: this.cacheDir,
        ship,
        access,
        policies,
        now: this.now().toISOString(),
      });
      this.noteAll(job, secondaryNotes(list));
      job.secondaries = list.map((s) => {
        const settings = views[s.target];
        return settings ? { ...s, settings } : s;
      });
    } catch (err) {
      if (!isTidemarkError(err)) throw err;
      this.log(job)('warn', `extra secondaries: ${err.message}`);
    }
  }

  /**
   * The job's states, from the secondary and the local cache (each with its `location`); while
   * the secondary is away, from the cache alone. A secondary without a cache yet gets one, so
   * that the next point can be cached if the disk goes.
   */
  private async refresh(job: JobRuntime): Promise<void> {
    if (job.secondaries.length === 0) await this.fanOut(job, false);
    job.secondaryPresent = await exists(path.join(job.config.secondary, MANIFEST_NAME));
    const archive = job.config.secondary;
    const cache = this.cacheSettings(job);
    try {
      let status = await this.engine.call('cacheStatus', { archive, cache });
      let primed = await exists(path.join(status.dir, MANIFEST_NAME));
      if (!primed && job.secondaryPresent) {
        status = await this.engine.call('primeCache', { archive, cache });
        primed = true;
      }
      // Collapses are counted until what they left is shipped (the cache then holds nothing).
      const collapsed = status.pending > 0 ? (job.cache?.collapsed ?? 0) : 0;
      job.cache = primed
        ? { pending: status.pending, bytes: status.bytes, limitBytes: status.limitBytes, collapsed }
        : null;
      job.cacheArchive = primed ? status.dir : null;
      if (!job.secondaryPresent && !primed) return;
      job.states = await this.engine.call('states', { archive, cacheDir: this.cacheDir });
    } catch (err) {
      if (isTidemarkError(err)) job.lastError = err.toInfo();
      else throw err;
    }
  }

  private runtime(config: JobConfig): JobRuntime {
    return {
      config,
      states: [],
      secondaryPresent: false,
      activity: null,
      abort: null,
      lastError: null,
      lastAttempt: null,
      nextRunAt: null,
      waiting: null,
      lastProgressEvent: 0,
      cache: null,
      cacheArchive: null,
      log: [],
      secondaries: [],
    };
  }

  private job(id: string): JobRuntime {
    const job = this.jobs.get(id);
    if (!job) throw new TidemarkError('job.not-found', `no job ${id}`);
    return job;
  }

  private status(job: JobRuntime): JobStatus {
    if (job.activity) return 'running';
    if (job.lastError) return 'error';
    if (!job.secondaryPresent) return job.states.length === 0 ? 'new' : 'secondary-missing';
    if (job.config.paused) return 'paused';
    return job.states.length === 0 ? 'new' : 'ok';
  }

  private view(job: JobRuntime): JobView {
    const consistent = job.states.filter((s) => s.consistency !== 'none');
    return {
      config: job.config,
      status: this.status(job),
      lastConsistent: consistent.at(-1) ?? null,
      stateCount: job.states.length,
      activity: job.activity ? { ...job.activity } : null,
      lastError: job.lastError,
      nextRunAt: job.nextRunAt,
      waiting: job.waiting,
      cache: job.cache ? { ...job.cache } : null,
      log: job.log,
      ...(job.secondaries.length > 0 ? { secondaries: job.secondaries } : {}),
    };
  }

  private publish(job: JobRuntime): void {
    if (this.jobs.get(job.config.id) === job)
      this.events.emit({ type: 'job', job: this.view(job) });
  }

  private persist(): Promise<void> {
    return this.store.saveJobs(this.configs());
  }
}

/**
 * A folder as the target of a device restore means a new image file in it, named after the
 * primary and the state, so that nothing there is overwritten.
 */
async function restoreTarget(target: string, primary: string, stateId: number): Promise<string> {
  const abs = path.resolve(target);
  const stat = await fsp.stat(abs).catch(() => null);
  if (!stat?.isDirectory()) return abs;
  const base = path.basename(primary).replace(/\.img$/, '') || 'disk';
  return path.join(abs, `${base}-state-${stateId}.img`);
}

/**
 * Where a volume restore writes. The target is a folder: everything becomes its content; a file
 * or a folder of the state goes into it under its own name. The protected folder itself as the
 * target means the original location: the chosen path goes back where it was.
 */
export function volumeRestoreTarget(
  primary: string,
  what: RestoreWhat,
  targetIn: string,
): { target: string; path: string; paths?: string[] } {
  if (what.kind === 'paths') {
    const paths = distinctPaths(what.paths.map((p) => insideTree(primary, p)));
    const [only] = paths;
    if (paths.length === 1 && only !== undefined)
      return volumeRestoreTarget(primary, { kind: 'subtree', path: only }, targetIn);
    // Several paths keep their places in the tree: the target stands for the protected folder.
    return { target: path.resolve(targetIn), path: '', paths };
  }
  const sub = insideTree(primary, what.kind === 'everything' ? '' : what.path);
  const target = path.resolve(targetIn);
  if (target === primary) return { target: sub ? path.join(primary, sub) : primary, path: sub };
  return { target: sub ? path.join(target, path.basename(sub)) : target, path: sub };
}

/** A path of the tree as given (absolute inside it, or relative), relative; '' for all of it. */
function insideTree(primary: string, given: string): string {
  const rel = path.isAbsolute(given) ? path.relative(primary, given) : path.normalize(given);
  if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel))
    throw new TidemarkError(
      'usage',
      `${given} is not a path inside the protected folder ${primary}`,
    );
  return rel === '.' ? '' : rel.replace(/\/+$/, '');
}

/** Without repeats and without paths inside another one given ('' holds everything). */
function distinctPaths(paths: string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  if (sorted.includes('')) return [''];
  return sorted.filter((p, i) => !sorted.slice(0, i).some((outer) => p.startsWith(`${outer}/`)));
}

function describe(what: RestoreWhat): string {
  if (what.kind === 'paths') return `${what.paths.length} paths`;
  return what.kind === 'everything' ? 'everything' : `a ${what.kind} (${what.path})`;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}
