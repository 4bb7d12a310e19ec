import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { linuxOnBattery, watchOnBattery } from '../../src/main/services/power-source.js';
import { tempDir } from '../helpers/tmp.js';

// Laid out like /sys/class/power_supply: one folder per supply, one value per file.
function supply(root: string, name: string, attributes: Record<string, string>): void {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [key, value] of Object.entries(attributes)) {
    fs.writeFileSync(path.join(dir, key), `${value}\n`);
  }
}

describe('the Linux power supplies', () => {
  it('read as on battery only when no charger is online and the battery discharges', async () => {
    const root = tempDir();
    supply(root, 'AC', { type: 'Mains', online: '1' });
    supply(root, 'BAT0', { type: 'Battery', status: 'Charging', scope: 'System' });
    expect(await linuxOnBattery(root)).toBe(false);

    fs.writeFileSync(path.join(root, 'AC', 'online'), '0\n');
    fs.writeFileSync(path.join(root, 'BAT0', 'status'), 'Discharging\n');
    expect(await linuxOnBattery(root)).toBe(true);

    // Unplugged but full: some firmware says "Not charging" or "Full" a moment before it
    // starts discharging; nothing discharges yet, so backups may go on.
    fs.writeFileSync(path.join(root, 'BAT0', 'status'), 'Full\n');
    expect(await linuxOnBattery(root)).toBe(false);
  });

  it('count a USB-C charger as a charger', async () => {
    const root = tempDir();
    supply(root, 'ucsi-source-psy-USBC000:001', { type: 'USB', online: '1' });
    supply(root, 'BAT0', { type: 'Battery', status: 'Discharging' });
    expect(await linuxOnBattery(root)).toBe(false);
  });

  it('ignore a wireless mouse battery on a desktop', async () => {
    const root = tempDir();
    supply(root, 'hidpp_battery_0', { type: 'Battery', status: 'Discharging', scope: 'Device' });
    expect(await linuxOnBattery(root)).toBe(false);
  });

  it('read as not on battery with no supplies or no folder at all', async () => {
    const root = tempDir();
    expect(await linuxOnBattery(root)).toBe(false);
    expect(await linuxOnBattery(path.join(root, 'missing'))).toBe(false);
  });
});

describe('the power watcher', () => {
  it('reports the first answer, then only changes, and nothing once stopped', async () => {
    const root = tempDir();
    supply(root, 'AC', { type: 'Mains', online: '1' });
    supply(root, 'BAT0', { type: 'Battery', status: 'Discharging' });
    const seen: boolean[] = [];
    // A long interval: the test drives the polls itself.
    const watcher = watchOnBattery(
      () => linuxOnBattery(root),
      (onBattery) => seen.push(onBattery),
      60_000,
    );
    await watcher.poll();
    await watcher.poll();
    expect(seen).toEqual([false]);

    fs.writeFileSync(path.join(root, 'AC', 'online'), '0\n');
    await watcher.poll();
    await watcher.poll();
    expect(seen).toEqual([false, true]);

    fs.writeFileSync(path.join(root, 'AC', 'online'), '1\n');
    await watcher.poll();
    expect(seen).toEqual([false, true, false]);

    watcher.stop();
    fs.writeFileSync(path.join(root, 'AC', 'online'), '0\n');
    await watcher.poll();
    expect(seen).toEqual([false, true, false]);
  });

  it('polls on its own timer and keeps the last answer when a read fails', async () => {
    let answer: boolean | Error = true;
    const seen: boolean[] = [];
    const watcher = watchOnBattery(
      () => {
        if (answer instanceof Error) throw answer;
        return answer;
      },
      (onBattery) => seen.push(onBattery),
      5,
    );
    await expect.poll(() => seen).toEqual([true]);
    answer = new Error('sysfs went away');
    await new Promise((resolve) => setTimeout(resolve, 30));
    answer = false;
    await expect.poll(() => seen).toEqual([true, false]);
    watcher.stop();
  });
});
