import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const FIXTURE = path.resolve(import.meta.dirname, '../fixtures/s3');

export interface Rgw {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
  /** Environment for a CLI child process: the AWS chain's variables plus the endpoint. */
  env: NodeJS.ProcessEnv;
  killGateway(): void;
  startGateway(): void;
  stop(): void;
}

/** Why the real-S3 tests cannot run here, or null when they can. */
export function rgwSkipReason(): string | null {
  for (const bin of ['ceph-mon', 'ceph-osd', 'radosgw', 'curl']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0)
      return `needs ${bin} (apt-get install ceph-mon ceph-osd radosgw curl; .ci/run does)`;
  }
  return null;
}

/**
 * Starts the project's Ceph RGW fixture (test/fixtures/s3) in its own folder and ports, so test
 * files running side by side each have their own server. TIDEMARK_RGW_PORT_OFFSET moves the
 * ports and the folder, for several checkouts testing on one machine at once.
 */
export function startRgw(name: string, rgwPort: number, monPort: number): Rgw {
  const offset = Number(process.env.TIDEMARK_RGW_PORT_OFFSET ?? 0) || 0;
  const dir = `/tmp/tidemark-rgw-${name}${offset ? `-${offset}` : ''}`;
  const env = {
    ...process.env,
    CEPH_DIR: dir,
    RGW_PORT: String(rgwPort + offset),
    MON_PORT: String(monPort + offset),
  };
  const out = execFileSync(path.join(FIXTURE, 'start-rgw.sh'), { env, encoding: 'utf8' });
  const vars = Object.fromEntries(
    out
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => l.split('=', 2) as [string, string]),
  );
  const rgw: Rgw = {
    endpoint: vars.S3_ENDPOINT as string,
    accessKeyId: vars.S3_ACCESS_KEY as string,
    secretAccessKey: vars.S3_SECRET_KEY as string,
    region: vars.S3_REGION as string,
    dir,
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
      AWS_ENDPOINT_URL: vars.S3_ENDPOINT,
      AWS_REGION: vars.S3_REGION,
    },
    killGateway: () => {
      execFileSync(path.join(FIXTURE, 'gateway.sh'), ['kill'], { env });
    },
    startGateway: () => {
      execFileSync(path.join(FIXTURE, 'gateway.sh'), ['start'], { env });
    },
    stop: () => {
      if (fs.existsSync(dir)) execFileSync(path.join(FIXTURE, 'stop-rgw.sh'), { env });
    },
  };
  return rgw;
}
