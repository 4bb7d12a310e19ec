// The compression thread of a scan (block-compressor.ts): compresses the batches it is told of,
// in shared memory, and answers with the slot number.
import { parentPort, workerData } from 'node:worker_threads';
import { BlockCodec } from './block-codec.js';
import {
  compressSlot,
  slotViews,
  type CompressReply,
  type CompressRequest,
  type CompressWorkerData,
} from './compress-protocol.js';

const port = parentPort;
if (port === null) throw new Error('compress-worker.js runs as a worker thread only');
const data = workerData as CompressWorkerData;
const slots = data.slots.map(slotViews);
const codec = new BlockCodec(1 << 16, data.level);

port.on('message', ({ slot }: CompressRequest) => {
  const reply: CompressReply = { slot };
  try {
    compressSlot(slots[slot] as (typeof slots)[number], (block, into) =>
      codec.compressInto(block, into),
    );
  } catch (err) {
    reply.error = err instanceof Error ? err.message : String(err);
  }
  port.postMessage(reply);
});
