// `tidemark serve --archive` with a folder's archive made by the CLI: the job is a volume, and
// its tree and changes are served over HTTP by the same contract as IPC.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tidemark } from '../helpers/cli.js';
import { apiCall, serveArchive, type Served } from '../helpers/serve.js';

const TOKEN = 'test-token-volume-0123456789';
let served: Served;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-serve-volume-'));
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'a'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'a', 'one.txt'), 'one');
  fs.writeFileSync(path.join(tree, 'two.txt'), 'two');
  expect(tidemark('init', tree, path.join(dir, 'archive')).code).toBe(0);
  fs.writeFileSync(path.join(tree, 'two.txt'), 'two, longer');
  expect(tidemark('snapshot', path.join(dir, 'archive')).code).toBe(0);
  served = await serveArchive(dir, TOKEN);
});

afterAll(async () => {
  await served?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

// The answers' shapes are checked by the assertions themselves.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const call = (method: string, params: unknown) => apiCall<Loose>(served, TOKEN, method, params);

describe('tidemark serve with a folder archive', () => {
  it('lists it as a volume job, browses its states and says what changed', async () => {
    const jobs = await call('jobs.list', {});
    expect(jobs.value).toHaveLength(1);
    const job = jobs.value[0];
    expect(job.config.mode).toBe('volume');
    expect(job.stateCount).toBe(2);
    const id = job.config.id;
    const top = await call('jobs.browse', { id, stateId: 1 });
    expect(top.value.entries.map((e: { name: string; size: number }) => [e.name, e.size])).toEqual([
      ['a', 0],
      ['two.txt', 11],
    ]);
    const a = await call('jobs.browse', { id, stateId: 0, path: 'a' });
    expect(a.value.entries.map((e: { path: string }) => e.path)).toEqual(['a/one.txt']);
    const diff = await call('jobs.diff', { id, from: 0, to: 1 });
    expect(diff.value.entries).toEqual([
      { path: 'two.txt', change: 'modified', type: 'file', sizeA: 3, sizeB: 11 },
    ]);
  });

  it('answers bad browse and diff requests with one line', async () => {
    const id = (await call('jobs.list', {})).value[0].config.id;
    expect((await call('jobs.browse', { id, stateId: 9 })).error).toMatchObject({
      code: 'state.not-found',
      message: 'state 9 does not exist in this archive',
    });
    expect((await call('jobs.browse', { id, stateId: 0, path: '../..' })).error?.code).toBe(
      'usage',
    );
    expect((await call('jobs.diff', { id, from: 'x', to: 1 })).error?.message).toBe(
      'Invalid input: expected number, received string (jobs.diff from)',
    );
    expect((await call('jobs.browse', { id: 'nope', stateId: 0 })).error?.message).toBe(
      'no job nope',
    );
  });
});
