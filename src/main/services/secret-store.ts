// Where the app keeps what must never be shown again: S3 credentials and encryption passphrases
// of extra secondaries. The Electron shell injects one backed by the OS keyring (safeStorage,
// src/main/electron); `tidemark serve` keeps them in a file only its user can read.
import * as path from 'node:path';
import { z } from 'zod';
import { readJson, writeJsonAtomic } from './atomic-file.js';

export interface SecretStore {
  /** Says where secrets live, for people (README, logs never show the values). */
  readonly description: string;
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
}

const secretsFile = z.object({ version: z.literal(1), secrets: z.record(z.string(), z.string()) });

/**
 * A JSON file of strings, written atomically with mode 0600. `encode`/`decode` let the Electron
 * shell store safeStorage ciphertext in the same shape; headless, the values are plain text
 * protected by the file mode alone (there is no keyring to ask on a server).
 */
export class FileSecretStore implements SecretStore {
  constructor(
    readonly file: string,
    readonly description: string,
    private readonly encode: (value: string) => string = (v) => v,
    private readonly decode: (stored: string) => string = (v) => v,
  ) {}

  static headless(dataDir: string): FileSecretStore {
    const file = path.join(dataDir, 'secrets.json');
    return new FileSecretStore(file, `${file} (mode 0600, plain text)`);
  }

  private async all(): Promise<Record<string, string>> {
    return (await readJson(this.file, secretsFile, { version: 1, secrets: {} })).secrets;
  }

  async get(key: string): Promise<string | undefined> {
    const stored = (await this.all())[key];
    return stored === undefined ? undefined : this.decode(stored);
  }

  async set(key: string, value: string): Promise<void> {
    const secrets = await this.all();
    secrets[key] = this.encode(value);
    await writeJsonAtomic(this.file, { version: 1, secrets });
  }

  async delete(key: string): Promise<void> {
    const secrets = await this.all();
    if (!(key in secrets)) return;
    delete secrets[key];
    await writeJsonAtomic(this.file, { version: 1, secrets });
  }
}
