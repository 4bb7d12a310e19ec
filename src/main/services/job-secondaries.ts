// A job's extra secondaries as the app manages them (issue 6): added and removed from the UI,
// each with its own endpoint, credentials, passphrase, upload limit, retention and queue limit.
// Settings go to secondaries.json, secrets to the injected SecretStore, and both reach the engine
// worker only as call parameters, never a log line.
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type { JobConfig, Retention } from '../../shared/jobs.js';
import {
  effectiveRetention,
  type SecondaryLocation,
  type SecondaryOptions,
  type SecondarySettingsView,
} from '../../shared/secondaries.js';
import type { SecondaryStatus } from '../../shared/states.js';
import { formatBytes } from '../cli/format-human.js';
import type { EngineHost } from '../engine-host/engine-host.js';
import { dropSecondaryQueue, type SecondaryPolicy } from '../engine/fanout/fan-out.js';
import type { TargetAccess } from '../engine/storage/remote-access.js';
import { parseS3Name } from '../engine/storage/s3-name.js';
import type { Note } from './job-notes.js';
import type { SecretStore } from './secret-store.js';
import {
  forgetSecondary,
  recordSecondary,
  secondariesOf,
  secondarySettingsOf,
} from './secondary-registry.js';
import { liesWithin } from './path-within.js';

interface Secrets {
  accessKeyId?: string;
  secretAccessKey?: string;
  passphrase?: string;
}

/** The normalised name of a location, as the engine and secondaries.json name it. */
export function targetName(location: SecondaryLocation): string {
  if (location.kind === 'folder') return path.resolve(location.path);
  const prefix = location.prefix.replace(/^\/+|\/+$/g, '');
  const address = parseS3Name(`s3://${location.bucket}${prefix ? `/${prefix}` : ''}`);
  return `s3://${address.bucket}/${address.prefix}`;
}

