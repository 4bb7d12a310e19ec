// The tree browser on a folder of 20 000 files, in Debian's Chromium over `tidemark serve`:
// how long the folder takes to open, how many rows are in the DOM, how long loading every page
// (End held down) and key presses take. Prints the numbers; asserts only what must hold.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { expect, it } from 'vitest';
import { tidemark } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';

const FILES = 20_000;
const TOKEN = 'bench-token-0123456789abcdef';

it(`opens and walks a folder of ${FILES} files`, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-tree-bench-'));
  const tree = path.join(dir, 'big');
  fs.mkdirSync(path.join(tree, 'many'), { recursive: true });
  for (let i = 0; i < FILES; i++)
    fs.writeFileSync(path.join(tree, 'many', `f${String(i).padStart(5, '0')}.txt`), `${i}`);
  const arch = path.join(dir, 'arch');
  expect(tidemark('init', tree, arch).code).toBe(0);
  const served = await startServe([
    '--token',
    TOKEN,
    '--data-dir',
    path.join(dir, 'data'),
    '--archive',
    arch,
  ]);
  const ctx = await chromium.launchPersistentContext(path.join(dir, 'chromium'), {
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
  });
  const numbers: Record<string, number | string | null> = {};
  try {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(`${served.url}?token=${TOKEN}`);
    const item = (n: string) => page.getByRole('treeitem', { name: n, exact: true });
    await item('many/').waitFor({ timeout: 60_000 });
    await item('many/').focus();
    let t = performance.now();
    await page.keyboard.press('Enter');
    await item('f00000.txt').waitFor();
    numbers['open the folder, first page shown (ms)'] = Math.round(performance.now() - t);
    numbers['treeitems in the DOM'] = await page.getByRole('treeitem').count();
    t = performance.now();
    for (let i = 0; i < 400 && (await item(`f${FILES - 1}.txt`).count()) === 0; i++) {
      await page.keyboard.press('End');
      await page.waitForTimeout(50);
    }
    numbers['End until every page is loaded (ms)'] = Math.round(performance.now() - t);
    numbers['treeitems in the DOM after'] = await page.getByRole('treeitem').count();
    t = performance.now();
    for (let i = 0; i < 50; i++) await page.keyboard.press('ArrowUp');
    numbers['50 × ArrowUp (ms)'] = Math.round(performance.now() - t);
    numbers['focused after'] = await page.locator(':focus').getAttribute('aria-label');
    expect(numbers['focused after']).toBe(`f${FILES - 51}.txt`);
    expect(numbers['treeitems in the DOM after']).toBeLessThan(100);
  } finally {
    await ctx.close();
    await served.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.table(numbers);
});
