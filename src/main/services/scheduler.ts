// Runs each job's snapshots when its schedule says so. The desktop shell feeds it what only it
// can know (on battery, a disk was plugged in); the headless server leaves those at defaults.
import type { SettingsService } from './settings-service.js';
import type { JobService, Now } from './job-service.js';
import { decide } from './schedule-policy.js';

export interface SchedulerOptions {
  /** How often due jobs and secondaries are checked. */
  tickMs?: number;
}

export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private onBattery = false;
  private ticking: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly jobs: JobService,
    private readonly settings: SettingsService,
    private readonly now: Now,
    private readonly options: SchedulerOptions = {},
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.options.tickMs ?? 30_000);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** From the desktop shell's power watcher (powerMonitor, and sysfs on Linux). */
  setOnBattery(onBattery: boolean): void {
    this.onBattery = onBattery;
    void this.tick();
  }

  /** A disk appeared or went away (the shell's device events): look again now. */
  drivesChanged(): void {
    void this.tick();
  }

  /**
   * One pass over every job. Passes never overlap; a tick asked for during a pass runs another
   * one after it, so no change is planned late. A stopped scheduler plans nothing.
   */
  tick(): Promise<void> {
    if (!this.timer) return Promise.resolve();
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = this.pass().finally(() => {
      this.ticking = null;
      if (this.again) {
        this.again = false;
        void this.tick();
      }
    });
    return this.ticking;
  }

  private async pass(): Promise<void> {
    const pausedUntil = this.settings.current().pausedUntil;
    for (const config of this.jobs.configs()) {
      const pluggedIn = await this.jobs.probeSecondary(config.id);
      const rt = this.jobs.runtimeOf(config.id);
      if (rt.lastRun === null && !rt.secondaryPresent) continue; // baseline not made yet
      const decision = decide({
        schedule: config.schedule,
        jobPaused: config.paused,
        pausedUntil: pausedUntil ? new Date(pausedUntil) : null,
        lastRun: rt.lastRun,
        onBattery: this.onBattery,
        // With the local cache ready, a point is recorded whether the secondary is there or not.
        secondaryPresent: rt.secondaryPresent || rt.cacheReady,
        now: this.now(),
      });
      this.jobs.setPlan(config.id, decision.dueAt, decision.waiting);
      const plugged = pluggedIn && config.schedule.whenPlugged && decision.waiting === null;
      if ((decision.runNow || plugged) && !rt.busy) {
        // Failures are on the job's card and raised as events; the schedule carries on.
        void this.jobs.snapshot(config.id).catch(() => undefined);
      } else if (pluggedIn && rt.cached > 0 && !rt.busy) {
        // Back, but no point is wanted now: what the cache holds goes to the secondary anyway.
        void this.jobs.flush(config.id).catch(() => undefined);
      }
    }
  }
}
