// The measured commands: tidemark's CLI as users run it, and the references (dd, rsync, restic, borg).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { duBytes, run, timed, which } from './proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TIDEMARK_BIN = path.join(ROOT, 'bin', 'tidemark.js');
export const TIDEMARK_ENTRY = path.join(ROOT, 'out', 'node', 'main', 'cli', 'main.js');

/** Required tools and the apt packages that provide them. */
export const REQUIRED = [
  { cmd: 'restic', pkg: 'restic' },
  { cmd: 'rsync', pkg: 'rsync' },
  { cmd: 'mke2fs', pkg: 'e2fsprogs' },
  { cmd: 'losetup', pkg: 'mount' },
  { cmd: 'mount', pkg: 'mount' },
  { cmd: 'dd', pkg: 'coreutils' },
  { cmd: 'du', pkg: 'coreutils' },
  { cmd: 'truncate', pkg: 'coreutils' },
  { cmd: 'time', pkg: 'time', path: '/usr/bin/time' },
];
export const OPTIONAL = [{ cmd: 'borg', pkg: 'borgbackup' }];

export function missingTools(list) {
  return list.filter((t) => (t.path ? !fs.existsSync(t.path) : !which(t.cmd)));
}

/**
 * Loads every measured program once (binaries, shared libraries, tidemark's JS and native
 * modules) so that a following "cold" run reads only its data from the disk. Tidemark's commands
 * load only the modules they need, so `--help` alone loads almost none: a snapshot of a small
 * scratch archive (`warmArchive`, see makeWarmArchive) loads what the timed commands load.
 */
export async function warmPrograms(withBorg, warmArchive) {
  await run(process.execPath, [TIDEMARK_BIN, '--help']);
  if (warmArchive) {
    await run(process.execPath, [TIDEMARK_BIN, 'snapshot', warmArchive]);
    await run(process.execPath, [TIDEMARK_BIN, 'states', warmArchive]);
  }
  await run('dd', ['--version']);
  await run('rsync', ['--version']);
  await run('restic', ['version']);
  if (withBorg) await run('borg', ['--version']);
}

/** A 4 MiB image and its archive in `dir`, for warmPrograms. */
export async function makeWarmArchive(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const image = path.join(dir, 'warm.img');
  const data = Buffer.alloc(4 << 20);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
  fs.writeFileSync(image, data);
  const archive = path.join(dir, 'warm-archive');
  await run(process.execPath, [TIDEMARK_BIN, 'init', image, archive]);
  return archive;
}

/**
 * Intervals as the app runs them: the engine loaded once in a long-lived process (the app and
 * `tidemark serve` host it in a worker thread, EngineHost), so an interval pays no Node start-up
 * and no module loading. Times the `snapshot` call from here, around the engine's answer.
 */
export async function engineSession() {
  const hostModule = path.join(ROOT, 'out', 'node', 'main', 'engine-host', 'engine-host.js');
  const { EngineHost } = await import(hostModule);
  const host = new EngineHost();
  return {
    /** Loads the engine worker and its modules (as the app does at its start). */
    async open(archive) {
      await host.call('states', { archive });
    },
    async snapshot(archive) {
      const started = process.hrtime.bigint();
      const outcome = await host.call('snapshot', { archive });
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      return { wall, changed: outcome.changed, state: outcome.state ?? null };
    },
    close: () => host.close(),
  };
}

// ---------------------------------------------------------------------------------- tidemark

