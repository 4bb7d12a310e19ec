// The desktop app's secrets (S3 credentials, passphrases of extra secondaries) encrypted with
// Electron safeStorage: the OS keyring (Keychain, DPAPI, libsecret/kwallet) holds the key, the
// data dir only ciphertext. Only this folder may import electron (STYLE.md, "Runtime layers").
import * as path from 'node:path';
import { safeStorage } from 'electron';
import { TidemarkError } from '../../shared/errors.js';
import { FileSecretStore, type SecretStore } from '../services/secret-store.js';

export function safeStorageSecrets(dataDir: string): SecretStore {
  const file = path.join(dataDir, 'secrets.safe.json');
  const ready = (): void => {
    // Without a keyring Electron would fall back to a hard-coded key: refuse instead of pretending.
    const plain =
      process.platform === 'linux' && safeStorage.getSelectedStorageBackend() === 'basic_text';
    if (!safeStorage.isEncryptionAvailable() || plain)
      throw new TidemarkError(
        'usage',
        'no OS keyring is available to keep the credentials safe (safeStorage): unlock or install one (gnome-keyring, kwallet) and try again',
      );
  };
  return new FileSecretStore(
    file,
    `${file} (encrypted with the OS keyring through Electron safeStorage)`,
    (value) => {
      ready();
      return safeStorage.encryptString(value).toString('base64');
    },
    (stored) => {
      ready();
      return safeStorage.decryptString(Buffer.from(stored, 'base64'));
    },
  );
}
