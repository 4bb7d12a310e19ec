// Driving the services as the UI does: one API call that must succeed, and waiting for a job.
import type { App } from '../../src/main/index.js';
import type { JobView } from '../../src/shared/jobs.js';

/** One API method through the app's dispatcher; a refusal fails the test with its code. */
export async function call<T>(a: App, method: string, params: unknown): Promise<T> {
  const r = await a.dispatch(method, params);
  if (!r.ok) throw new Error(`${method}: ${r.error.code}: ${r.error.message}`);
  return r.value as T;
}

/** The job's view once `pred` holds (polled for 30 s). */
export async function until(a: App, id: string, pred: (j: JobView) => boolean): Promise<JobView> {
  for (let i = 0; i < 600; i++) {
    const job = a.jobs.get(id);
    if (pred(job)) return job;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for the job: ${JSON.stringify(a.jobs.get(id))}`);
}
