// The UI's state: jobs as the services push them, the states of the job on screen, and which
// screen is showing. Components read it and call its methods; only this talks to the backend.
import { SvelteDate } from 'svelte/reactivity';
import type {
  ApiEvent,
  ChoiceCheck,
  DriveInfo,
  LiveLink,
  Params,
  RestorePlan,
  RestoreWhat,
  Settings,
} from '../../shared/api';
import type { JobMode, JobView, Retention, Schedule } from '../../shared/jobs';
import type { PruneReport } from '../../shared/retention';
import type {
  BrowseReport,
  DiffReport,
  FileVersion,
  SearchReport,
  RestoreReport,
  StateInfo,
  VerifyReport,
  VolumeRestoreReport,
} from '../../shared/states';
import { BackendError, type Backend } from './backend';

export type Screen = { name: 'status' } | { name: 'new-job' } | { name: 'job'; id: string };

export class AppState {
  jobs = $state<JobView[]>([]);
  screen = $state<Screen>({ name: 'status' });
  /** States per job id, loaded when a job is opened and after each change. */
  states = $state<Record<string, StateInfo[]>>({});
  /** The last thing that went wrong, written for people; shown in a banner. */
  error = $state<string | null>(null);
  loaded = $state(false);
  /** Whether pushed changes still arrive; anything but 'live' means what is shown may be old. */
  link = $state<LiveLink>('live');
  /** App-wide settings (the default cache limit); null until loaded. */
  settings = $state<Settings | null>(null);
  /** Ticks every 30 s so that ages ("3 min ago") stay true. */
  readonly now = new SvelteDate();

  readonly currentJob = $derived.by(() => {
    const screen = this.screen;
    return screen.name === 'job' ? this.jobs.find((j) => j.config.id === screen.id) : undefined;
  });

  constructor(private readonly backend: Backend) {}

  async start(): Promise<void> {
    this.backend.subscribe(
      (event) => this.apply(event),
      (link) => this.linkChanged(link),
    );
    setInterval(() => this.now.setTime(Date.now()), 30_000);
    try {
      this.jobs = await this.backend.call('jobs.list', {});
      this.settings = await this.backend.call('settings.get', {});
      // With a single job, open it: its time slider is what the user came for.
      const only = this.jobs.length === 1 ? this.jobs[0] : undefined;
      if (only) await this.openJob(only.config.id);
    } catch (err) {
      this.fail(err);
    }
    this.loaded = true;
  }

  private linkChanged(link: LiveLink): void {
    const missed = this.link !== 'live' && link === 'live';
    this.link = link;
    // Events sent while the stream was down are gone: ask again for what they would have said.
    if (missed && this.loaded) void this.refresh();
  }

  private async refresh(): Promise<void> {
    try {
      this.jobs = await this.backend.call('jobs.list', {});
      this.settings = await this.backend.call('settings.get', {});
      const open = this.currentJob;
      if (open) await this.loadStates(open.config.id);
    } catch (err) {
      this.fail(err);
    }
  }

  show(screen: Screen): void {
    this.error = null;
    this.screen = screen;
  }

  async openJob(id: string): Promise<void> {
    this.show({ name: 'job', id });
    await this.loadStates(id);
  }

  async loadStates(id: string): Promise<void> {
    try {
      this.states[id] = await this.backend.call('jobs.states', { id });
    } catch (err) {
      this.fail(err);
    }
  }

  async snapshot(id: string): Promise<void> {
    this.error = null;
    try {
      await this.backend.call('jobs.snapshot', { id });
      await this.loadStates(id);
    } catch (err) {
      this.fail(err);
    }
  }

  async cancel(id: string): Promise<void> {
    await this.backend.call('jobs.cancel', { id }).catch((err: unknown) => this.fail(err));
  }

  async updateSchedule(id: string, schedule: Schedule): Promise<boolean> {
    return this.attempt(() => this.backend.call('jobs.update', { id, schedule }));
  }

  /** Retention and the cache limit of one job (null: the default limit). */
  async updateKeeping(
    id: string,
    retention: Retention,
    cacheLimitBytes: number | null,
  ): Promise<boolean> {
    return this.attempt(() => this.backend.call('jobs.update', { id, retention, cacheLimitBytes }));
  }

  async setDefaultCacheLimit(cacheLimitBytes: number): Promise<boolean> {
    return this.attempt(async () => {
      this.settings = await this.backend.call('settings.update', { cacheLimitBytes });
    });
  }

  /** Pins (or unpins) a state: retention never removes a pinned state. */
  async pin(id: string, stateId: number, pinned: boolean): Promise<void> {
    await this.attempt(async () => {
      this.states[id] = await this.backend.call('jobs.pin', { id, stateId, pinned });
    });
  }

