// The jobs: their configuration (persisted), their states (from the archive, through the
// engine worker) and what each is doing now. Every change is pushed as an event.
import { randomUUID } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { ParsedParams, RestorePlan, RestoreWhat, SnapshotOutcome } from '../../shared/api.js';
import { isTidemarkError, TidemarkError, type ErrorInfo } from '../../shared/errors.js';
import {
  DEFAULT_SCHEDULE,
  RESTORE_WHAT,
  type Activity,
  type ActivityKind,
  type JobConfig,
  type JobStatus,
  type JobView,
} from '../../shared/jobs.js';
import type {
  BrowseReport,
  DiffReport,
  FileVersion,
  SearchReport,
  RestoreReport,
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
}

/** Progress events per job at most this often: enough for a smooth bar, cheap over SSE. */
const PROGRESS_EVENT_MS = 250;

export class JobService {
  private readonly jobs = new Map<string, JobRuntime>();
  /** Called after a job's configuration or states changed: the scheduler plans again. */
  onSettled: () => void = () => undefined;

  constructor(
    private readonly engine: EngineHost,
    private readonly store: ConfigStore,
    private readonly events: EventBus,
    private readonly now: Now,
  ) {}

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

  runtimeOf(id: string): { lastRun: Date | null; secondaryPresent: boolean; busy: boolean } {
    const job = this.job(id);
    const last = job.states.at(-1);
    const times = [last ? new Date(last.time) : null, job.lastAttempt].filter(
      (d): d is Date => d !== null,
    );
    return {
      lastRun: times.length ? new Date(Math.max(...times.map((d) => d.getTime()))) : null,
      secondaryPresent: job.secondaryPresent,
      busy: job.activity !== null,
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
    };
    await this.persist();
    this.publish(job);
    this.onSettled();
    return this.view(job);
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
        { archive: job.config.secondary },
        { onProgress, signal, onLog: this.log(job) },
      );
      const log = this.log(job);
      if (outcome.spaceGuard)
        log(
          'warn',
          `space guard removed states ${outcome.spaceGuard.dropped.join(', ') || '(none)'}`,
        );
      const { retention } = job.config;
      if (retention.keep === 'policy') {
        const { keep: _keep, ...settings } = retention;
        const pruned = await this.engine.call('prune', {
          archive: job.config.secondary,
          now: this.now().toISOString(),
          dryRun: false,
          settings,
        });
        if (pruned.dropped > 0)
          log(
            'info',
            `retention removed ${pruned.dropped} state(s), ${pruned.bytesFreed} bytes freed`,
          );
      }
      await this.refresh(job);
      return outcome;
    });
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
      archive: job.config.secondary,
      stateId: p.stateId,
      path: p.path,
      offset: p.offset,
      limit: p.limit,
    });
  }

  /** What changed between two states of a volume. */
  diff(p: ParsedParams<'jobs.diff'>): Promise<DiffReport> {
    const job = this.volumeJob(p.id);
    return this.engine.call('diff', { archive: job.config.secondary, from: p.from, to: p.to });
  }

  /** Entries of a volume state whose name holds the query. */
  search(p: ParsedParams<'jobs.search'>): Promise<SearchReport> {
    const job = this.volumeJob(p.id);
    return this.engine.call('search', {
      archive: job.config.secondary,
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
          archive: job.config.secondary,
          stateId: p.stateId,
          path: one,
        });
        plan.bytes += m.bytes;
        plan.files = (plan.files ?? 0) + m.files;
      }
    } catch (err) {
      if (!isTidemarkError(err)) throw err;
      plan.problems.push(err.message);
    }
    const original = within(job.config.primary, where.target);
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
    const summary = await this.engine.call('inspect', { archive: job.config.secondary });
    const existing = await fsp.stat(target).catch(() => null);
    const plan: RestorePlan = {
      target,
      bytes: summary.primarySize,
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

  private async refresh(job: JobRuntime): Promise<void> {
    job.secondaryPresent = await exists(path.join(job.config.secondary, MANIFEST_NAME));
    if (!job.secondaryPresent) return;
    try {
      job.states = await this.engine.call('states', { archive: job.config.secondary });
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

/** `inner` is `outer` or lies inside it (both absolute). */
function within(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
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
