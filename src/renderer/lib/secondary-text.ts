// How an extra secondary's settings read in the job screen (never a credential: only whether
// one is set).
import type { Retention } from '../../shared/jobs';
import type { SecondarySettingsView } from '../../shared/secondaries';
import { bytes } from './format';

function retentionText(r: Retention): string {
  if (r.keep === 'all') return 'keeps every state';
  return `keeps all of ${r.keepWithinMs / 3_600_000} h, hourly ${r.hourly} h, daily ${r.daily} d, weekly ${r.weekly === null ? 'beyond' : `${r.weekly} w`}`;
}

export function secondarySettingsText(s: SecondarySettingsView, job: Retention): string[] {
  const parts: string[] = [];
  if (s.kind === 's3') {
    parts.push(s.endpoint ? `endpoint ${s.endpoint}` : 'AWS S3');
    if (s.region) parts.push(`region ${s.region}`);
    parts.push(s.credentials === 'set' ? 'credentials set' : "this machine's AWS credentials");
    parts.push(s.bwlimitBytes ? `upload limit ${bytes(s.bwlimitBytes)}/s` : 'no upload limit');
  }
  if (s.passphraseSet) parts.push('passphrase set');
  parts.push(
    s.retention
      ? `own retention: ${retentionText(s.retention)}`
      : `job's retention: ${retentionText(job)}`,
  );
  parts.push(s.queueLimitBytes ? `queue limit ${bytes(s.queueLimitBytes)}` : 'no queue limit');
  return parts;
}
