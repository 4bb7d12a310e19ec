// App-wide settings (global pause, notifications), persisted and pushed as events.
import type { ParsedParams, Settings } from '../../shared/api.js';
import type { ConfigStore } from './config-store.js';
import { DEFAULT_SETTINGS } from './config-store.js';
import type { EventBus } from './event-bus.js';

export class SettingsService {
  private settings: Settings = DEFAULT_SETTINGS;

  constructor(
    private readonly store: ConfigStore,
    private readonly events: EventBus,
  ) {}

  async load(): Promise<void> {
    this.settings = await this.store.loadSettings();
  }

  current(): Settings {
    return this.settings;
  }

  async update(patch: ParsedParams<'settings.update'>): Promise<Settings> {
    const next: Settings = { ...this.settings };
    if (patch.pausedUntil !== undefined) next.pausedUntil = patch.pausedUntil;
    if (patch.notifications !== undefined) next.notifications = patch.notifications;
    if (patch.cacheLimitBytes !== undefined) next.cacheLimitBytes = patch.cacheLimitBytes;
    await this.store.saveSettings(next);
    this.settings = next;
    this.events.emit({ type: 'settings', settings: next });
    return next;
  }
}
