// Whether the machine runs on battery. Electron's powerMonitor emits 'on-battery' / 'on-ac'
// only on macOS and Windows, so on Linux the kernel's power-supply class is read directly, and
// every source is polled because events alone miss changes.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export const LINUX_POWER_SUPPLY_DIR = '/sys/class/power_supply';

/** How often the watcher looks again: pausing a backup half a minute late is harmless. */
export const POWER_POLL_MS = 30_000;

interface Supply {
  type: string;
  online: boolean;
  status: string;
  /** 'Device' for a mouse's or headset's battery, which says nothing about the machine. */
  scope: string;
}

async function readAttribute(dir: string, name: string): Promise<string> {
  return (await fsp.readFile(path.join(dir, name), 'utf8').catch(() => '')).trim();
}

async function readSupply(dir: string): Promise<Supply> {
  const [type, online, status, scope] = await Promise.all(
    ['type', 'online', 'status', 'scope'].map((name) => readAttribute(dir, name)),
  );
  return { type: type ?? '', online: online === '1', status: status ?? '', scope: scope ?? '' };
}

/**
 * True when no external supply (Mains, or a USB-C charger, which some laptops list as USB) is
 * online and a system battery is discharging. No supplies at all (a desktop, a VM, a container
 * without /sys) reads as not on battery: a wrong "on battery" would pause backups for good.
 */
export async function linuxOnBattery(root = LINUX_POWER_SUPPLY_DIR): Promise<boolean> {
  const names = await fsp.readdir(root).catch(() => [] as string[]);
  const supplies = await Promise.all(names.map((name) => readSupply(path.join(root, name))));
  const external = supplies.some((s) => s.type !== 'Battery' && s.online);
  if (external) return false;
  return supplies.some(
    (s) => s.type === 'Battery' && s.scope !== 'Device' && s.status === 'Discharging',
  );
}

export interface PowerWatcher {
  /** Read now (e.g. on a powerMonitor event); calls back if the answer changed. */
  poll(): Promise<void>;
  stop(): void;
}

/**
 * Polls `read` every `intervalMs` and calls `onChange` with the first answer and then only
 * when it differs from the last one reported. A failed read keeps the last answer.
 */
export function watchOnBattery(
  read: () => Promise<boolean> | boolean,
  onChange: (onBattery: boolean) => void,
  intervalMs = POWER_POLL_MS,
): PowerWatcher {
  let last: boolean | null = null;
  let stopped = false;
  // Polls from the timer and from events may overlap; each read's answer is compared in the
  // order the reads finish, which is the freshest order.
  const poll = async (): Promise<void> => {
    let now: boolean;
    try {
      now = await read();
    } catch {
      return;
    }
    if (stopped || now === last) return;
    last = now;
    onChange(now);
  };
  const timer = setInterval(() => void poll(), intervalMs);
  // Power polling alone must not keep a process alive.
  timer.unref();
  void poll();
  return {
    poll,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