  /** What a retention policy would remove now, or why that cannot be said (a preview). */
  async previewRetention(id: string, retention: Retention): Promise<PruneReport | string> {
    try {
      return await this.backend.call('jobs.previewRetention', { id, retention });
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  async setPaused(id: string, paused: boolean): Promise<void> {
    await this.attempt(() => this.backend.call('jobs.update', { id, paused }));
  }

  planRestore(
    id: string,
    stateId: number,
    what: RestoreWhat,
    target: string,
    overwrite: 'none' | 'rollback' | 'force',
  ): Promise<RestorePlan> {
    return this.backend.call('jobs.planRestore', { id, stateId, what, target, overwrite });
  }

  /** One folder of a volume state ('' for the protected folder); throws a BackendError. */
  browse(id: string, stateId: number, path: string, offset = 0): Promise<BrowseReport> {
    // The tree draws only the rows in sight: bigger pages mean fewer round trips.
    return this.backend.call('jobs.browse', { id, stateId, path, offset, limit: 2000 });
  }

  /** Entries of a volume state whose name holds `query`; throws a BackendError. */
  search(id: string, stateId: number, query: string): Promise<SearchReport> {
    return this.backend.call('jobs.search', { id, stateId, query, limit: 200 });
  }

  /** Every version of one path of a volume, oldest first; throws a BackendError. */
  history(id: string, path: string): Promise<FileVersion[]> {
    return this.backend.call('jobs.history', { id, path });
  }

  /** What changed in a volume from state `from` to state `to`; throws a BackendError. */
  diff(id: string, from: number, to: number): Promise<DiffReport> {
    return this.backend.call('jobs.diff', { id, from, to });
  }

  /** Checks every checksum of the job's archive; throws a BackendError when it cannot. */
  verify(id: string): Promise<VerifyReport> {
    return this.backend.call('jobs.verify', { id, deep: false });
  }

  /** Forgets the job; its archive stays on the backup disk. */
  async removeJob(id: string): Promise<void> {
    if (await this.attempt(() => this.backend.call('jobs.remove', { id }))) {
      this.jobs = this.jobs.filter((j) => j.config.id !== id);
      this.show({ name: 'status' });
    }
  }

  /** Whether "Browse…" can open the system's dialog: only in the desktop app. */
  get canBrowse(): boolean {
    return this.backend.desktop !== null;
  }

  /** The path chosen in the system's open dialog, or null if none was; never throws. */
  async choosePath(kind: 'file' | 'folder', title: string): Promise<string | null> {
    if (!this.backend.desktop) return null;
    try {
      return (await this.backend.desktop.call('dialog.open', { kind, title })).path;
    } catch (err) {
      this.fail(err);
      return null;
    }
  }

  drives(): Promise<DriveInfo[]> {
    return this.backend.call('drives.list', {});
  }

  checkChoice(mode: JobMode, primary: string, secondary: string): Promise<ChoiceCheck> {
    return this.backend.call('drives.check', { mode, primary, secondary });
  }

  /** Adds an extra secondary; throws a BackendError with a message for people. */
  async addSecondary(params: Params<'jobs.addSecondary'>): Promise<void> {
    this.upsert(await this.backend.call('jobs.addSecondary', params));
  }

  async updateSecondary(
    id: string,
    target: string,
    options: Params<'jobs.updateSecondary'>['options'],
  ): Promise<boolean> {
    return this.attempt(async () => {
      this.upsert(await this.backend.call('jobs.updateSecondary', { id, target, options }));
    });
  }

  async removeSecondary(id: string, target: string): Promise<boolean> {
    return this.attempt(async () => {
      this.upsert(await this.backend.call('jobs.removeSecondary', { id, target }));
    });
  }

  /** Throws a BackendError with a message for people when the services refuse. */
  async createJob(params: Params<'jobs.create'>): Promise<void> {
    const job = await this.backend.call('jobs.create', params);
    this.upsert(job);
    await this.openJob(job.config.id);
  }

  restore(
    id: string,
    stateId: number,
    what: RestoreWhat,
    target: string,
    overwrite: 'none' | 'rollback' | 'force',
  ): Promise<RestoreReport | VolumeRestoreReport> {
    return this.backend.call('jobs.restore', { id, stateId, what, target, overwrite });
  }

  private async attempt(work: () => Promise<unknown>): Promise<boolean> {
    this.error = null;
    try {
      await work();
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private fail(err: unknown): void {
    this.error = err instanceof BackendError || err instanceof Error ? err.message : String(err);
  }

  private upsert(job: JobView): void {
    const i = this.jobs.findIndex((j) => j.config.id === job.config.id);
    if (i === -1) this.jobs.push(job);
    else this.jobs[i] = job;
  }

  private apply(event: ApiEvent): void {
    switch (event.type) {
      case 'job': {
        const before = this.jobs.find((j) => j.config.id === event.job.config.id);
        this.upsert(event.job);
        // A state was added (a scheduled snapshot, a finished baseline): reload the timeline.
        if (
          before &&
          (before.stateCount !== event.job.stateCount ||
            // Shipped from the cache: the same states, now on the secondary.
            (before.cache?.pending ?? 0) !== (event.job.cache?.pending ?? 0)) &&
          this.states[event.job.config.id]
        )
          void this.loadStates(event.job.config.id);
        break;
      }
      case 'job-removed':
        this.jobs = this.jobs.filter((j) => j.config.id !== event.id);
        break;
      case 'settings':
        this.settings = event.settings;
        break;
      case 'failure':
      case 'notice':
        break;
    }
  }
}
