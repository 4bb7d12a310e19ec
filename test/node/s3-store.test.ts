import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store, parseS3Name } from '../../src/main/engine/storage/s3-store.js';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';

describe('S3 object store against a server that stops answering', () => {
  it('fails a silent request after the idle timeout instead of waiting for ever', async () => {
    // Accepts connections and reads requests but never answers, like a stalled gateway.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const s = new S3Store(parseS3Name('s3://stalled/x/'), {
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDSTALLED', secretAccessKey: 'secret' },
      idleTimeoutMs: 300,
      maxAttempts: 2,
    });
    const started = Date.now();
    try {
      const w = await s.create('small');
      await w.write(Buffer.from('data'));
      await expect(w.commit()).rejects.toThrow(/unreachable or failing/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(sockets.length).toBeGreaterThanOrEqual(2);
    } finally {
      await s.close();
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});

const skip = rgwSkipReason();
if (skip) console.warn(`s3-store tests skipped: ${skip}`);

describe.skipIf(skip !== null)('S3 object store on a real Ceph RGW', () => {
  let rgw: Rgw;
  let n = 0;
  const store = (settings: object = {}) =>
    new S3Store(parseS3Name(`s3://store-test/run${++n}`), {
      endpoint: rgw.endpoint,
      region: rgw.region,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      ...settings,
    });

  beforeAll(() => {
    rgw = startRgw('store', 7491, 3391);
  });
  afterAll(() => rgw?.stop());

  it('parses s3:// names and refuses bad ones', () => {
    expect(parseS3Name('s3://bucket/a/b/')).toEqual({ bucket: 'bucket', prefix: 'a/b/' });
    expect(parseS3Name('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(() => parseS3Name('s3://B/x')).toThrow(/not a valid S3 archive name/);
    expect(() => parseS3Name('s3://bucket/../x')).toThrow(/may not contain/);
  });

  it('stores small and multipart objects, reads ranges, refuses to overwrite', async () => {
    const s = store({ partSize: 5 << 20, parallel: 3 });
    await s.ensureBucket();
    const small = randomBytes(1000);
    const w1 = await s.create('a/small');
    await w1.write(small);
    await w1.commit();
    const big = randomBytes((17 << 20) + 123);
    const w2 = await s.create('a/big');
    for (let at = 0; at < big.length; at += 3 << 20)
      await w2.write(big.subarray(at, at + (3 << 20)));
    await w2.commit();
    // An object just under a part, written in two pieces, and a writer that gives up.
    const middle = randomBytes((4 << 20) + 17);
    const w3 = await s.create('a/middle');
    await w3.write(middle.subarray(0, 3 << 20));
    await w3.write(middle.subarray(3 << 20));
    await w3.commit();
    expect((await s.read('a/middle', 0, middle.length)).equals(middle)).toBe(true);
    const dropped = await s.create('a/dropped');
    await dropped.write(randomBytes(3 << 20));
    await dropped.abort();
    expect(await s.list('a/')).toEqual(['a/big', 'a/middle', 'a/small']);
    expect(await s.size('a/big')).toBe(big.length);
    expect((await s.read('a/small', 10, 20)).equals(small.subarray(10, 30))).toBe(true);
    for (const [off, len] of [
      [0, 100],
      [(4 << 20) - 10, 50],
      [5 << 20, 6 << 20],
      [big.length - 7, 7],
    ] as const)
      expect((await s.read('a/big', off, len)).equals(big.subarray(off, off + len))).toBe(true);
    await expect(s.read('a/small', 990, 20)).rejects.toThrow(/shorter than expected/);
    await expect(s.read('a/none', 0, 1)).rejects.toThrow(/missing from the archive/);
    const again = await s.create('a/small');
    await again.write(Buffer.from('x'));
    await expect(again.commit()).rejects.toThrow(/already exists/);
    const againBig = await s.create('a/big');
    await againBig.write(randomBytes(6 << 20));
    await expect(againBig.commit()).rejects.toThrow(/already exists/);
    expect((await s.read('a/small', 0, 1000)).equals(small)).toBe(true);
    expect(await s.removeIncomplete()).toBe(0);
    await s.delete('a/small');
    expect(await s.exists('a/small')).toBe(false);
    await s.close();
  });

  it('an abandoned multipart upload is invisible and removeIncomplete aborts it', async () => {
    const s = store({ partSize: 5 << 20 });
    await s.ensureBucket();
    const w = await s.create('x');
    await w.write(randomBytes(11 << 20));
    // No commit, no abort: as if the process died.
    expect(await s.list('')).toEqual([]);
    expect(await s.removeIncomplete()).toBe(1);
    expect(await s.removeIncomplete()).toBe(0);
    await s.close();
  });

  it('honours the upload limit', async () => {
    const s = store({ bwlimit: 4 << 20, partSize: 5 << 20 });
    await s.ensureBucket();
    const t0 = Date.now();
    const w = await s.create('slow');
    await w.write(randomBytes(15 << 20));
    await w.commit();
    // 15 MiB at 4 MiB/s with one second of burst: at least 2.75 s.
    expect(Date.now() - t0).toBeGreaterThan(2500);
    await s.close();
  });

  it('bytes changed after the checksum was signed are refused: no object, no unfinished upload', async () => {
    for (const size of [1000, (11 << 20) + 5]) {
      const s = store({ partSize: 5 << 20, maxAttempts: 1 });
      await s.ensureBucket();
      let flipped = 0;
      // After signing, just before the bytes go out: as if they were damaged on the way.
      s.client.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { body?: unknown };
          if (Buffer.isBuffer(request.body) && request.body.length > 0 && flipped++ === 0) {
            const copy = Buffer.from(request.body);
            copy[copy.length >> 1] = (copy[copy.length >> 1] as number) ^ 1;
            request.body = copy;
          }
          return next(args);
        },
        { step: 'deserialize', name: 'flipOneByte' },
      );
      const w = await s.create('flipped');
      await w.write(randomBytes(size));
      await expect(w.commit()).rejects.toThrow(/checksum mismatch, XAmzContentSHA256Mismatch/);
      expect(flipped).toBeGreaterThan(0);
      expect(await s.exists('flipped')).toBe(false);
      expect(await s.list('')).toEqual([]);
      expect(await s.removeIncomplete()).toBe(0);
      await s.close();
    }
  });

  it('an upload signs the SHA-256 of every body and keeps its part buffers bounded', async () => {
    const s = store({ partSize: 5 << 20, parallel: 2 });
    await s.ensureBucket();
    const signed: string[] = [];
    s.client.middlewareStack.add(
      (next) => (args) => {
        const headers = (args.request as { headers: Record<string, string> }).headers;
        if (headers['x-amz-content-sha256']) signed.push(headers['x-amz-content-sha256']);
        return next(args);
      },
      { step: 'deserialize', name: 'seeSigned' },
    );
    const data = randomBytes(26 << 20);
    const w = await s.create('signed');
    for (let at = 0; at < data.length; at += 1 << 20)
      await w.write(data.subarray(at, at + (1 << 20)));
    // Parallel 2: the buffers filling and in flight never exceed 3, whatever the object's size.
    expect((w as unknown as { allocated: number }).allocated).toBeLessThanOrEqual(3);
    await w.commit();
    const { createHash } = await import('node:crypto');
    for (let i = 0; i < 6; i++) {
      const part = data.subarray(i * (5 << 20), (i + 1) * (5 << 20));
      expect(signed).toContain(createHash('sha256').update(part).digest('hex'));
    }
    expect((await s.read('signed', 0, data.length)).equals(data)).toBe(true);
    await s.close();
  });

  it('sizes come from the listing; existence and an upload’s confirmation ask the server', async () => {
    const s = store();
    await s.ensureBucket();
    let heads = 0;
    s.client.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'HeadObjectCommand') heads++;
        return next(args);
      },
      { step: 'initialize', name: 'countHeads' },
    );
    for (const [name, size] of [
      ['l/a', 1000],
      ['l/b', 3000],
    ] as const) {
      const w = await s.create(name);
      await w.write(randomBytes(size));
      const before = heads;
      await w.commit();
      // Whether it was there before, and the size the server then holds.
      expect(heads - before).toBe(2);
    }
    heads = 0;
    expect(await s.list('l/')).toEqual(['l/a', 'l/b']);
    expect([await s.size('l/a'), await s.size('l/b')]).toEqual([1000, 3000]);
    expect(heads).toBe(0);
    expect(await s.exists('l/a')).toBe(true);
    expect(heads).toBe(1);
    // Deleted here: the listed size is forgotten. Deleted by another machine: existence says so.
    await s.delete('l/a');
    await expect(s.size('l/a')).rejects.toThrow(/missing from the archive/);
    const other = new S3Store(parseS3Name(`s3://store-test/run${n}`), {
      endpoint: rgw.endpoint,
      region: rgw.region,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    });
    await other.delete('l/b');
    await other.close();
    expect(await s.exists('l/b')).toBe(false);
    await s.close();
  });
});
