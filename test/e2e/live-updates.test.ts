// End to end: the page says when its live updates stop and catches up when they come back.
// `tidemark serve` is stopped, a job is paused behind its back (as another tool editing the
// data dir would) and the CLI records a state, and the server comes back on the same port: the
// banner clears and the page shows the paused job and the new state without a reload. A restart with a new token closes the stream for good.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tidemark } from '../helpers/cli.js';
import { haveChromium, openUiSession, type UiSession } from './ui-session.js';

const TOKEN = 'e2e-live-updates-token-0123456789';

describe.skipIf(!haveChromium)('live updates in the UI', () => {
  let session: UiSession;

  beforeAll(async () => {
    session = await openUiSession({
      name: 'e2e-live-updates',
      token: TOKEN,
      viewport: { width: 1000, height: 800 },
    });
  });

  afterAll(async () => {
    await session?.close();
  });

  it('shows a banner while the server is away, then catches up with what changed', async () => {
    const { dir, ui, consoleErrors } = session;
    const tree = path.join(dir, 'Documents');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'first\n');
    const page = ui.page;
    await page.goto(`${session.served.url}?token=${TOKEN}`);
    const archive = path.join(dir, 'usb', 'documents');
    await ui.createFolderJob(tree, archive);
    await ui.button('Start baseline').click();
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);
    await ui.button('Pause').waitFor();

    const start = await session.stopServe();
    const reconnecting = page
      .getByRole('status')
      .getByText('Live updates interrupted: reconnecting…');
    await reconnecting.waitFor();
    const jobsFile = path.join(dir, 'data', 'jobs.json');
    const jobs = JSON.parse(fs.readFileSync(jobsFile, 'utf8')) as {
      jobs: { paused: boolean }[];
    };
    for (const job of jobs.jobs) job.paused = true;
    fs.writeFileSync(jobsFile, JSON.stringify(jobs));
    // And a new state, recorded by the CLI while no server runs.
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'second\n');
    const snap = tidemark('snapshot', archive);
    expect(snap.code, snap.stderr).toBe(0);
    await ui.screenshot('reconnecting');

    await start();
    await reconnecting.waitFor({ state: 'detached' });
    await ui.button('Resume').waitFor();
    // The open job's states were fetched again: the timeline has the CLI's state.
    await ui.until('the state made meanwhile', async () => (await ui.stateCount()) === 2);
    await ui.expectNoErrors();
    await ui.screenshot('caught-up');

    await session.restartServe('e2e-live-updates-new-token-987654');
    await page
      .getByRole('alert')
      .filter({ hasText: 'Live updates stopped' })
      .filter({ hasText: 'reload the page with the new link' })
      .waitFor();
    await ui.screenshot('lost');

    // The browser reports each refused or failed connection of the stream; nothing else.
    const others = consoleErrors.filter(
      (e) => !/api\/events|ERR_CONNECTION_REFUSED|401 \(Unauthorized\)/.test(e),
    );
    expect(others).toEqual([]);
  });
});
