// Where jobs.json and settings.json live. The desktop app and `tidemark serve` use the same
// folder, so that both see the same jobs.
import * as os from 'node:os';
import * as path from 'node:path';

export function defaultDataDir(): string {
  // For tests and for people who keep their settings elsewhere.
  if (process.env.TIDEMARK_DATA_DIR) return path.resolve(process.env.TIDEMARK_DATA_DIR);
  const home = os.homedir();
  if (process.platform === 'win32')
    return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'Tidemark');
  if (process.platform === 'darwin')
    return path.join(home, 'Library', 'Application Support', 'Tidemark');
  return path.join(process.env.XDG_CONFIG_HOME ?? path.join(home, '.config'), 'Tidemark');
}
