// Volume jobs as the app drives them: the services with the real worker on a real folder,
// browsing a state, what changed, the restore plan and a one-file restore checked on disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/main/index.js';
import { call, until } from '../helpers/app.js';
import { checkChoice } from '../../src/main/services/drives.js';
import type { RestorePlan } from '../../src/shared/api.js';
import type { JobView } from '../../src/shared/jobs.js';
import { DEFAULT_SCHEDULE } from '../../src/shared/jobs.js';
import type { BrowseReport, DiffReport, VolumeRestoreReport } from '../../src/shared/states.js';
import { WORKER_URL } from '../helpers/engine.js';
import { tempDir } from '../helpers/tmp.js';

const apps: App[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

async function app(dataDir: string): Promise<App> {
  const a = await startApp({
    dataDir,
    info: { version: 'test', shell: 'headless' },
    engine: { workerUrl: WORKER_URL },
    scheduler: { tickMs: 3_600_000 },
  });
  a.scheduler.stop();
  apps.push(a);
  return a;
}

async function refused(a: App, method: string, params: unknown): Promise<string> {
  const r = await a.dispatch(method, params);
  expect(r.ok).toBe(false);
  return r.ok ? '' : `${r.error.code}: ${r.error.message}`;
}

/** A small tree: two files at the top, one in a folder. */
function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'docs', 'thesis.txt'), 'chapter one\n');
  fs.writeFileSync(path.join(root, 'notes.txt'), 'n'.repeat(1000));
  fs.writeFileSync(path.join(root, 'b.bin'), Buffer.alloc(70_000, 7));
}