function parseJson(stdout, what) {
  const line = stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${what}: no JSON in output: ${stdout.slice(-500)}`);
  }
}

export async function tmInit(image, archive, scratch, blockSize) {
  const args = [
    TIDEMARK_BIN,
    'init',
    image,
    archive,
    '--json',
    ...(blockSize ? ['--block-size', String(blockSize)] : []),
  ];
  const r = await timed(process.execPath, args, { scratch });
  const state = parseJson(r.stdout, 'tidemark init');
  return { wall: r.wall, maxRss: r.maxRss, state };
}

export async function tmSnapshot(archive, scratch) {
  const r = await timed(process.execPath, [TIDEMARK_BIN, 'snapshot', archive, '--json'], {
    scratch,
  });
  const out = parseJson(r.stdout, 'tidemark snapshot');
  return { wall: r.wall, maxRss: r.maxRss, changed: out.changed, state: out.state ?? null };
}

export async function tmRestore(archive, stateId, target, scratch) {
  const r = await timed(
    process.execPath,
    [TIDEMARK_BIN, 'restore', archive, '--state', String(stateId), '--to', target, '--json'],
    {
      scratch,
    },
  );
  return { wall: r.wall, maxRss: r.maxRss, report: parseJson(r.stdout, 'tidemark restore') };
}

export async function tmVerifyDeep(archive, scratch) {
  const r = await timed(process.execPath, [TIDEMARK_BIN, 'verify', archive, '--deep', '--json'], {
    scratch,
    allowFail: true,
  });
  const report = parseJson(r.stdout, 'tidemark verify');
  if (r.code !== 0 || !report.ok)
    throw new Error(`tidemark verify --deep found problems: ${JSON.stringify(report.problems)}`);
  return { wall: r.wall, maxRss: r.maxRss, report };
}

/** Size of the catalog (SQLite file and its side files) of an archive. */
export function catalogBytes(archive) {
  let total = 0;
  for (const name of fs.readdirSync(archive)) {
    if (name.startsWith('catalog')) total += fs.statSync(path.join(archive, name)).size;
  }
  return total;
}

export function archiveBlockSize(archive) {
  return JSON.parse(fs.readFileSync(path.join(archive, 'tidemark.json'), 'utf8')).blockSize;
}

// ---------------------------------------------------------------------------------- references

export async function ddRead(image, scratch) {
  const r = await timed('dd', [`if=${image}`, 'of=/dev/null', 'bs=8M'], { scratch });
  return { wall: r.wall };
}

/** dd copy of the image into a new file, fsynced (as restore syncs). */
export async function ddWrite(image, target, scratch) {
  const r = await timed('dd', [`if=${image}`, `of=${target}`, 'bs=8M', 'conv=fsync'], { scratch });
  return { wall: r.wall };
}

/** rsync's delta transfer onto the previous copy; "bytes added" is its literal data. */
export async function rsyncInplace(image, copy, scratch) {
  const r = await timed('rsync', ['--inplace', '--no-whole-file', '--stats', image, copy], {
    scratch,
  });
  const literal = Number(
    (/Literal data: ([\d,]+)/.exec(r.stdout)?.[1] ?? 'NaN').replaceAll(',', ''),
  );
  return { wall: r.wall, maxRss: r.maxRss, literal };
}

export function resticEnv(repo, cache) {
  return {
    RESTIC_REPOSITORY: repo,
    RESTIC_PASSWORD: 'tidemark-bench',
    RESTIC_CACHE_DIR: cache,
    RESTIC_PROGRESS_FPS: '0.0001',
  };
}

export async function resticInit(repo, cache) {
  await run('restic', ['init'], { env: resticEnv(repo, cache) });
  const cfg = await run('restic', ['cat', 'config'], { env: resticEnv(repo, cache) });
  return JSON.parse(cfg.stdout).version;
}

/** A restic backup of the mounted filesystem; bytes added = growth of the repository folder. */
export async function resticBackup(repo, cache, dir, scratch) {
  const before = duBytes(repo);
  const r = await timed('restic', ['backup', '--host', 'tidemark-bench', '--json', '.'], {
    scratch,
    cwd: dir,
    env: resticEnv(repo, cache),
  });
  let summary = null;
  for (const line of r.stdout.trim().split('\n')) {
    try {
      const m = JSON.parse(line);
      if (m.message_type === 'summary') summary = m;
    } catch {
      // progress line
    }
  }
  return {
    wall: r.wall,
    maxRss: r.maxRss,
    added: duBytes(repo) - before,
    dataAdded: summary?.data_added ?? null,
  };
}

export function borgEnv(base) {
  return {
    BORG_BASE_DIR: base,
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
}

export async function borgInit(repo, base) {
  await run('borg', ['init', '--encryption', 'none', repo], { env: borgEnv(base) });
}

export async function borgCreate(repo, base, dir, name, scratch) {
  const before = duBytes(repo);
  const r = await timed('borg', ['create', '--compression', 'zstd,3', `${repo}::${name}`, '.'], {
    scratch,
    cwd: dir,
    env: borgEnv(base),
  });
  return { wall: r.wall, maxRss: r.maxRss, added: duBytes(repo) - before };
}
