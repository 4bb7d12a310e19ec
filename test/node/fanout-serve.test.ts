// Fan-out in the app (`tidemark serve`): a job whose archive has an extra secondary ships each
// snapshot to it, and the job's status carries that secondary's last state.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../src/shared/jobs.js';
import { tidemark } from '../helpers/cli.js';
import { randomImage } from '../helpers/engine.js';
import { apiCall, serveArchive, type Served } from '../helpers/serve.js';
import { sha256 } from '../helpers/tmp.js';

const TOKEN = 'fanout-token-0123456789abcdef';
let served: Served;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-fanout-serve-'));
  process.env.TIDEMARK_DATA_DIR = path.join(dir, 'data');
  randomImage(path.join(dir, 'disk.img'), 2);
  expect(tidemark('init', path.join(dir, 'disk.img'), path.join(dir, 'archive')).code).toBe(0);
  const added = tidemark('secondary', 'add', path.join(dir, 'archive'), path.join(dir, 'usb'));
  expect(added.code, added.stderr).toBe(0);
  served = await serveArchive(dir, TOKEN);
}, 120_000);

afterAll(async () => {
  await served?.stop();
  delete process.env.TIDEMARK_DATA_DIR;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function call<T>(method: string, params: unknown = {}): Promise<T> {
  const answer = await apiCall<T>(served, TOKEN, method, params);
  expect(answer.ok, answer.error?.message).toBe(true);
  return answer.value;
}

describe('fan-out in the app', () => {
  it("a job snapshot reaches the extra secondary; the job shows that secondary's last state", async () => {
    const usb = path.join(dir, 'usb');
    const [job] = await call<JobView[]>('jobs.list');
    expect(job?.secondaries?.map((s) => [s.target, s.reachable, s.lastState?.id])).toEqual([
      [usb, true, 0],
    ]);
    const fd = fs.openSync(path.join(dir, 'disk.img'), 'r+');
    fs.writeSync(fd, Buffer.alloc(65536, 7), 0, 65536, 4096 * 20);
    fs.closeSync(fd);
    await call('jobs.snapshot', { id: job!.config.id });
    const [after] = await call<JobView[]>('jobs.list');
    expect(after?.secondaries?.[0]).toMatchObject({ target: usb, reachable: true, behind: 0 });
    expect(after?.secondaries?.[0]?.lastState?.id).toBe(1);
    const out = path.join(dir, 'restored.img');
    expect(tidemark('restore', usb, '--state', '1', '--to', out).code).toBe(0);
    expect(sha256(out)).toBe(sha256(path.join(dir, 'disk.img')));
  }, 120_000);
});
