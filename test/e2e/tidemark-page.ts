// Page object for the Tidemark UI: the tests say what a person does, this says how.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { Locator, Page } from 'playwright-core';

export class TidemarkPage {
  private shot = 0;

  constructor(
    readonly page: Page,
    private readonly shotsDir: string,
  ) {
    fs.mkdirSync(shotsDir, { recursive: true });
  }

  async screenshot(name: string): Promise<void> {
    this.shot++;
    const file = path.join(this.shotsDir, `${String(this.shot).padStart(2, '0')}-${name}.png`);
    await this.page.screenshot({ path: file, fullPage: true });
  }

  button(name: string): Locator {
    return this.page.getByRole('button', { name, exact: true });
  }

  get slider(): Locator {
    return this.page.getByRole('slider', { name: 'Time slider', exact: true });
  }

  get wizard(): Locator {
    return this.page.getByRole('region', { name: 'Restore wizard' });
  }

  /** Waits until `fn` returns true, polling; fails with `what` after `ms`. */
  async until(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await fn()) return;
      await this.page.waitForTimeout(100);
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  async stateCount(): Promise<number> {
    if ((await this.slider.count()) === 0) return 0;
    return Number(await this.slider.getAttribute('aria-valuemax')) + 1;
  }

  async sliderValue(): Promise<number> {
    return Number(await this.slider.getAttribute('aria-valuenow'));
  }

  async createJob(primary: string, secondary: string): Promise<void> {
    await this.button('New job').click();
    await this.page.getByLabel('Disk or image file').fill(primary);
    await this.page.getByLabel('Archive folder on the backup disk').fill(secondary);
    await this.page.getByText('Looks good').waitFor();
  }

  async createFolderJob(folder: string, secondary: string): Promise<void> {
    await this.button('New job').click();
    await this.page.getByRole('radio', { name: /^Folder/ }).check();
    await this.page.getByLabel('Folder to protect').fill(folder);
    await this.page.getByLabel('Archive folder on the backup disk').fill(secondary);
    await this.page.getByText('Looks good').waitFor();
  }

  async expectNoErrors(): Promise<void> {
    expect(await this.page.getByRole('alert').allTextContents()).toEqual([]);
  }
}
