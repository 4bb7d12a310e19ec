// The tray: status colour, tooltip, and the menu (Snapshot now, Open Tidemark, Pause, Quit).
import { Menu, Tray } from 'electron';
import type { App } from '../index.js';
import { trayIcon } from './tray-icon.js';
import { trayStatus, trayTooltip } from './tray-status.js';

export interface TrayActions {
  open: () => void;
  quit: () => void;
}

const HOUR = 3_600_000;

export function createTray(app: App, actions: TrayActions): Tray {
  const tray = new Tray(trayIcon('ok'));
  const refresh = (): void => {
    const jobs = app.jobs.list();
    const pausedUntil = app.settings.current().pausedUntil;
    const paused = pausedUntil !== null && new Date(pausedUntil).getTime() > Date.now();
    const now = new Date();
    tray.setImage(trayIcon(trayStatus(jobs, now)));
    tray.setToolTip(trayTooltip(jobs, now));
    tray.setContextMenu(
      Menu.buildFromTemplate([
        {
          label: 'Snapshot now',
          enabled: jobs.some((j) => j.stateCount > 0 && j.activity === null),
          click: () => {
            for (const job of jobs) void app.jobs.snapshot(job.config.id).catch(() => undefined);
          },
        },
        { label: 'Open Tidemark', click: actions.open },
        {
          label: paused ? 'Resume' : 'Pause for 1 hour',
          click: () =>
            void app.settings.update({
              pausedUntil: paused ? null : new Date(Date.now() + HOUR).toISOString(),
            }),
        },
        { type: 'separator' },
        { label: 'Quit', click: actions.quit },
      ]),
    );
  };
  app.events.subscribe(() => refresh());
  // Ages in the tooltip move on even when nothing happens.
  setInterval(refresh, 60_000).unref();
  tray.on('click', actions.open);
  refresh();
  return tray;
}
