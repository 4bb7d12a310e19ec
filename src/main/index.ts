// Composition root: wires the services together and does nothing else (STYLE.md). The Electron
// shell and `tidemark serve` both start the app through here.
import type { AppInfo } from '../shared/api.js';
import { EngineHost, type EngineHostOptions } from './engine-host/engine-host.js';
import { apiHandlers, type Dispatch } from './services/api-handlers.js';
import { ConfigStore } from './services/config-store.js';
import { EventBus } from './services/event-bus.js';
import { JobService, type Now } from './services/job-service.js';
import { Scheduler, type SchedulerOptions } from './services/scheduler.js';
import type { SecretStore } from './services/secret-store.js';
import { SettingsService } from './services/settings-service.js';

export interface AppOptions {
  /** Where jobs.json and settings.json live. */
  dataDir: string;
  info: AppInfo;
  now?: Now;
  engine?: EngineHostOptions;
  scheduler?: SchedulerOptions;
  /** Where credentials and passphrases go (Electron: safeStorage); default a 0600 file. */
  secrets?: SecretStore;
}

export interface App {
  info: AppInfo;
  dispatch: Dispatch;
  events: EventBus;
  jobs: JobService;
  settings: SettingsService;
  scheduler: Scheduler;
  close(): Promise<void>;
}

export async function startApp(options: AppOptions): Promise<App> {
  const now = options.now ?? (() => new Date());
  const engine = new EngineHost(options.engine);
  const store = new ConfigStore(options.dataDir);
  const events = new EventBus();
  const settings = new SettingsService(store, events);
  const jobs = new JobService(engine, store, events, now, options.secrets);
  jobs.globalCacheLimit = () => settings.current().cacheLimitBytes;
  await settings.load();
  await jobs.load();
  const scheduler = new Scheduler(jobs, settings, now, options.scheduler);
  jobs.onSettled = () => void scheduler.tick();
  events.subscribe((e) => e.type === 'settings' && void scheduler.tick());
  scheduler.start();
  return {
    info: options.info,
    dispatch: apiHandlers(jobs, settings, options.info),
    events,
    jobs,
    settings,
    scheduler,
    async close() {
      scheduler.stop();
      await engine.close();
    },
  };
}
