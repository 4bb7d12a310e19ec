// The app's local settings of extra secondaries and its headless secret store: version 1 files
// (written by the CLI before settings existed) still read, secrets in a file only its user reads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  forgetSecondary,
  recordSecondary,
  secondariesOf,
  secondarySettingsOf,
} from '../../src/main/services/secondary-registry.js';
import { FileSecretStore } from '../../src/main/services/secret-store.js';
import type { SecondarySettingsView } from '../../src/shared/secondaries.js';
import { tempDir } from '../helpers/tmp.js';

const SETTINGS: SecondarySettingsView = {
  kind: 's3',
  endpoint: 'http://127.0.0.1:7480',
  region: 'us-east-1',
  pathStyle: true,
  credentials: 'set',
  passphraseSet: true,
  bwlimitBytes: 1 << 20,
  retention: null,
  queueLimitBytes: null,
};

describe('secondaries.json and the secret store', () => {
  it('reads a version 1 file, writes version 2 with settings, forgets settings with the target', async () => {
    const data = tempDir();
    const file = path.join(data, 'secondaries.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ version: 1, archives: { '/a': { secondaries: ['/b'] } } }),
    );
    expect(await secondariesOf('/a', data)).toEqual(['/b']);
    await recordSecondary('/a', 's3://bucket/p/', data, SETTINGS);
    const written = JSON.parse(fs.readFileSync(file, 'utf8')) as { version: number };
    expect(written.version).toBe(2);
    expect(await secondariesOf('/a', data)).toEqual(['/b', 's3://bucket/p/']);
    expect(await secondarySettingsOf('/a', data)).toEqual({ 's3://bucket/p/': SETTINGS });
    expect(await forgetSecondary('/a', 's3://bucket/p/', data)).toBe(true);
    expect(await secondarySettingsOf('/a', data)).toEqual({});
    expect(await forgetSecondary('/a', 's3://bucket/p/', data)).toBe(false);
    fs.writeFileSync(file, JSON.stringify({ version: 3, archives: {} }));
    await expect(secondarySettingsOf('/a', data)).resolves.toEqual({});
    await expect(recordSecondary('/a', '/c', data)).rejects.toThrow(/is damaged/);
  });

  it('keeps secrets in a 0600 file, replaces and deletes them', async () => {
    const data = tempDir();
    const store = FileSecretStore.headless(data);
    expect(await store.get('k')).toBeUndefined();
    // A temp file left by a crash with a looser mode must not loosen the secrets file.
    fs.writeFileSync(path.join(data, `.secrets.json.${process.pid}.tmp`), '', { mode: 0o644 });
    await store.set('k', 'secret one');
    await store.set('k', 'secret two');
    expect(await store.get('k')).toBe('secret two');
    expect(fs.statSync(path.join(data, 'secrets.json')).mode & 0o777).toBe(0o600);
    await store.delete('k');
    expect(await store.get('k')).toBeUndefined();
    expect(fs.readFileSync(path.join(data, 'secrets.json'), 'utf8')).not.toContain('secret two');
  });
});
