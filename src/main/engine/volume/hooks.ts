import { spawnSync } from 'node:child_process';

const HOOK_TIMEOUT_MS = 120_000;

export interface HookResult {
  ok: boolean;
  /** Why it failed, for people: exit code or signal and the last line it printed. */
  reason?: string;
}

/**
 * Runs a user's hook through the shell, with the tree and archive in its environment. A hook
 * lets an application flush or pause (a database checkpoint) so that the point is consistent.
 */
export function runHook(
  command: string,
  which: 'pre' | 'post',
  env: { tree: string; archive: string; stateId?: number },
): HookResult {
  const r = spawnSync('/bin/sh', ['-c', command], {
    encoding: 'utf8',
    timeout: HOOK_TIMEOUT_MS,
    env: {
      ...process.env,
      TIDEMARK_HOOK: which,
      TIDEMARK_TREE: env.tree,
      TIDEMARK_ARCHIVE: env.archive,
      ...(env.stateId === undefined ? {} : { TIDEMARK_STATE: String(env.stateId) }),
    },
  });
  if (r.status === 0) return { ok: true };
  const said = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').pop() ?? '';
  const how = r.error
    ? (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT'
      ? `timed out after ${HOOK_TIMEOUT_MS / 1000} s`
      : r.error.message
    : r.signal
      ? `killed by ${r.signal}`
      : `exit ${r.status}`;
  return {
    ok: false,
    reason: `${which}-hook \`${command}\` failed (${how})${said ? `: ${said}` : ''}`,
  };
}
