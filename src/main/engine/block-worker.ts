// A thread for the bulk block work of a scan or a restore (zstd, BLAKE3), so that it runs on a
// second core beside the reads, hashes and writes of the engine's own thread.
import { parentPort } from 'node:worker_threads';
import { runBlockJob, type BlockJob } from './block-work.js';

const port = parentPort;
if (port === null) throw new Error('block-worker.js runs as a worker thread only');

port.on('message', ({ id, job }: { id: number; job: BlockJob }) => {
  try {
    runBlockJob(job);
    port.postMessage({ id });
  } catch (err) {
    port.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
