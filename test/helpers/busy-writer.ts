import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A process that appends to `file` back to back, with no timer in between, and removes the
 * `remove` files one per append: a tree that is never quiet for even a millisecond.
 */
export async function startBusyAppender(
  file: string,
  remove: string[] = [],
): Promise<ChildProcess> {
  const script = `
    const fs = require('fs');
    const [file, ...remove] = process.argv.slice(1);
    const line = Buffer.alloc(200, 120);
    process.stdout.write('ready\\n');
    for (let i = 0; ; i++) {
      fs.appendFileSync(file, line);
      if (i < remove.length) fs.rmSync(remove[i], { force: true });
    }
  `;
  const child = spawn(process.execPath, ['-e', script, file, ...remove], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return child;
}
