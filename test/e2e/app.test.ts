// End to end, for real: `tidemark serve` on real temporary image files, the built UI in
// Debian's Chromium driven by playwright-core, bytes checked on disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomImage, scribble } from '../helpers/engine.js';
import { sha256 } from '../helpers/tmp.js';
import type { TidemarkPage } from './tidemark-page.js';
import { haveChromium, openUiSession, type UiSession } from './ui-session.js';

const TOKEN = 'e2e-token-0123456789abcdef';

describe.skipIf(!haveChromium)('the UI over tidemark serve, in Chromium', () => {
  let session: UiSession;
  let dir: string;
  let served: UiSession['served'];
  let ui: TidemarkPage;
  let consoleErrors: string[];

  beforeAll(async () => {
    session = await openUiSession({
      name: 'e2e',
      token: TOKEN,
      viewport: { width: 1000, height: 760 },
      colorScheme: 'light',
    });
    ({ dir, served, ui, consoleErrors } = session);
  });

  afterAll(async () => {
    await session?.close();
  });

  it('protects an image, snapshots, slides back in time and restores it, verified on disk', async () => {
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'backup', 'tidemark');
    const restored = path.join(dir, 'restored.img');
    // Big enough that the baseline is still running when its progress is photographed.
    randomImage(image, 64);
    const baseline = sha256(image);
    const page = ui.page;

    // The token is traded for a cookie and leaves the address bar.
    await page.goto(`${served.url}?token=${TOKEN}`);
    expect(page.url()).toBe(served.url);
    await page.getByText('Nothing is protected yet.').waitFor();
    await ui.screenshot('empty');

    await ui.createJob(image, archive);
    // The headless server has no native dialog to offer: no "Browse…" next to the paths.
    expect(await page.getByRole('button', { name: /^Browse for/ }).count()).toBe(0);
    await ui.screenshot('new-job');
    await ui.button('Start baseline').click();
    await page.getByRole('progressbar', { name: 'Recording the baseline progress' }).waitFor();
    await ui.screenshot('baseline-running');
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);
    await page.getByText('Protected', { exact: true }).waitFor();
    await ui.expectNoErrors();
    await ui.screenshot('baseline');

    scribble(image, 50 << 20, 300_000);
    const changed = sha256(image);
    await ui.button('Snapshot now').click();
    await ui.until('the second state', async () => (await ui.stateCount()) === 2);
    expect(await ui.sliderValue()).toBe(1);
    await ui.screenshot('snapshot');

    await ui.slider.focus();
    await page.keyboard.press('Home');
    expect(await ui.sliderValue()).toBe(0);
    await page.getByText('Baseline: every block').waitFor();
    await page.keyboard.press('ArrowRight');
    expect(await ui.sliderValue()).toBe(1);
    await page.getByText(/blocks since state 0/).waitFor();
    await ui.screenshot('slider-state-1');
    await page.keyboard.press('ArrowLeft');
    expect(await ui.sliderValue()).toBe(0);
    await page.keyboard.press('End');
    expect(await ui.sliderValue()).toBe(1);
    // PageUp/PageDown move by a day: no state is a day away, so to the first/last one.
    await page.keyboard.press('PageUp');
    expect(await ui.sliderValue()).toBe(0);
    await page.keyboard.press('PageDown');
    expect(await ui.sliderValue()).toBe(1);
    await page.keyboard.press('Home');
    await ui.screenshot('slider-state-0');

    await ui.button('Restore').click();
    const wizard = ui.wizard;
    await expect(wizard.getByLabel('State to restore')).toBeTruthy();
    expect(await wizard.getByLabel('State to restore').inputValue()).toBe('0');
    await ui.screenshot('wizard-state');
    await wizard.getByRole('button', { name: 'Next' }).click();
    expect(await wizard.getByRole('radio', { name: /Everything/ }).isChecked()).toBe(true);
    expect(await wizard.getByRole('radio', { name: /A file/ }).isDisabled()).toBe(true);
    await ui.screenshot('wizard-what');
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByRole('radio', { name: /Over the original/ }).check();
    expect(await wizard.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await ui.screenshot('wizard-where-original-warning');
    await wizard.getByRole('radio', { name: /To a new file/ }).check();
    // An existing file is refused at the check step, before anything is written.
    await wizard.getByLabel('Restore to (a new file, or a folder)').fill(image);
    expect(await wizard.getByRole('button', { name: /^Browse for/ }).count()).toBe(0);
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByText(`${image} exists: choose a new name (nothing is overwritten)`).waitFor();
    expect(await wizard.getByRole('button', { name: 'Restore now' }).isDisabled()).toBe(true);
    await ui.screenshot('wizard-confirm-refused');
    await wizard.getByRole('button', { name: 'Back' }).click();
    await wizard.getByLabel('Restore to (a new file, or a folder)').fill(restored);
    await ui.screenshot('wizard-where');
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByText(`${restored} (new file)`).waitFor();
    await wizard.getByText(/^67 MB · .* free on the target$/).waitFor();
    await ui.screenshot('wizard-confirm');
    await wizard.getByRole('button', { name: 'Restore now' }).click();
    await wizard.getByText('Restored and verified').waitFor({ timeout: 60_000 });
    await ui.screenshot('wizard-done');

    expect(sha256(restored)).toBe(baseline);
    // The primary was not touched.
    expect(sha256(image)).toBe(changed);

    await ui.button('Verify archive').click();
    await page.getByText(/Verified: 2 updates, .* all checksums match/).waitFor();
    await ui.screenshot('verified');

    await ui.button('Status').click();
    await page.getByRole('article', { name: /Job disk\.img/ }).waitFor();
    await ui.screenshot('status');
    await page.emulateMedia({ colorScheme: 'dark' });
    await ui.screenshot('status-dark');
    await page.getByRole('button', { name: 'disk.img', exact: true }).click();
    await ui.slider.waitFor();
    await ui.screenshot('job-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('says why a job cannot be made, and opens on the only job after a reload', async () => {
    const page = ui.page;
    await ui.button('New job').click();
    await page.getByLabel('Disk or image file').fill(path.join(dir, 'disk.img'));
    await page.getByLabel('Archive folder on the backup disk').fill(path.join(dir, 'disk.img'));
    await page.getByText('the backup cannot be the primary itself').waitFor();
    expect(await ui.button('Start baseline').isDisabled()).toBe(true);
    await page.getByLabel('Archive folder on the backup disk').fill(path.join(dir, 'data'));
    await page.getByText(/is not empty/).waitFor();
    await ui.screenshot('new-job-refused');

    await page.reload();
    // A single job: the UI opens on it with its time slider showing.
    await ui.slider.waitFor();
    expect(await ui.stateCount()).toBe(2);

    // Schedule settings: a refused change says why, a good one is kept across a reload.
    await ui.button('Edit schedule').click();
    await page.getByLabel('Quiet hours (no snapshots)').check();
    await page.getByLabel('Quiet hours end').selectOption('22');
    await ui.button('Save schedule').click();
    await page.getByText('quiet hours must start and end at different hours').waitFor();
    await ui.screenshot('schedule-refused');
    await page.getByLabel('Quiet hours end').selectOption('6');
    await page.getByLabel('Snapshot interval').selectOption('5');
    await ui.button('Save schedule').click();
    await ui.button('Edit schedule').waitFor();
    await ui.expectNoErrors();
    await page.reload();
    await ui.button('Edit schedule').click();
    expect(await page.getByLabel('Snapshot interval').inputValue()).toBe('5');
    expect(await page.getByLabel('Quiet hours start').inputValue()).toBe('22');
    await ui.screenshot('schedule');

    await ui.button('Cancel').click();

    // A snapshot that fails says why in one line on the card, and the job needs attention; the
    // next good one clears it.
    const manifest = path.join(dir, 'backup', 'tidemark', 'tidemark.json');
    const good = fs.readFileSync(manifest);
    fs.writeFileSync(manifest, '{ damaged');
    await ui.button('Snapshot now').click();
    await page.getByText('Needs attention', { exact: true }).waitFor();
    const alert = page.locator('p.error[role="alert"]');
    await alert.waitFor();
    const message = (await alert.textContent()) ?? '';
    expect(message).toMatch(/tidemark\.json/);
    expect(message).not.toMatch(/\n|\bat .*\.js:\d+/);
    await ui.screenshot('job-error');
    fs.writeFileSync(manifest, good);
    await ui.button('Snapshot now').click();
    await page.getByText('Protected', { exact: true }).waitFor();
    expect(await alert.count()).toBe(0);

    // Removing the job forgets it; the archive stays on the backup disk.
    await ui.button('Remove job').click();
    await ui.screenshot('remove-job');
    await ui.button('Remove the job').click();
    await page.getByText('Nothing is protected yet.').waitFor();
    expect(fs.readdirSync(path.join(dir, 'backup', 'tidemark'))).toContain('tidemark.json');
  });

  it('protects a folder, snapshots, slides back, browses and restores one file, verified on disk', async () => {
    const tree = path.join(dir, 'Documents');
    const archive = path.join(dir, 'backup', 'documents');
    const restoredDir = path.join(dir, 'restored-files');
    fs.mkdirSync(path.join(tree, 'docs'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'photos'));
    const thesis = path.join(tree, 'docs', 'thesis.txt');
    const before = 'Chapter one: the tide comes in.\n';
    fs.writeFileSync(thesis, before);
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'remember the milk\n');
    fs.writeFileSync(path.join(tree, 'photos', 'beach.jpg'), Buffer.alloc(300_000, 9));
    const page = ui.page;

    await page.goto(served.url);
    await page.getByText('Nothing is protected yet.').waitFor();
    await ui.createFolderJob(tree, archive);
    await ui.screenshot('volume-new-job');
    await ui.button('Start baseline').click();
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);
    const browser = page.getByRole('region', { name: 'Files in the selected state' });
    await browser.getByRole('treeitem', { name: 'docs/', exact: true }).waitFor();
    await page.getByText(/Baseline: every file/).waitFor();
    await ui.expectNoErrors();
    await ui.screenshot('volume-baseline');

    const after = 'Chapter one, rewritten: the tide goes out.\n';
    fs.writeFileSync(thesis, after);
    fs.rmSync(path.join(tree, 'notes.txt'));
    fs.writeFileSync(path.join(tree, 'docs', 'chapter-two.txt'), 'Chapter two.\n');
    await ui.button('Snapshot now').click();
    await ui.until('the second state', async () => (await ui.stateCount()) === 2);
    expect(await ui.sliderValue()).toBe(1);
    const changes = page.getByRole('region', { name: 'What changed' });
    await changes.getByText('What changed since state 0').waitFor();
    await changes.getByText('docs/chapter-two.txt').waitFor();
    // Read in one go once all four are drawn: the list is drawn again when the job's states
    // are reloaded after the point, and may be empty for a moment meanwhile.
    let listed: string[] = [];
    await ui
      .until('the four changes', async () => {
        listed = await changes.getByRole('listitem').allInnerTexts();
        return listed.length === 4;
      })
      .catch(() => undefined);
    expect(listed).toEqual([
      // The folder's time changed with what it holds.
      expect.stringMatching(/^~\s+docs\s+folder$/),
      expect.stringMatching(/^\+\s+docs\/chapter-two\.txt\s+13 B$/),
      expect.stringMatching(/^~\s+docs\/thesis\.txt\s+32 B → 43 B$/),
      expect.stringMatching(/^−\s+notes\.txt\s+18 B$/),
    ]);
    await ui.screenshot('volume-snapshot-changes');

    // Back to the baseline with the keyboard; the browser shows the tree as it was.
    await ui.slider.focus();
    await page.keyboard.press('ArrowLeft');
    expect(await ui.sliderValue()).toBe(0);
    await browser.getByRole('heading', { name: 'Files in state 0' }).waitFor();
    await browser.getByRole('treeitem', { name: 'notes.txt', exact: true }).waitFor();
    await browser.getByRole('treeitem', { name: 'docs/', exact: true }).focus();
    await page.keyboard.press('Enter');
    expect(
      await browser
        .getByRole('treeitem', { name: 'docs/', exact: true })
        .getAttribute('aria-expanded'),
    ).toBe('true');
    await browser.getByRole('treeitem', { name: 'thesis.txt', exact: true }).click();
    expect(
      await browser.getByRole('treeitem', { name: 'chapter-two.txt', exact: true }).count(),
    ).toBe(0);
    await page.getByText('Selected: docs/thesis.txt').waitFor();
    // Versions of this file: one per state that changed it; a click moves the slider there.
    const versions = page.getByRole('region', { name: 'Versions of this file' });
    await versions.getByRole('button', { name: /^State 1 · / }).click();
    expect(await ui.sliderValue()).toBe(1);
    expect(await versions.getByRole('button').count()).toBe(2);
    // Open folders stay open from state to state.
    await browser.getByRole('treeitem', { name: 'chapter-two.txt', exact: true }).waitFor();
    await ui.screenshot('volume-browse-state-1');
    await versions.getByRole('button', { name: /^State 0 · / }).click();
    expect(await ui.sliderValue()).toBe(0);
    await browser.getByRole('treeitem', { name: 'notes.txt', exact: true }).waitFor();
    expect(
      await browser
        .getByRole('treeitem', { name: 'thesis.txt', exact: true })
        .getAttribute('aria-selected'),
    ).toBe('true');
    await ui.screenshot('volume-browse-state-0');

    await ui.button('Restore').click();
    const wizard = ui.wizard;
    expect(await wizard.getByLabel('State to restore').inputValue()).toBe('0');
    await wizard.getByRole('button', { name: 'Next' }).click();
    expect(await wizard.getByRole('radio', { name: /A file/ }).isChecked()).toBe(true);
    expect(await wizard.getByLabel('Path inside the state').inputValue()).toBe('docs/thesis.txt');
    await ui.screenshot('volume-wizard-what');
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByRole('radio', { name: /Over the original/ }).check();
    await wizard.getByText(`This overwrites ${thesis} with its version from state 0`).waitFor();
    expect(await wizard.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await ui.screenshot('volume-wizard-where-original-warning');
    await wizard.getByRole('radio', { name: /Into a new folder/ }).check();
    await wizard.getByLabel('Restore into folder').fill(restoredDir);
    await ui.screenshot('volume-wizard-where');
    await wizard.getByRole('button', { name: 'Next' }).click();
    const restored = path.join(restoredDir, 'thesis.txt');
    await wizard.getByText(`${restored} (new)`).waitFor();
    await wizard.getByText(/^1 file, 32 B · .* free on the target$/).waitFor();
    await ui.screenshot('volume-wizard-confirm');
    await wizard.getByRole('button', { name: 'Restore now' }).click();
    await wizard.getByText('Restored and verified').waitFor({ timeout: 60_000 });
    await ui.screenshot('volume-wizard-done');
    expect(await wizard.getByRole('status').innerText()).toMatch(
      /^Restored and verified: docs\/thesis\.txt of state 0 to .*\n+1 file, 32 B, every file matches its recorded content hash$/,
    );

    // The earlier bytes, and nothing else written; the live file is untouched.
    expect(fs.readFileSync(restored, 'utf8')).toBe(before);
    expect(fs.readdirSync(restoredDir)).toEqual(['thesis.txt']);
    expect(fs.readFileSync(thesis, 'utf8')).toBe(after);

    await wizard.getByRole('button', { name: 'Done' }).click();
    await ui.button('Verify archive').click();
    await page.getByText(/Verified: 2 updates, .* all checksums match/).waitFor();

    // "Where is my chapter two?": not in state 0, found in state 1, and shown in the tree.
    await browser.getByLabel('Search this state').fill('CHAPTER');
    await browser.getByText('Nothing named like “CHAPTER” in state 0.').waitFor();
    await ui.slider.focus();
    await page.keyboard.press('End');
    await browser.getByRole('button', { name: 'docs/chapter-two.txt' }).click();
    await page.getByText('Selected: docs/chapter-two.txt').waitFor();
    expect(
      await browser
        .getByRole('treeitem', { name: 'chapter-two.txt', exact: true })
        .getAttribute('aria-selected'),
    ).toBe('true');
    await ui.expectNoErrors();
    await ui.screenshot('volume-search-found');
    await page.emulateMedia({ colorScheme: 'dark' });
    await ui.screenshot('volume-job-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('drives the folder tree with the keyboard, chooses two files and restores both, verified', async () => {
    const tree = path.join(dir, 'Projects');
    const archive = path.join(dir, 'backup', 'projects');
    const restoredDir = path.join(dir, 'restored-two');
    fs.mkdirSync(path.join(tree, 'alpha'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'beta'));
    fs.writeFileSync(path.join(tree, 'alpha', 'one.txt'), 'first file\n');
    fs.writeFileSync(path.join(tree, 'beta', 'two.bin'), Buffer.alloc(70_000, 0x5a));
    fs.writeFileSync(path.join(tree, 'gamma.txt'), 'not chosen\n');
    const page = ui.page;
    await page.goto(`${served.url}?token=${TOKEN}`);
    await ui.createFolderJob(tree, archive);
    await ui.button('Start baseline').click();
    await ui.until('the baseline', async () => (await ui.stateCount()) === 1);
    const files = page.getByRole('tree', { name: 'Files in state 0' });
    const item = (name: string) => files.getByRole('treeitem', { name, exact: true });
    const focused = () => page.locator(':focus').getAttribute('aria-label');
    await item('alpha/').waitFor();
    expect(await files.getAttribute('aria-multiselectable')).toBe('true');

    // One tab stop: Tab from the search box lands on the first item.
    await page.getByLabel('Search this state').focus();
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('alpha/');
    await page.keyboard.press('Enter');
    await item('one.txt').waitFor();
    expect(await item('alpha/').getAttribute('aria-expanded')).toBe('true');
    expect(await item('one.txt').getAttribute('aria-level')).toBe('2');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press(' ');
    await page.keyboard.press('ArrowDown');
    expect(await focused()).toBe('beta/');
    await page.keyboard.press('ArrowRight');
    await item('two.bin').waitFor();
    await page.keyboard.press('ArrowRight');
    expect(await focused()).toBe('two.bin');
    await page.keyboard.press(' ');
    await page.keyboard.press('ArrowLeft');
    expect(await focused()).toBe('beta/');
    await page.keyboard.press('End');
    expect(await focused()).toBe('gamma.txt');
    await page.keyboard.press('Home');
    expect(await focused()).toBe('alpha/');
    await page.keyboard.press('b');
    expect(await focused()).toBe('beta/');
    for (const [name, on] of [
      ['one.txt', 'true'],
      ['two.bin', 'true'],
      ['gamma.txt', 'false'],
    ] as const)
      expect(await item(name).getAttribute('aria-selected')).toBe(on);
    await page.getByText('Selected: alpha/one.txt, beta/two.bin').waitFor();
    await ui.screenshot('tree-two-chosen');
    await page.emulateMedia({ colorScheme: 'dark' });
    await ui.screenshot('tree-two-chosen-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    await ui.button('Restore').click();
    const wizard = ui.wizard;
    await wizard.getByRole('button', { name: 'Next' }).click();
    expect(await wizard.getByRole('radio', { name: /Several files and folders/ }).isChecked()).toBe(
      true,
    );
    expect(await wizard.getByLabel('Paths inside the state, one per line').inputValue()).toBe(
      'alpha/one.txt\nbeta/two.bin',
    );
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByLabel('Restore into folder').fill(restoredDir);
    await wizard.getByRole('button', { name: 'Next' }).click();
    await wizard.getByText(/^2 files, 70 kB · .* free on the target$/).waitFor();
    await wizard.getByRole('button', { name: 'Restore now' }).click();
    await wizard.getByText('Restored and verified').waitFor({ timeout: 60_000 });
    expect(
      await wizard
        .getByRole('list', { name: 'Restored paths' })
        .getByRole('listitem')
        .allInnerTexts(),
    ).toEqual([
      `alpha/one.txt → ${restoredDir}/alpha/one.txt`,
      `beta/two.bin → ${restoredDir}/beta/two.bin`,
    ]);
    await wizard
      .getByText('2 files, 2 folders, 70 kB, every file matches its recorded content hash')
      .waitFor();
    await ui.screenshot('tree-two-restored');
    expect(fs.readFileSync(path.join(restoredDir, 'alpha', 'one.txt'), 'utf8')).toBe(
      'first file\n',
    );
    expect(fs.readFileSync(path.join(restoredDir, 'beta', 'two.bin'))).toEqual(
      Buffer.alloc(70_000, 0x5a),
    );
    expect(fs.readdirSync(restoredDir).sort()).toEqual(['alpha', 'beta']);
    await ui.expectNoErrors();
  });

  // Last: it judges everything the tests above did in the page.
  it('logged no script error and no CSP violation', () => {
    expect(consoleErrors).toEqual([]);
  });
});
