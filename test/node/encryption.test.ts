import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { VerifyReport } from '../../src/shared/states.js';
import { CLI } from '../helpers/cli.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const BS = 16384;

let stateDir = '';

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, TIDEMARK_PASSPHRASE: '', TIDEMARK_STATE_DIR: stateDir, ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A recognisable plaintext that must never appear in an encrypted archive's objects. */
const MARKER = Buffer.from('TIDEMARK-PLAINTEXT-MARKER-0123456789');

function image(file: string, blocks: number, seed: number): void {
  const b = Buffer.alloc(blocks * BS);
  for (let i = 0; i < blocks; i++) {
    MARKER.copy(b, i * BS);
    b.writeUInt32LE(seed * 1000 + i, i * BS + 64);
  }
  fs.writeFileSync(file, b);
}

describe('encrypted archives (folder secondary)', () => {
  it('round-trips, keeps no plaintext, refuses a wrong or missing passphrase', () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const img = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'archive');
    const pass = path.join(dir, 'pass');
    fs.writeFileSync(pass, 'a long enough passphrase\n');
    image(img, 40, 1);
    const init = run([
      'init',
      img,
      archive,
      '--encrypt',
      '--passphrase-file',
      pass,
      '--block-size',
      String(BS),
    ]);
    expect(init.code, init.stderr).toBe(0);
    const first = sha256(img);
    image(img, 40, 2);
    expect(
      run(['snapshot', archive], { TIDEMARK_PASSPHRASE: 'a long enough passphrase' }).code,
    ).toBe(0);
    for (const f of fs.readdirSync(path.join(archive, 'updates'))) {
      const bytes = fs.readFileSync(path.join(archive, 'updates', f));
      expect(bytes.subarray(0, 8).toString('latin1')).toBe('TMKENC01');
      expect(bytes.includes(MARKER), f).toBe(false);
    }
    // The catalog and map cache hold block hashes: on this machine, not on the backup disk.
    expect(fs.readdirSync(archive).sort()).toEqual(['tidemark.json', 'updates']);
    const manifest = JSON.parse(fs.readFileSync(path.join(archive, 'tidemark.json'), 'utf8'));
    expect(manifest.version).toBe(2);
    expect(
      fs.existsSync(path.join(stateDir, 'encrypted', manifest.archiveId, 'catalog.sqlite')),
    ).toBe(true);
    expect(manifest.encryption).toMatchObject({ cipher: 'aes-256-gcm', kdf: { name: 'scrypt' } });

    const out = path.join(dir, 'r0.img');
    expect(
      run(['restore', archive, '--state', '0', '--to', out, '--passphrase-file', pass]).code,
    ).toBe(0);
    expect(sha256(out)).toBe(first);

    const wrong = run(['states', archive], { TIDEMARK_PASSPHRASE: 'not the passphrase' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /^tidemark: wrong passphrase for the encrypted archive .*archive\n$/,
    );
    // A snapshot with a wrong passphrase records nothing and leaves nothing, whether or not the
    // interval changed blocks.
    const wrongEnv = { TIDEMARK_PASSPHRASE: 'not the passphrase' };
    const before = fs.readdirSync(path.join(archive, 'updates')).sort();
    for (const changed of [false, true]) {
      if (changed) image(img, 40, 3);
      const snap = run(['snapshot', archive], wrongEnv);
      expect(snap.code, snap.stdout).toBe(1);
      expect(snap.stderr).toMatch(
        /^tidemark: wrong passphrase for the encrypted archive .*archive\n$/,
      );
      expect(fs.readdirSync(path.join(archive, 'updates')).sort()).toEqual(before);
      expect(fs.readdirSync(archive).sort()).toEqual(['tidemark.json', 'updates']);
    }
    const states = run(['states', archive, '--json'], {
      TIDEMARK_PASSPHRASE: 'a long enough passphrase',
    });
    expect(JSON.parse(states.stdout)).toHaveLength(2);
    const none = run(['verify', archive]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/is encrypted: give its passphrase with --passphrase-file/);
    const missing = run(['init', img, path.join(dir, 'other'), '--encrypt']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/would be encrypted: give a passphrase/);
    expect(fs.existsSync(path.join(dir, 'other'))).toBe(false);
  });

  it('a flipped byte in an object fails verification, which names the object', () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const img = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'archive');
    const env = { TIDEMARK_PASSPHRASE: 'a long enough passphrase' };
    image(img, 40, 1);
    expect(run(['init', img, archive, '--encrypt', '--block-size', String(BS)], env).code).toBe(0);
    image(img, 40, 3);
    expect(run(['snapshot', archive], env).code).toBe(0);
    const victim = path.join(archive, 'updates', '0000000001.tmu');
    const at = Math.floor(fs.statSync(victim).size / 2);
    const fd = fs.openSync(victim, 'r+');
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, at);
    one[0] = one[0]! ^ 0x10;
    fs.writeSync(fd, one, 0, 1, at);
    fs.closeSync(fd);
    const r = run(['verify', archive, '--json'], env);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]!.file).toBe('updates/0000000001.tmu');
    expect(report.problems[0]!.message).toMatch(
      new RegExp(
        `tampered with \\(chunk ${Math.floor((at - 16) / (65536 + 16))} fails authentication\\)`,
      ),
    );
    expect(report.problems[0]!.states).toContain(1);
    // State 0 does not need the damaged object and still restores.
    const out = path.join(dir, 'r0.img');
    expect(run(['restore', archive, '--state', '0', '--to', out], env).code).toBe(0);
  });

  it('keeps unencrypted archives as they were (manifest version 1)', () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const img = path.join(dir, 'disk.img');
    image(img, 8, 1);
    expect(run(['init', img, path.join(dir, 'a')]).code).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'a', 'tidemark.json'), 'utf8'));
    expect(manifest.version).toBe(1);
    expect(manifest.encryption).toBeUndefined();
  });
});