function policyOf(retention: Retention): SecondaryPolicy['retention'] {
  if (retention.keep !== 'policy') return undefined;
  const { keep: _keep, ...settings } = retention;
  return settings;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

export class JobSecondaries {
  constructor(
    private readonly engine: EngineHost,
    private readonly dataDir: string,
    private readonly cacheDir: string,
    readonly secrets: SecretStore,
  ) {}

  private secretKey(archive: string, target: string): string {
    return `secondary\n${archive}\n${target}`;
  }

  /**
   * Adds an extra secondary to the job: checked (an s3:// bucket with one quick request), then
   * given a copy of every state. The secrets are stored first so that a failure of the store
   * (no keyring) leaves nothing behind; a failed add removes them again.
   */
  async add(
    job: JobConfig,
    location: SecondaryLocation,
    passphrase: string | undefined,
    options: SecondaryOptions,
  ): Promise<string> {
    const archive = path.resolve(job.secondary);
    const target = targetName(location);
    if (target === archive)
      throw new TidemarkError('usage', `${target} is the job's own archive: choose another place`);
    if ((await secondariesOf(archive, this.dataDir)).includes(target))
      throw new TidemarkError('usage', `${target} is already a secondary of this job`);
    if (
      location.kind === 'folder' &&
      job.mode === 'volume' &&
      (await liesWithin(job.primary, target))
    )
      throw new TidemarkError(
        'job.bad-choice',
        `${target} is inside the protected folder ${job.primary}: choose a place outside it`,
      );
    const secrets: Secrets = {};
    let view: SecondarySettingsView;
    if (location.kind === 's3') {
      const hasId = location.accessKeyId !== '';
      if (hasId !== (location.secretAccessKey !== ''))
        throw new TidemarkError(
          'usage',
          'give both the access key id and the secret access key, or neither (to use the AWS chain of this machine)',
        );
      if (hasId) {
        secrets.accessKeyId = location.accessKeyId;
        secrets.secretAccessKey = location.secretAccessKey;
      }
      view = {
        kind: 's3',
        ...(location.endpoint ? { endpoint: location.endpoint } : {}),
        region: location.region,
        pathStyle: location.pathStyle,
        credentials: hasId ? 'set' : 'chain',
        passphraseSet: false,
        ...options,
      };
    } else {
      view = { kind: 'folder', passphraseSet: false, ...options };
    }
    if (passphrase !== undefined && passphrase !== '') {
      secrets.passphrase = passphrase;
      view.passphraseSet = true;
    }
    const key = this.secretKey(archive, target);
    const hasSecrets = Object.keys(secrets).length > 0;
    if (hasSecrets) await this.secrets.set(key, JSON.stringify(secrets));
    try {
      await this.engine.call('addSecondary', {
        archive,
        target,
        cacheDir: this.cacheDir,
        access: { [target]: accessOf(view, secrets) },
      });
    } catch (err) {
      if (hasSecrets) await this.secrets.delete(key).catch(() => undefined);
      throw err;
    }
    await recordSecondary(archive, target, this.dataDir, view);
    return target;
  }

  async update(job: JobConfig, target: string, patch: Partial<SecondaryOptions>): Promise<void> {
    const archive = path.resolve(job.secondary);
    if (!(await secondariesOf(archive, this.dataDir)).includes(target))
      throw new TidemarkError('usage', `${target} is not a secondary of this job`);
    const current = (await secondarySettingsOf(archive, this.dataDir))[target] ?? {
      kind: target.startsWith('s3://') ? ('s3' as const) : ('folder' as const),
      passphraseSet: false,
      bwlimitBytes: null,
      retention: null,
      queueLimitBytes: null,
    };
    await recordSecondary(archive, target, this.dataDir, { ...current, ...patch });
  }

  /** Stops fanning out to it; its archive stays as it is, its secrets and queue go. */
  async remove(job: JobConfig, target: string): Promise<void> {
    const archive = path.resolve(job.secondary);
    if (!(await forgetSecondary(archive, target, this.dataDir)))
      throw new TidemarkError('usage', `${target} is not a secondary of this job`);
    await this.secrets.delete(this.secretKey(archive, target));
    await dropSecondaryQueue(archive, target, this.cacheDir);
  }

  /** What the engine needs to reach each secondary, its policies, and the settings to show. */
  async forFanOut(
    job: JobConfig,
    targets: string[],
  ): Promise<{
    access: Record<string, TargetAccess>;
    policies: Record<string, SecondaryPolicy>;
    views: Record<string, SecondarySettingsView>;
  }> {
    const archive = path.resolve(job.secondary);
    const views = await secondarySettingsOf(archive, this.dataDir);
    const access: Record<string, TargetAccess> = {};
    const policies: Record<string, SecondaryPolicy> = {};
    for (const target of targets) {
      const view = views[target];
      const retention = policyOf(effectiveRetention(view?.retention ?? null, job.retention));
      const queueLimitBytes = view?.queueLimitBytes ?? undefined;
      policies[target] = {
        ...(retention ? { retention } : {}),
        ...(queueLimitBytes ? { queueLimitBytes } : {}),
      };
      if (!view) continue;
      const stored = await this.secrets.get(this.secretKey(archive, target));
      access[target] = accessOf(view, stored ? (JSON.parse(stored) as Secrets) : {});
    }
    return { access, policies, views };
  }
}

function accessOf(view: SecondarySettingsView, secrets: Secrets): TargetAccess {
  const access: TargetAccess = {
    // The app encrypts exactly the secondaries given a passphrase (the CLI: s3:// by default).
    encrypt: secrets.passphrase !== undefined,
    ...(secrets.passphrase !== undefined ? { passphrase: secrets.passphrase } : {}),
  };
  if (view.kind === 's3')
    access.s3 = {
      ...(view.endpoint ? { endpoint: view.endpoint } : {}),
      ...(view.region ? { region: view.region } : {}),
      ...(view.pathStyle !== undefined ? { forcePathStyle: view.pathStyle } : {}),
      ...(secrets.accessKeyId && secrets.secretAccessKey
        ? {
            credentials: {
              accessKeyId: secrets.accessKeyId,
              secretAccessKey: secrets.secretAccessKey,
            },
          }
        : {}),
      ...(view.bwlimitBytes ? { bwlimit: view.bwlimitBytes } : {}),
    };
  return access;
}

/** Lines for the job's log: each secondary's retention and a queue that reached its limit. */
export function secondaryNotes(list: SecondaryStatus[]): Note[] {
  const notes: Note[] = [];
  for (const s of list) {
    if (s.pruned && s.pruned.dropped.length > 0)
      notes.push({
        level: 'info',
        message: `secondary ${s.target}: its retention removed ${plural(s.pruned.dropped.length, 'state')} (${s.pruned.dropped.join(', ')}), ${formatBytes(s.pruned.bytesFreed)} freed`,
      });
    if (s.queueFull)
      notes.push({
        level: 'warn',
        notify: true,
        message: `secondary ${s.target}: its queue is full (${formatBytes(s.queueFull.bytes)} of ${formatBytes(s.queueFull.limitBytes)}): ${plural(s.queueFull.notQueued, 'state')} wait in the archive until it catches up`,
      });
  }
  return notes;
}
