// The API contract's requests, served: validated here once for every transport (Electron IPC,
// HTTP), errors returned as data.
import {
  isMethod,
  parseParams,
  type AppInfo,
  type Method,
  type ParsedParams,
  type Response,
} from '../../shared/api.js';
import { isTidemarkError, type Result } from '../../shared/errors.js';
import { checkChoice, listDrives } from './drives.js';
import type { JobService } from './job-service.js';
import type { SettingsService } from './settings-service.js';

type Handlers = {
  [M in Method]: (params: ParsedParams<M>) => Promise<Response<M>> | Response<M>;
};

export type Dispatch = (method: unknown, params: unknown) => Promise<Result<unknown>>;

export function apiHandlers(jobs: JobService, settings: SettingsService, info: AppInfo): Dispatch {
  const handlers: Handlers = {
    'app.info': () => info,
    'jobs.list': () => jobs.list(),
    'jobs.create': (p) => jobs.create(p),
    'jobs.update': (p) => jobs.update(p),
    'jobs.remove': async (p) => {
      await jobs.remove(p.id);
      return null;
    },
    'jobs.snapshot': (p) => jobs.snapshot(p.id),
    'jobs.states': (p) => jobs.states(p.id),
    'jobs.restore': (p) => jobs.restore(p),
    'jobs.planRestore': (p) => jobs.planRestore(p),
    'jobs.browse': (p) => jobs.browse(p),
    'jobs.diff': (p) => jobs.diff(p),
    'jobs.history': (p) => jobs.history(p.id, p.path),
    'jobs.search': (p) => jobs.search(p),
    'jobs.verify': (p) => jobs.verify(p.id, p.deep),
    'jobs.cancel': (p) => jobs.cancel(p.id),
    'jobs.pin': (p) => jobs.pin(p),
    'jobs.previewRetention': (p) => jobs.previewRetention(p),
    'jobs.addSecondary': (p) => jobs.addSecondary(p),
    'jobs.updateSecondary': (p) => jobs.updateSecondary(p),
    'jobs.removeSecondary': (p) => jobs.removeSecondary(p),
    'drives.list': () => listDrives(),
    'drives.check': async (p) =>
      checkChoice(p.mode, p.primary, p.secondary, await listDrives().catch(() => [])),
    'settings.get': () => settings.current(),
    'settings.update': (p) => settings.update(p),
  };

  return async (method, params) => {
    if (!isMethod(method)) {
      return {
        ok: false,
        error: { code: 'usage', message: `unknown method ${String(method)}`, retryable: false },
      };
    }
    const parsed = parseParams(method, params);
    if (!parsed.ok) return parsed;
    try {
      const handler = handlers[method] as (p: unknown) => Promise<unknown> | unknown;
      return { ok: true, value: await handler(parsed.value) };
    } catch (err) {
      if (isTidemarkError(err)) return { ok: false, error: err.toInfo() };
      const message = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        error: { code: 'internal', message: `internal error: ${message}`, retryable: false },
      };
    }
  };
}
