import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import { allowedHosts, tokenMatches } from '../../src/main/server/auth.js';

describe('server auth', () => {
  it('accepts only the bound host (and localhost on loopback)', () => {
    expect([...allowedHosts('127.0.0.1', 80)].sort()).toEqual(['127.0.0.1:80', 'localhost:80']);
    expect([...allowedHosts('::1', 80)].sort()).toEqual(['[::1]:80', 'localhost:80']);
    expect([...allowedHosts('192.0.2.7', 80)]).toEqual(['192.0.2.7:80']);
  });

  it('on a wildcard bind, accepts the machine by its addresses and name, nothing else', () => {
    const hosts = allowedHosts('0.0.0.0', 80);
    expect(hosts.has(`${os.hostname()}:80`)).toBe(true);
    expect(hosts.has('127.0.0.1:80')).toBe(true);
    expect(hosts.has('evil.example:80')).toBe(false);
    expect(hosts.has('0.0.0.0:81')).toBe(false);
  });

  it('compares tokens whatever their length', () => {
    expect(tokenMatches('secret-token-123456', 'secret-token-123456')).toBe(true);
    expect(tokenMatches('secret-token-123456', 'secret')).toBe(false);
    expect(tokenMatches('secret-token-123456', '')).toBe(false);
    expect(tokenMatches('secret-token-123456', null)).toBe(false);
  });
});
