// End to end, for real: a job's extra secondaries in the UI, through `tidemark serve` in Debian's
// Chromium: a bucket that cannot be reached is refused in one line, a folder is added with an
// encryption passphrase (shown only as set), given its own retention and queue limit, receives
// the next snapshot, and is removed (its archive stays).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, openUiSession, type UiSession } from './ui-session.js';

const TOKEN = 'e2e-secondaries-token-0123456789';
const PASSPHRASE = 'e2e passphrase 51ab';

describe.skipIf(!haveChromium)('extra secondaries in the UI', () => {
  let session: UiSession;

  beforeAll(async () => {
    session = await openUiSession({
      name: 'e2e-secondaries',
      token: TOKEN,
      viewport: { width: 1000, height: 1000 },
    });
  });

  afterAll(async () => {
    await session?.close();
  });

  it('adds a folder secondary, sets its retention and queue limit, ships to it, removes it', async () => {
    const { dir, served, ui, consoleErrors } = session;
    const tree = path.join(dir, 'Documents');
    const nas = path.join(dir, 'nas', 'documents');
    fs.mkdirSync(tree, { recursive: true });
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'first\n');
    const page = ui.page;
    await page.goto(`${served.url}?token=${TOKEN}`);
    await ui.createFolderJob(tree, path.join(dir, 'usb', 'documents'));
    await ui.button('Start baseline').click();
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);

    const region = page.getByRole('region', { name: 'Secondaries' });
    await ui.button('Add a secondary').click();
    const form = page.getByRole('form', { name: 'Add a secondary' });
    await form.getByRole('radio', { name: 'S3 bucket' }).check();
    await form.getByLabel('Endpoint URL', { exact: true }).fill('http://127.0.0.1:9');
    await form.getByLabel('Bucket', { exact: true }).fill('offsite');
    await form.getByLabel('Access key ID', { exact: true }).fill('AKIAEXAMPLE');
    await form.getByLabel('Secret access key', { exact: true }).fill('not-a-real-secret');
    await ui.button('Add this secondary').click();
    await form
      .getByRole('alert')
      .getByText(/cannot reach the S3 server http:\/\/127\.0\.0\.1:9/)
      .waitFor();
    await ui.screenshot('s3-unreachable');

    await form.getByRole('radio', { name: 'Folder or disk' }).check();
    await form.getByLabel('Secondary folder', { exact: true }).fill(nas);
    await form.getByLabel('Encryption passphrase (optional)', { exact: true }).fill(PASSPHRASE);
    await ui.button('Add this secondary').click();
    const item = region.getByRole('listitem', { name: nas });
    await item.getByText(/last state 0/).waitFor();
    await item.getByText('encrypted', { exact: true }).waitFor();
    await item
      .getByText(/passphrase set · job's retention: keeps every state · no queue limit/)
      .waitFor();
    expect(await page.content()).not.toContain(PASSPHRASE);

    await ui.button(`Settings of ${nas}`).click();
    await item.getByRole('spinbutton', { name: 'Queue limit (MiB)' }).fill('64');
    await item.getByRole('checkbox', { name: /Its own retention/ }).check();
    await item.getByRole('checkbox', { name: /Thin out old states/ }).check();
    await ui.screenshot('secondary-settings');
    await ui.button('Save secondary settings').click();
    await item.getByText(/own retention: keeps all of 24 h, hourly 168 h, daily 30 d/).waitFor();
    await item.getByText(/queue limit 67 MB/).waitFor();

    fs.writeFileSync(path.join(tree, 'notes.txt'), 'second\n');
    await ui.button('Snapshot now').click();
    await item.getByText(/last state 1/).waitFor();
    await ui.screenshot('secondary-shipped');

    await ui.button(`Remove ${nas}`).click();
    await ui.button('Stop using it').click();
    await ui.until('the secondary to go', async () => (await item.count()) === 0);
    expect(fs.existsSync(path.join(nas, 'manifest.json')) || fs.readdirSync(nas).length > 0).toBe(
      true,
    );
    await ui.expectNoErrors();
    expect(consoleErrors).toEqual([]);
  });
});
