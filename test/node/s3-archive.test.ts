import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { StateInfo } from '../../src/shared/states.js';
import { S3Store, parseS3Name } from '../../src/main/engine/storage/s3-store.js';
import { CLI } from '../helpers/cli.js';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';
import { sha256, tempDir } from '../helpers/tmp.js';
import { describeTree, treeDifferences } from '../helpers/tree.js';

const skip = rgwSkipReason();
if (skip) console.warn(`S3 archive tests skipped: ${skip}`);

const BS = 16384;

describe.skipIf(skip !== null)('archives on a real S3 server (Ceph RGW)', () => {
  let rgw: Rgw;
  let stateDir: string;

  beforeAll(() => {
    rgw = startRgw('archive', 7492, 3392);
  });
  afterAll(() => rgw?.stop());

  function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ...rgw.env, TIDEMARK_STATE_DIR: stateDir, ...extra };
  }
  function cli(args: string[], extra: NodeJS.ProcessEnv = {}) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: env(extra) });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }
  function ok(args: string[], extra: NodeJS.ProcessEnv = {}): string {
    const r = cli(args, extra);
    expect(r.code, `tidemark ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  }
  function states(archive: string, extra: NodeJS.ProcessEnv = {}): StateInfo[] {
    return JSON.parse(ok(['states', archive, '--json'], extra)) as StateInfo[];
  }
  function store(name: string): S3Store {
    return new S3Store(parseS3Name(name), {
      endpoint: rgw.endpoint,
      region: rgw.region,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    });
  }
  async function unfinishedUploads(s: S3Store): Promise<number> {
    const out = await s.client.send(
      new ListMultipartUploadsCommand({ Bucket: s.address.bucket, Prefix: s.address.prefix }),
    );
    return (out.Uploads ?? []).length;
  }

  it('round-trips a device archive: every state restores identical, also on a fresh machine', async () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, randomFillSync(Buffer.alloc(96 * BS)));
    const archive = 's3://tidemark-dev/machine-a/disk';
    ok(['init', image, archive, '--block-size', String(BS), '--no-encrypt']);
    const digests = [sha256(image)];
    for (let k = 1; k <= 3; k++) {
      const fd = fs.openSync(image, 'r+');
      fs.writeSync(fd, randomFillSync(Buffer.alloc(BS * 5 * k)), 0, BS * 5 * k, k * 7 * BS);
      fs.closeSync(fd);
      ok(['snapshot', archive]);
      digests.push(sha256(image));
    }
    expect(states(archive).map((s) => s.id)).toEqual([0, 1, 2, 3]);
    for (let k = 0; k <= 3; k++) {
      const out = path.join(dir, `r${k}.img`);
      ok(['restore', archive, '--state', String(k), '--to', out]);
      expect(sha256(out), `state ${k}`).toBe(digests[k]);
    }
    const report = JSON.parse(ok(['verify', archive, '--deep', '--json'])) as { ok: boolean };
    expect(report.ok).toBe(true);

    // A fresh machine: no local folder at all; the bucket alone rebuilds the catalog.
    stateDir = path.join(dir, 'other-machine');
    expect(JSON.parse(ok(['catalog', 'rebuild', archive, '--json']))).toMatchObject({ states: 4 });
    expect(states(archive).map((s) => s.stateHash)).toEqual(
      states(archive, { TIDEMARK_STATE_DIR: path.join(dir, 'state') }).map((s) => s.stateHash),
    );
    const again = path.join(dir, 'again.img');
    ok(['restore', archive, '--state', '2', '--to', again]);
    expect(sha256(again)).toBe(digests[2]);
    // And the next interval goes on from there.
    ok(['snapshot', archive]);
  });

  it('round-trips a volume archive: every state restores identical', () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const tree = path.join(dir, 'tree');
    fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'first\n');
    fs.writeFileSync(path.join(tree, 'sub', 'big.bin'), randomFillSync(Buffer.alloc(9 << 20)));
    const archive = 's3://tidemark-dev/machine-a/home';
    ok(['init', tree, archive, '--no-btrfs-snapshot', '--no-encrypt']);
    const digests = [describeTree(tree)];
    fs.appendFileSync(path.join(tree, 'a.txt'), 'second\n');
    fs.writeFileSync(path.join(tree, 'sub', 'new.txt'), 'new');
    ok(['snapshot', archive, '--no-btrfs-snapshot']);
    digests.push(describeTree(tree));
    fs.rmSync(path.join(tree, 'sub', 'big.bin'));
    ok(['snapshot', archive, '--no-btrfs-snapshot']);
    digests.push(describeTree(tree));
    for (let k = 0; k < digests.length; k++) {
      const out = path.join(dir, `r${k}`);
      ok(['restore', archive, '--state', String(k), '--to', out]);
      expect(treeDifferences(digests[k]!, describeTree(out)), `state ${k}`).toEqual([]);
    }
    expect(ok(['diff', archive, '1', '2'])).toContain('big.bin');
    expect(ok(['history', archive, 'a.txt'])).toContain('state 1');
  });

  for (const how of ['gateway', 'process'] as const) {
    it(`killing the ${how} mid-upload records no state and leaves no object; the next interval succeeds`, async () => {
      const dir = tempDir();
      stateDir = path.join(dir, 'state');
      const image = path.join(dir, 'disk.img');
      fs.writeFileSync(image, randomFillSync(Buffer.alloc(40 << 20)));
      const archive = `s3://tidemark-dev/kill-${how}`;
      ok(['init', image, archive, '--no-encrypt']);
      fs.writeFileSync(image, randomFillSync(Buffer.alloc(40 << 20)));
      // 40 MiB at 8 MiB/s: the upload is well under way when the kill comes.
      const child = spawn(process.execPath, [CLI, 'snapshot', archive, '--bwlimit', '8M'], {
        env: env({ TIDEMARK_S3_MAX_ATTEMPTS: '2' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      // Kill once the multipart upload of the new update is under way.
      const watch = store(archive);
      try {
        for (let i = 0; i < 300 && (await unfinishedUploads(watch)) === 0; i++)
          await new Promise((r) => setTimeout(r, 100));
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        await watch.close();
      }
      let code: number | null;
      if (how === 'gateway') {
        rgw.killGateway();
        try {
          code = await exited;
        } finally {
          rgw.startGateway();
        }
        expect(stderr).toMatch(/S3 server is unreachable/);
      } else {
        child.kill('SIGKILL');
        code = await exited;
      }
      expect(code).not.toBe(0);
      const s = store(archive);
      try {
        expect(await s.list('updates/')).toEqual(['updates/0000000000.tmu']);
        expect(await unfinishedUploads(s)).toBeGreaterThan(0);
        expect(states(archive).map((x) => x.id)).toEqual([0]);
        ok(['snapshot', archive]);
        expect(states(archive).map((x) => x.id)).toEqual([0, 1]);
        expect(await unfinishedUploads(s)).toBe(0);
        const out = path.join(dir, 'r1.img');
        ok(['restore', archive, '--state', '1', '--to', out]);
        expect(sha256(out)).toBe(sha256(image));
      } finally {
        await s.close();
      }
    });
  }

  it('encrypts s3:// archives by default; a fresh machine needs only the bucket and the passphrase', async () => {
    const dir = tempDir();
    stateDir = path.join(dir, 'state');
    const image = path.join(dir, 'disk.img');
    const marker = Buffer.from('S3-PLAINTEXT-MARKER-THAT-MUST-NOT-LEAK');
    const data = Buffer.alloc(32 * BS);
    for (let i = 0; i < 32; i++) marker.copy(data, i * BS + (i % 7));
    fs.writeFileSync(image, data);
    const archive = 's3://tidemark-dev/encrypted';
    const refused = cli(['init', image, archive]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/default for s3:\/\/ archives.*or choose --no-encrypt/);
    const pass = { TIDEMARK_PASSPHRASE: 'offsite passphrase 42' };
    ok(['init', image, archive, '--block-size', String(BS)], pass);
    const s = store(archive);
    try {
      const manifest = JSON.parse(
        (await s.read('tidemark.json', 0, await s.size('tidemark.json'))).toString(),
      );
      expect(manifest.encryption.cipher).toBe('aes-256-gcm');
      const update = await s.read(
        'updates/0000000000.tmu',
        0,
        await s.size('updates/0000000000.tmu'),
      );
      expect(update.includes(marker)).toBe(false);
    } finally {
      await s.close();
    }
    stateDir = path.join(dir, 'fresh');
    const wrong = cli(['catalog', 'rebuild', archive], {
      TIDEMARK_PASSPHRASE: 'guess guess guess',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /wrong passphrase for the encrypted archive s3:\/\/tidemark-dev\/encrypted/,
    );
    ok(['catalog', 'rebuild', archive], pass);
    const out = path.join(dir, 'r0.img');
    ok(['restore', archive, '--state', '0', '--to', out], pass);
    expect(sha256(out)).toBe(sha256(image));
  });

  it('says clearly when the archive or the server is not there', () => {
    stateDir = tempDir();
    const none = cli(['states', 's3://tidemark-dev/nothing-here']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no archive at s3:\/\/tidemark-dev\/nothing-here/);
    const down = cli(['states', 's3://tidemark-dev/x', '--endpoint', 'http://127.0.0.1:9'], {
      TIDEMARK_S3_MAX_ATTEMPTS: '1',
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/S3 server is unreachable/);
    expect(down.stderr).not.toContain(rgw.secretAccessKey);
    const bad = cli(['states', 's3://Bad_Bucket/x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a valid S3 archive name/);
  });
});
