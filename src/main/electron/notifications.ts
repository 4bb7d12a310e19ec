// Failures raise a desktop notification: never silent (USERS.md 2).
import { Notification } from 'electron';
import type { App } from '../index.js';

export function notifyFailures(app: App, open: () => void): void {
  app.events.subscribe((event) => {
    if (event.type !== 'failure' && event.type !== 'notice') return;
    if (!app.settings.current().notifications || !Notification.isSupported()) return;
    const job = app.jobs.list().find((j) => j.config.id === event.jobId);
    const name = job?.config.name ?? 'a backup';
    const notification =
      event.type === 'failure'
        ? new Notification({
            title: `Tidemark: ${name} failed`,
            body: event.error.message,
            urgency: 'critical',
          })
        : new Notification({ title: `Tidemark: ${name}`, body: event.message });
    notification.on('click', open);
    notification.show();
  });
}
