import { execFileSync } from 'node:child_process';

/** Why root-only tests cannot run here, or null when they can. */
export function rootSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (loop devices, mount): run the tests as root';
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'needs losetup (util-linux)';
  }
  return null;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}
