// Failures raise a desktop notification: never silent (USERS.md 2).
import { Notification } from 'electron';
import type { App } from '../index.js';

export function notifyFailures(app: App, open: () => void): void {
  app.events.subscribe((event) => {
    if (event.type !== 'failure' || !app.settings.current().notifications) return;
    if (!Notification.isSupported()) return;
    const job = app.jobs.list().find((j) => j.config.id === event.jobId);
    const notification = new Notification({
      title: `Tidemark: ${job?.config.name ?? 'a backup'} failed`,
      body: event.error.message,
      urgency: 'critical',
    });
    notification.on('click', open);
    notification.show();
  });
}