describe('volume jobs in the app', () => {
  it('baseline, snapshot, browse, diff, plan and a one-file restore', async () => {
    const dir = tempDir();
    const tree = path.join(dir, 'tree');
    makeTree(tree);
    const a = await app(path.join(dir, 'data'));
    const created = await call<JobView>(a, 'jobs.create', {
      mode: 'volume',
      primary: tree,
      secondary: path.join(dir, 'backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    const id = created.config.id;
    expect(created.config.mode).toBe('volume');
    await until(a, id, (j) => j.status === 'ok');

    fs.writeFileSync(path.join(tree, 'docs', 'thesis.txt'), 'chapter one, rewritten\n');
    fs.rmSync(path.join(tree, 'notes.txt'));
    fs.writeFileSync(path.join(tree, 'new.txt'), 'new');
    const snap = await call<{ changed: boolean }>(a, 'jobs.snapshot', { id });
    expect(snap.changed).toBe(true);

    const top = await call<BrowseReport>(a, 'jobs.browse', { id, stateId: 0 });
    expect(top.entries.map((e) => [e.name, e.type, e.size])).toEqual([
      ['docs', 'dir', 0],
      ['b.bin', 'file', 70_000],
      ['notes.txt', 'file', 1000],
    ]);
    expect(top.total).toBe(3);
    const page = await call<BrowseReport>(a, 'jobs.browse', {
      id,
      stateId: 0,
      offset: 1,
      limit: 1,
    });
    expect(page.entries.map((e) => e.name)).toEqual(['b.bin']);
    const docs = await call<BrowseReport>(a, 'jobs.browse', { id, stateId: 1, path: 'docs' });
    expect(docs.entries.map((e) => [e.path, e.size])).toEqual([['docs/thesis.txt', 23]]);

    const diff = await call<DiffReport>(a, 'jobs.diff', { id, from: 0, to: 1 });
    expect(diff.entries.map((e) => [e.change, e.path])).toEqual([
      ['modified', 'docs/thesis.txt'],
      ['added', 'new.txt'],
      ['removed', 'notes.txt'],
    ]);

    const versions = await call<Array<{ state: number; size: number }>>(a, 'jobs.history', {
      id,
      path: 'docs/thesis.txt',
    });
    expect(versions.map((v) => [v.state, v.size])).toEqual([
      [0, 12],
      [1, 23],
    ]);
    expect(await refused(a, 'jobs.history', { id, path: 'nope.txt' })).toBe(
      'state.not-found: nope.txt is in no state of this archive',
    );

    const found = await call<{ total: number; entries: Array<{ path: string }> }>(
      a,
      'jobs.search',
      { id, stateId: 0, query: 'TXT' },
    );
    expect(found.total).toBe(2);
    expect(found.entries.map((e) => e.path)).toEqual(['docs/thesis.txt', 'notes.txt']);
    expect(await refused(a, 'jobs.search', { id, stateId: 0, query: '  ' })).toBe(
      'usage: type part of a name to search for (jobs.search query)',
    );

    const target = path.join(dir, 'restores');
    const what = { kind: 'file', path: 'docs/thesis.txt' };
    const plan = await call<RestorePlan>(a, 'jobs.planRestore', {
      id,
      stateId: 0,
      what,
      target,
      overwrite: 'none',
    });
    expect(plan).toMatchObject({
      target: path.join(target, 'thesis.txt'),
      bytes: 12,
      files: 1,
      targetExists: false,
      problems: [],
    });
    const report = await call<VolumeRestoreReport>(a, 'jobs.restore', {
      id,
      stateId: 0,
      what,
      target,
      overwrite: 'none',
    });
    expect(report).toMatchObject({ files: 1, bytesWritten: 12, verified: true });
    expect(fs.readFileSync(path.join(target, 'thesis.txt'), 'utf8')).toBe('chapter one\n');
    expect(fs.readdirSync(target)).toEqual(['thesis.txt']);
    // The live file is untouched.
    expect(fs.readFileSync(path.join(tree, 'docs', 'thesis.txt'), 'utf8')).toBe(
      'chapter one, rewritten\n',
    );
    // The same restore again: the plan says the target exists, the restore refuses.
    const again = await call<RestorePlan>(a, 'jobs.planRestore', {
      id,
      stateId: 0,
      what,
      target,
      overwrite: 'none',
    });
    expect(again.problems).toEqual([
      `${path.join(target, 'thesis.txt')} exists: choose a new folder (nothing is overwritten)`,
    ]);
    expect(
      await refused(a, 'jobs.restore', { id, stateId: 0, what, target, overwrite: 'none' }),
    ).toMatch(/^restore\.target-exists: /);

    // Everything into a new folder: the whole tree, proven against the state hash.
    const whole = await call<VolumeRestoreReport>(a, 'jobs.restore', {
      id,
      stateId: 0,
      what: { kind: 'everything' },
      target: path.join(dir, 'whole'),
      overwrite: 'none',
    });
    expect(whole).toMatchObject({ files: 3, dirs: 1, verified: true });
    expect(fs.readFileSync(path.join(dir, 'whole', 'notes.txt'), 'utf8')).toBe('n'.repeat(1000));

    // The original place only with overwrite 'force'.
    const original = await call<RestorePlan>(a, 'jobs.planRestore', {
      id,
      stateId: 0,
      what,
      target: tree,
      overwrite: 'none',
    });
    expect(original.problems[0]).toMatch(/is the protected folder's live data/);
    await call(a, 'jobs.restore', { id, stateId: 0, what, target: tree, overwrite: 'force' });
    expect(fs.readFileSync(path.join(tree, 'docs', 'thesis.txt'), 'utf8')).toBe('chapter one\n');
  });

  it('refuses bad browse, diff, plan and restore requests in one line', async () => {
    const dir = tempDir();
    const tree = path.join(dir, 'tree');
    makeTree(tree);
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(1 << 20));
    const a = await app(path.join(dir, 'data'));
    expect(
      await refused(a, 'jobs.create', {
        mode: 'volume',
        primary: image,
        secondary: path.join(dir, 'b'),
        schedule: DEFAULT_SCHEDULE,
      }),
    ).toBe(
      `job.bad-choice: ${image} is not a folder: choose a folder, or protect it as a disk or image`,
    );
    expect(
      await refused(a, 'jobs.create', {
        mode: 'volume',
        primary: tree,
        secondary: path.join(tree, 'backup'),
        schedule: DEFAULT_SCHEDULE,
      }),
    ).toBe(`job.bad-choice: ${path.join(tree, 'backup')} lies inside the primary`);
    const job = await call<JobView>(a, 'jobs.create', {
      mode: 'volume',
      primary: tree,
      secondary: path.join(dir, 'backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    const id = job.config.id;
    await until(a, id, (j) => j.status === 'ok');

    expect(await refused(a, 'jobs.browse', { id, stateId: 7 })).toBe(
      'state.not-found: state 7 does not exist in this archive',
    );
    expect(await refused(a, 'jobs.browse', { id, stateId: 0, path: '../etc' })).toBe(
      `usage: ../etc is not a path inside the protected folder ${tree}`,
    );
    expect(await refused(a, 'jobs.browse', { id, stateId: 0, path: '/etc' })).toBe(
      `usage: /etc is not a path inside the protected folder ${tree}`,
    );
    expect(await refused(a, 'jobs.browse', { id, stateId: 0, path: 'nope' })).toBe(
      'state.not-found: nope is not in state 0',
    );
    expect(await refused(a, 'jobs.browse', { id, stateId: 0, path: 'notes.txt' })).toBe(
      'usage: notes.txt is a file, not a folder',
    );
    expect(await refused(a, 'jobs.browse', { id, stateId: -1 })).toBe(
      'usage: Too small: expected number to be >=0 (jobs.browse stateId)',
    );
    expect(await refused(a, 'jobs.diff', { id, from: 0, to: 3 })).toBe(
      'state.not-found: state 3 does not exist in this archive',
    );
    const target = path.join(dir, 'r');
    const plan = await call<RestorePlan>(a, 'jobs.planRestore', {
      id,
      stateId: 0,
      what: { kind: 'file', path: 'docs/missing.txt' },
      target,
      overwrite: 'none',
    });
    expect(plan.problems).toEqual(['docs/missing.txt is not in state 0']);
    expect(
      await refused(a, 'jobs.restore', {
        id,
        stateId: 0,
        what: { kind: 'file', path: '../../etc/passwd' },
        target,
        overwrite: 'none',
      }),
    ).toBe(`usage: ../../etc/passwd is not a path inside the protected folder ${tree}`);
    expect(
      await refused(a, 'jobs.restore', {
        id,
        stateId: 0,
        what: { kind: 'everything' },
        target: tree,
        overwrite: 'none',
      }),
    ).toMatch(/^restore\.target-is-primary: /);
    expect(fs.existsSync(target)).toBe(false);

    // A device job has no files to browse.
    const device = await call<JobView>(a, 'jobs.create', {
      mode: 'device',
      primary: image,
      secondary: path.join(dir, 'device-backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    expect(await refused(a, 'jobs.browse', { id: device.config.id, stateId: 0 })).toBe(
      'usage: disk.img protects a device: it has no files to browse',
    );
    await until(a, device.config.id, (j) => j.status === 'ok');
  });

  it('checks a folder pair: a file is no folder, and a small backup disk is a warning', async () => {
    const dir = tempDir();
    const tree = path.join(dir, 'tree');
    makeTree(tree);
    const ok = await checkChoice('volume', tree, path.join(dir, 'backup'));
    expect(ok.errors).toEqual([]);
    expect(ok.primarySize).toBe(12 + 1000 + 70_000);
    expect((await checkChoice('volume', tree, tree)).errors).toContain(
      'the backup cannot be the primary itself',
    );
    expect((await checkChoice('volume', path.join(tree, 'b.bin'), dir)).errors[0]).toMatch(
      /b\.bin is not a folder/,
    );
  });
});
