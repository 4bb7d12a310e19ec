#!/usr/bin/env node
// One interval of bench/s3.js, in its own process like a CLI run: `node bench/s3-interval.js
// ARCHIVE` ends the interval of ARCHIVE (an s3:// URL or a folder; the environment says where
// the server is and gives the passphrase) and prints {"s": interval seconds, "bytes": stored
// bytes}. The clock runs from the call of the engine's snapshot to its return: opening the
// archive (and unlocking its key), reading and hashing the image, the upload, its confirmation
// and the catalog, but not Node's start-up or the loading of modules, which the raw PUT it is
// compared with does not pay either. The parent also times the whole process.
import { isS3Name } from '../out/node/main/engine/storage/s3-name.js';
import { snapshotArchive } from '../out/node/main/engine/device-engine.js';

const archive = process.argv[2];
// Loaded lazily by the engine: loaded here so the interval's clock does not count it.
if (isS3Name(archive)) await import('../out/node/main/engine/storage/s3-store.js');
const t0 = process.hrtime.bigint();
const result = await snapshotArchive(archive);
const s = Number(process.hrtime.bigint() - t0) / 1e9;
if (!result.changed) throw new Error('the interval recorded nothing');
process.stdout.write(JSON.stringify({ s, bytes: result.state.storedBytes }) + '\n');
