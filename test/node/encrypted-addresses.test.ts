import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { hashBlock } from '../../src/main/engine/block-hash.js';
import { CLI } from '../helpers/cli.js';
import { sha256, tempDir } from '../helpers/tmp.js';

// Whoever holds the bucket (or the backup disk) of an encrypted archive must learn nothing from
// content addresses: not which known blocks an archive holds, not which blocks two archives
// share. The addresses (BLAKE3 of the plaintext) exist only inside the encrypted update objects
// and in the local catalog; object names are state numbers. This proves it on the bytes: the
// encrypted store writes the same bytes to a folder as to S3 (it wraps either store).

const BS = 4096;
const BLOCKS = 48;
const PASS = 'a long enough passphrase';

function run(args: string[], stateDir: string, passphrase = PASS) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, TIDEMARK_PASSPHRASE: passphrase, TIDEMARK_STATE_DIR: stateDir },
  });
  expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** Blocks with distinct contents, each written twice (so dedup has work), and a zero tail. */
function image(file: string, seed: number): Buffer[] {
  const blocks: Buffer[] = [];
  const b = Buffer.alloc(BLOCKS * BS);
  for (let i = 0; i < BLOCKS - 4; i++) {
    const block = b.subarray(i * BS, (i + 1) * BS);
    block.fill(`seed ${seed} block ${i >> 1} `);
    blocks.push(block);
  }
  fs.writeFileSync(file, b);
  return blocks;
}

/** Every object of the archive folder but the plaintext manifest, by name. */
function objects(archive: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else out.set(path.relative(archive, full), fs.readFileSync(full));
    }
  };
  walk(archive);
  return out;
}

/** The forms a 32-byte address could take in an object: raw, hex, base64. */
function forms(hash: Buffer): Buffer[] {
  return [hash, Buffer.from(hash.toString('hex')), Buffer.from(hash.toString('base64'))];
}

function windows(bytes: Buffer, width: number): Set<string> {
  const set = new Set<string>();
  for (let i = 0; i + width <= bytes.length; i++) set.add(bytes.toString('latin1', i, i + width));
  return set;
}

describe('content addresses of encrypted archives', () => {
  it('never appear in the objects, and two archives of one primary share none', () => {
    const dir = tempDir();
    const stateDir = path.join(dir, 'state');
    const img = path.join(dir, 'disk.img');
    const known: Buffer[] = [];
    const addresses = (blocks: Buffer[]) => known.push(...blocks.map((b) => hashBlock(b)));
    addresses(image(img, 1));
    const archives = ['a', 'b', 'plain'].map((n) => path.join(dir, n));
    for (const a of archives.slice(0, 2))
      run(['init', img, a, '--encrypt', '--block-size', String(BS)], stateDir);
    run(['init', img, archives[2] as string, '--block-size', String(BS)], stateDir);
    const first = sha256(img);
    addresses(image(img, 2));
    const second = sha256(img);
    const stateHashes: Buffer[] = [];
    const storedBytes: number[] = [];
    for (const a of archives) {
      const out = JSON.parse(run(['snapshot', a, '--json'], stateDir));
      expect(out.state.changedBlocks).toBe(BLOCKS - 4);
      stateHashes.push(Buffer.from(out.state.stateHash, 'hex'));
      storedBytes.push(out.state.storedBytes);
    }
    // Dedup within one archive: each content of state 1 is written twice but stored once (the
    // plain update's meta says so); the encrypted updates have the very same plaintext layout,
    // so the same length.
    const update1 = fs.readFileSync(path.join(archives[2] as string, 'updates', '0000000001.tmu'));
    expect(update1.toString('latin1')).toContain(`"storedBlocks":${(BLOCKS - 4) / 2},`);
    expect(new Set(storedBytes).size).toBe(1);
    const needles = [...known, ...stateHashes].flatMap(forms);

    // The search can fail: in a plain archive the addresses are there to be found.
    const plain = [...objects(archives[2] as string).values()];
    expect(known.every((h) => plain.some((o) => o.includes(h)))).toBe(true);

    const [a, b] = archives.map(objects) as [Map<string, Buffer>, Map<string, Buffer>];
    for (const [name, bytes] of [...a, ...b]) {
      if (name === 'tidemark.json') {
        const manifest = JSON.parse(bytes.toString('utf8'));
        expect(Object.keys(manifest).sort()).toEqual(
          [
            'archiveId',
            'blockSize',
            'createdAt',
            'encryption',
            'format',
            'primary',
            'version',
          ].sort(),
        );
      } else {
        expect(name).toMatch(/^updates\/\d{10}\.tmu$/);
        expect(bytes.subarray(0, 8).toString('latin1')).toBe('TMKENC01');
      }
      for (const needle of needles) expect(bytes.includes(needle), name).toBe(false);
    }

    // Across the two archives no 16-byte string of one update object appears in any update
    // object of the other: nothing derived from the shared contents is comparable.
    const inA = new Set<string>();
    for (const [name, bytes] of a)
      if (name !== 'tidemark.json') for (const w of windows(bytes.subarray(8), 16)) inA.add(w);
    for (const [name, bytes] of b) {
      if (name === 'tidemark.json') continue;
      const shared = [...windows(bytes.subarray(8), 16)].filter((w) => inA.has(w));
      expect(shared, name).toEqual([]);
    }

    // It still verifies, and every state restores identical.
    expect(JSON.parse(run(['verify', archives[1] as string, '--json'], stateDir)).ok).toBe(true);
    for (const [state, hash] of [
      [0, first],
      [1, second],
    ] as const) {
      const out = path.join(dir, `r${state}.img`);
      run(['restore', archives[1] as string, '--state', String(state), '--to', out], stateDir);
      expect(sha256(out)).toBe(hash);
    }
  });
});
