// A seeded PRNG (xoshiro128**) so that every run makes the same changes.

export class Rng {
  constructor(seed) {
    // splitmix32 to spread the seed over the state
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** Uniform 32-bit unsigned integer. */
  u32() {
    const result = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next() {
    return this.u32() / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Log-uniform integer in [lo, hi]: many small values, a few big ones (like file sizes). */
  logInt(lo, hi) {
    return Math.round(Math.exp(Math.log(lo) + this.next() * (Math.log(hi) - Math.log(lo))));
  }

  pick(array) {
    return array[Math.floor(this.next() * array.length)];
  }

  /** Fisher-Yates on a copy. */
  shuffled(array) {
    const a = array.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  /** `length` incompressible bytes. */
  bytes(length) {
    const buf = Buffer.allocUnsafe(Math.ceil(length / 4) * 4);
    for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE(this.u32(), i);
    return buf.subarray(0, length);
  }

  /** `length` bytes of text-like content (compressible roughly like source code or logs). */
  text(length) {
    const words = vocabulary(this);
    const parts = [];
    let size = 0;
    while (size < length) {
      const n = this.int(4, 14);
      let line = '';
      for (let i = 0; i < n; i++) line += (i ? ' ' : '') + words[this.u32() % words.length];
      if (this.next() < 0.3) line += ` ${this.u32().toString(16)}`;
      line += '\n';
      parts.push(line);
      size += line.length;
    }
    return Buffer.from(parts.join('')).subarray(0, length);
  }

  /** Half text, half random bytes, in pieces: what a mix of documents and binaries looks like. */
  content(length) {
    return this.next() < 0.5 ? this.text(length) : this.bytes(length);
  }
}

function rotl(x, k) {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let words = null;
function vocabulary(rng) {
  if (words) return words;
  // A fixed vocabulary, independent of the caller's stream so that it never shifts it.
  const own = new Rng(0x5eed);
  words = [];
  for (let i = 0; i < 2000; i++) {
    const len = own.int(2, 10);
    let w = '';
    for (let j = 0; j < len; j++) w += String.fromCharCode(97 + (own.u32() % 26));
    words.push(w);
  }
  void rng;
  return words;
}
