// Extra secondaries added in the app (`tidemark serve`, the API the UI uses): a folder and a real
// S3 bucket (Ceph RGW) with their own credentials, passphrase, retention and queue limit; one-line
// errors for wrong credentials, a missing bucket and an unreachable endpoint; secrets never sent
// back and kept in a 0600 file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/shared/jobs.js';
import type { SecondaryStatus, StateInfo } from '../../src/shared/states.js';
import { addSecondary, fanOut } from '../../src/main/engine/fanout/fan-out.js';
import { setTargetAccess } from '../../src/main/engine/storage/remote-access.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { randomImage, scribble } from '../helpers/engine.js';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';
import { apiRequest, serveArchive, type Served } from '../helpers/serve.js';
import { sha256 } from '../helpers/tmp.js';

const TOKEN = 'secondary-app-token-0123456789';
const SECRET_PASSPHRASE = 'offsite passphrase 7c1e';
const skip = rgwSkipReason();
if (skip) console.warn(`app secondaries test skipped: ${skip}`);

type Reply<T> = { ok: true; value: T } | { ok: false; error: { code: string; message: string } };

describe.skipIf(skip !== null)('extra secondaries managed in the app', () => {
  let rgw: Rgw;
  let served: Served;
  let dir: string;
  let jobId: string;
  const sums: string[] = [];

  async function call<T>(method: string, body: unknown = {}): Promise<Reply<T>> {
    const r = await apiRequest(served, TOKEN, method, body);
    // Nothing the server sends back may carry a secret.
    expect(r.body).not.toContain(rgw.secretAccessKey);
    expect(r.body).not.toContain(SECRET_PASSPHRASE);
    return JSON.parse(r.body) as Reply<T>;
  }

  async function ok<T>(method: string, body: unknown = {}): Promise<T> {
    const r = await call<T>(method, body);
    if (!r.ok) throw new Error(`${method}: ${r.error.message}`);
    return r.value;
  }

  function s3Location(over: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      kind: 's3',
      endpoint: rgw.endpoint,
      region: rgw.region,
      bucket: 'tidemark-app',
      prefix: 'laptop',
      pathStyle: true,
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
      ...over,
    };
  }

  async function snapshot(): Promise<JobView> {
    scribble(path.join(dir, 'disk.img'), 1 << 20, 600 << 10);
    await ok('jobs.snapshot', { id: jobId });
    sums.push(sha256(path.join(dir, 'disk.img')));
    const [job] = await ok<JobView[]>('jobs.list');
    return job as JobView;
  }

  const byTarget = (job: JobView, target: string): SecondaryStatus | undefined =>
    job.secondaries?.find((s) => s.target === target);

  beforeAll(async () => {
    rgw = startRgw('secapp', 7496, 3396);
    const admin = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    });
    await admin.send(new CreateBucketCommand({ Bucket: 'tidemark-app' }));
    admin.destroy();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-secondary-app-'));
    // The server gets no AWS credentials from its environment: only what the app was given.
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL'])
      delete process.env[k];
    process.env.TIDEMARK_STATE_DIR = path.join(dir, 'state');
    process.env.TIDEMARK_S3_MAX_ATTEMPTS = '2';
    randomImage(path.join(dir, 'disk.img'), 4);
    expect(tidemark('init', path.join(dir, 'disk.img'), path.join(dir, 'archive')).code).toBe(0);
    sums.push(sha256(path.join(dir, 'disk.img')));
    served = await serveArchive(dir, TOKEN);
    const [job] = await ok<JobView[]>('jobs.list');
    jobId = job!.config.id;
  }, 180_000);

  afterAll(async () => {
    await served?.stop();
    rgw?.stop();
    delete process.env.TIDEMARK_STATE_DIR;
    delete process.env.TIDEMARK_S3_MAX_ATTEMPTS;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses wrong credentials, a missing bucket and an unreachable endpoint in one line each', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ secretAccessKey: 'not-the-secret' }, 'archive.read-only', /refused the credentials/],
      [{ bucket: 'no-such-bucket' }, 'archive.not-found', /bucket no-such-bucket does not exist/],
      [{ endpoint: 'http://127.0.0.1:9' }, 'archive.unavailable', /cannot reach the S3 server/],
      [{ accessKeyId: '' }, 'usage', /both the access key id and the secret/],
      [{ bucket: 'Bad_Bucket' }, 'usage', /bucket name/],
    ];
    for (const [over, code, message] of cases) {
      const r = await call('jobs.addSecondary', { id: jobId, location: s3Location(over) });
      expect(r.ok, JSON.stringify(over)).toBe(false);
      if (r.ok) continue;
      expect(r.error.code).toBe(code);
      expect(r.error.message).toMatch(message);
      expect(r.error.message).not.toContain('\n');
      expect(r.error.message).not.toContain(rgw.secretAccessKey);
    }
    const job = (await ok<JobView[]>('jobs.list'))[0]!;
    expect(job.secondaries ?? []).toEqual([]);
    // A refused add keeps no secret.
    const secrets = path.join(dir, 'data', 'secrets.json');
    if (fs.existsSync(secrets)) expect(fs.readFileSync(secrets, 'utf8')).not.toContain('laptop');
  }, 120_000);

  it('adds a bucket (encrypted, credentials kept in a 0600 file, shown only as set) and a folder with its own retention', async () => {
    const bucket = 's3://tidemark-app/laptop/';
    const usb = path.join(dir, 'usb');
    let job = await ok<JobView>('jobs.addSecondary', {
      id: jobId,
      location: s3Location(),
      passphrase: SECRET_PASSPHRASE,
      options: { bwlimitBytes: 50 << 20, retention: null, queueLimitBytes: null },
    });
    expect(byTarget(job, bucket)).toMatchObject({
      reachable: true,
      encrypted: true,
      lastState: { id: 0 },
      settings: {
        kind: 's3',
        endpoint: rgw.endpoint,
        credentials: 'set',
        passphraseSet: true,
        bwlimitBytes: 50 << 20,
      },
    });
    const keepNewest = { keep: 'policy', keepWithinMs: 0, hourly: 0, daily: 0, weekly: 0 };
    job = await ok<JobView>('jobs.addSecondary', {
      id: jobId,
      location: { kind: 'folder', path: usb },
      options: { bwlimitBytes: null, retention: keepNewest, queueLimitBytes: null },
    });
    expect(byTarget(job, usb)?.settings).toMatchObject({ kind: 'folder', retention: keepNewest });
    const secrets = path.join(dir, 'data', 'secrets.json');
    expect(fs.statSync(secrets).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(secrets, 'utf8')).toContain(rgw.secretAccessKey);
    const registry = fs.readFileSync(path.join(dir, 'data', 'secondaries.json'), 'utf8');
    expect(registry).not.toContain(rgw.secretAccessKey);
    expect(registry).not.toContain(SECRET_PASSPHRASE);

    for (let k = 1; k <= 2; k++) job = await snapshot();
    // The bucket follows the job's retention (keep all), the folder its own (newest only).
    expect(byTarget(job, bucket)).toMatchObject({ lastState: { id: 2 }, states: 3, behind: 0 });
    expect(byTarget(job, usb)).toMatchObject({ lastState: { id: 2 }, states: 1, behind: 0 });
    expect(job.log.some((l) => /secondary .*usb: its retention removed/.test(l.message))).toBe(
      true,
    );
    expect(tidemarkJson<StateInfo[]>('states', usb).map((s) => s.id)).toEqual([2]);
    expect(tidemarkJson<StateInfo[]>('states', path.join(dir, 'archive')).length).toBe(3);

    // Every state restores from the bucket alone, with the credentials and passphrase given.
    const pw = path.join(dir, 'pw');
    fs.writeFileSync(pw, `${SECRET_PASSPHRASE}\n`, { mode: 0o600 });
    for (const [id, sum] of sums.entries()) {
      const out = path.join(dir, `from-bucket-${id}.img`);
      const r = spawnCli(
        rgw,
        'restore',
        bucket,
        '--state',
        String(id),
        '--to',
        out,
        '--passphrase-file',
        pw,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(sha256(out)).toBe(sum);
      fs.rmSync(out);
    }
  }, 240_000);

  it('a secondary away past its queue limit is reported, then catches up in order', async () => {
    const usb = path.join(dir, 'usb');
    await ok('jobs.updateSecondary', {
      id: jobId,
      target: usb,
      options: { queueLimitBytes: 1 << 20, retention: null },
    });
    fs.renameSync(usb, `${usb}.away`);
    let job: JobView | undefined;
    try {
      for (let k = 0; k < 3; k++) job = await snapshot();
    } finally {
      fs.renameSync(`${usb}.away`, usb);
    }
    const away = byTarget(job!, usb)!;
    expect(away.reachable).toBe(false);
    expect(away.behind).toBe(3);
    expect(away.queueFull).toMatchObject({ limitBytes: 1 << 20 });
    expect(away.queueFull!.notQueued).toBeGreaterThan(0);
    expect(away.queued).toBeLessThan(3);
    expect(job!.log.some((l) => l.level === 'warn' && /its queue is full/.test(l.message))).toBe(
      true,
    );
    job = await snapshot();
    expect(byTarget(job, usb)).toMatchObject({ reachable: true, behind: 0, lastState: { id: 6 } });
    expect(byTarget(job, usb)?.queueFull).toBeUndefined();
    const ids = tidemarkJson<StateInfo[]>('states', usb).map((s) => s.id);
    expect(ids).toEqual([2, 3, 4, 5, 6]);
    const out = path.join(dir, 'from-usb.img');
    expect(tidemark('restore', usb, '--state', '6', '--to', out).code).toBe(0);
    expect(sha256(out)).toBe(sums[6]);
  }, 240_000);

  it('removing a secondary forgets its secrets and queue and keeps its archive', async () => {
    const bucket = 's3://tidemark-app/laptop/';
    const job = await ok<JobView>('jobs.removeSecondary', { id: jobId, target: bucket });
    expect(byTarget(job, bucket)).toBeUndefined();
    expect(fs.readFileSync(path.join(dir, 'data', 'secrets.json'), 'utf8')).not.toContain(
      rgw.secretAccessKey,
    );
    const r = await call('jobs.removeSecondary', { id: jobId, target: bucket });
    expect(r.ok).toBe(false);
    const pw = path.join(dir, 'pw');
    const states = spawnCli(rgw, 'states', bucket, '--json', '--passphrase-file', pw);
    expect(states.code, states.stderr).toBe(0);
  }, 120_000);

  it("fan-out honours a secondary's upload limit (bytes/s)", async () => {
    const image = path.join(dir, 'bw.img');
    const archive = path.join(dir, 'bw-archive');
    const cacheDir = path.join(dir, 'bw-cache');
    randomImage(image, 4);
    expect(tidemark('init', image, archive).code).toBe(0);
    const rate = 1 << 20;
    const timedShip = async (target: string, bwlimit?: number): Promise<number> => {
      setTargetAccess({
        [target]: {
          encrypt: false,
          s3: {
            endpoint: rgw.endpoint,
            region: rgw.region,
            credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
            ...(bwlimit ? { bwlimit } : {}),
          },
        },
      });
      await addSecondary(archive, target, { cacheDir });
      scribble(image, 0, 3 << 20);
      expect(tidemark('snapshot', archive).code).toBe(0);
      const started = performance.now();
      const [status] = await fanOut(archive, [target], { cacheDir });
      const seconds = (performance.now() - started) / 1000;
      expect(status).toMatchObject({ reachable: true, behind: 0 });
      expect(status?.shipped?.length).toBe(1);
      return seconds;
    };
    const free = await timedShip('s3://tidemark-app/bw-free/');
    const limited = await timedShip('s3://tidemark-app/bw-limited/', rate);
    console.info(
      `3 MiB update to RGW: ${free.toFixed(2)} s unlimited, ${limited.toFixed(2)} s at 1 MiB/s`,
    );
    // A 3 MiB update at 1 MiB/s with one second of burst takes at least 2 s to send.
    expect(limited).toBeGreaterThan(1.9);
    expect(limited).toBeGreaterThan(free);
  }, 120_000);
});

function spawnCli(rgw: Rgw, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...rgw.env, TIDEMARK_STATE_DIR: path.join(rgw.dir, 'cli-state') },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
