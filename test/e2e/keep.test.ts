// End to end, for real: what a folder job keeps, through `tidemark serve` in Debian's Chromium:
// the retention form with the engine's defaults, pinning a state, and the local cache while the
// archive folder is gone (renamed away) and after it is back.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TidemarkPage } from './tidemark-page.js';
import { haveChromium, openUiSession, type UiSession } from './ui-session.js';

const TOKEN = 'e2e-keep-token-0123456789';

describe.skipIf(!haveChromium)('retention and the local cache in the UI', () => {
  let session: UiSession;
  let dir: string;
  let served: UiSession['served'];
  let ui: TidemarkPage;
  let consoleErrors: string[];

  beforeAll(async () => {
    session = await openUiSession({
      name: 'e2e-keep',
      token: TOKEN,
      viewport: { width: 1000, height: 900 },
    });
    ({ dir, served, ui, consoleErrors } = session);
  });

  afterAll(async () => {
    await session?.close();
  });

  it('sets retention, pins a state, caches while the secondary is missing and ships after', async () => {
    const tree = path.join(dir, 'Documents');
    const archive = path.join(dir, 'usb', 'documents');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'first\n');
    const page = ui.page;
    await page.goto(`${served.url}?token=${TOKEN}`);
    await ui.createFolderJob(tree, archive);
    await ui.button('Start baseline').click();
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);

    // Retention: the form starts from the engine's policy; a change is saved and shown.
    const keep = page.getByRole('region', { name: 'Retention settings' });
    await keep.getByText('Every state is kept.').waitFor();
    await ui.button('Edit retention').click();
    await keep.getByRole('checkbox', { name: /Thin out old states/ }).check();
    const field = (name: string) => keep.getByRole('spinbutton', { name });
    expect(await field('Keep within (hours)').inputValue()).toBe('24');
    expect(await field('Keep hourly (hours)').inputValue()).toBe('168');
    expect(await field('Keep daily (days)').inputValue()).toBe('30');
    expect(await field('Keep weekly (weeks, empty for ever)').inputValue()).toBe('');
    await field('Keep daily (days)').fill('10');
    await field('Keep daily (days)').blur();
    await field('Cache limit of this job (MiB)').fill('64');
    await ui.screenshot('retention-form');
    await ui.button('Save retention').click();
    await keep.getByText(/one a day for 10 days, one a week beyond/).waitFor();
    await keep.getByText(/Local cache up to 67 MB\./).waitFor();

    // Pin the selected state; the summary says so.
    await ui.button('Pin this state').click();
    await ui.button('Unpin this state').waitFor();
    await page.getByText(/pinned: retention never removes it/).waitFor();

    // The backup disk goes away: the next point is cached, not failed.
    fs.renameSync(archive, `${archive}.away`);
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'second, while away\n');
    await ui.button('Snapshot now').click();
    const cacheLine = page.getByRole('note', { name: 'Local cache' });
    await cacheLine.getByText(/Secondary missing, 1 update cached/).waitFor();
    await ui.until('the cached state', async () => (await ui.stateCount()) === 2);
    expect(await ui.slider.getAttribute('aria-valuetext')).toMatch(/in the local cache$/);
    expect(await ui.button('Pin this state').isDisabled()).toBe(true);
    await page.getByText('In the local cache only (shipped when the secondary is back)').waitFor();
    await ui.expectNoErrors();
    await ui.screenshot('secondary-missing');

    // Back: the next snapshot ships the cached update first, in order.
    fs.renameSync(`${archive}.away`, archive);
    await ui.button('Snapshot now').click();
    const log = page.getByRole('region', { name: 'Activity log' });
    await log.getByText(/shipped 1 cached update in order \(state 1\)/).waitFor();
    await ui.until('the cache line to go', async () => (await cacheLine.count()) === 0);
    // The states are reloaded when the job's event says the cache emptied.
    await ui.until(
      'the state on the secondary',
      async () => !/local cache/.test((await ui.slider.getAttribute('aria-valuetext')) ?? ''),
    );
    await ui.screenshot('shipped');

    // A preview of a stricter policy: what it would remove now, and why; nothing is removed.
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'third\n');
    await ui.button('Snapshot now').click();
    await ui.until('state 2', async () => (await ui.stateCount()) === 3);
    await ui.button('Edit retention').click();
    for (const name of ['Keep within (hours)', 'Keep hourly (hours)', 'Keep daily (days)']) {
      await field(name).fill('0');
      await field(name).blur();
    }
    await field('Keep weekly (weeks, empty for ever)').fill('0');
    await field('Keep weekly (weeks, empty for ever)').blur();
    const preview = keep.getByRole('status', { name: 'Retention preview' });
    await preview.getByText('Saved now, this policy would remove 1 of the 3 states:').waitFor();
    await preview.getByText(/^state 1, .*: beyond weekly$/).waitFor();
    await ui.screenshot('retention-preview');
    await ui.button('Cancel').click();
    expect(await ui.stateCount()).toBe(3);
    expect(consoleErrors).toEqual([]);
  });
});
