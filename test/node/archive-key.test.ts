import { describe, expect, it } from 'vitest';
import { newEncryption, unwrapKey } from '../../src/main/engine/encryption/archive-key.js';

describe('archive keys', () => {
  it('derives a key once per process and passphrase; a wrong passphrase is never kept', async () => {
    const pass = 'a long enough passphrase';
    const { info } = await newEncryption(pass, 'archive-1');
    const first = unwrapKey(info, pass, 'archive-1', 'here');
    // The app opens the archive for every interval: the second opening reuses the derivation.
    expect(unwrapKey(info, pass, 'archive-1', 'here')).toBe(first);
    const key = await first;
    expect(key).toHaveLength(32);
    for (let i = 0; i < 2; i++)
      await expect(unwrapKey(info, 'not the passphrase', 'archive-1', 'here')).rejects.toThrow(
        /^wrong passphrase for the encrypted archive here$/,
      );
    // Another archive id is another key's authentication data: refused, not served from memory.
    await expect(unwrapKey(info, pass, 'archive-2', 'there')).rejects.toThrow(/wrong passphrase/);
    expect((await unwrapKey(info, pass, 'archive-1', 'here')).equals(key)).toBe(true);
  });
});
