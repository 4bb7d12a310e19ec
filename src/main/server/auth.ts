// Who may talk to the headless server: the token holder, on the host name it was bound to.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import * as os from 'node:os';

/**
 * Cookies are shared by every port of a host: two servers on one machine (or a server and
 * another app on localhost) would overwrite each other's cookie without the port in its name.
 */
export function cookieName(port: number): string {
  return `tidemark_token_${port}`;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Compares in constant time (hashes first, so lengths do not leak either). */
export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (!given) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

export function bearerToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return match?.[1] ?? null;
}

export function cookieToken(req: IncomingMessage, port: number): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === cookieName(port)) return decodeURIComponent(value.join('='));
  }
  return null;
}

/** The cookie the first page load (`?token=T`) trades the token for. */
export function sessionCookie(token: string, port: number): string {
  return `${cookieName(port)}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The Host header values accepted: the bound host and port (and `localhost` for a loopback
 * bind). Anything else is refused, which defeats DNS rebinding: a page on evil.example that
 * resolves to 127.0.0.1 still sends `Host: evil.example`.
 */
export function allowedHosts(host: string, port: number): Set<string> {
  // A wildcard bind (0.0.0.0, ::) has no name of its own: the machine's addresses and host
  // name are what clients can rightly call it.
  const names = isWildcard(host) ? [...machineAddresses(), os.hostname()] : [host];
  const hosts = new Set(names.map((n) => `${n.includes(':') ? `[${n}]` : n}:${port}`));
  if (isLoopback(host) || isWildcard(host)) hosts.add(`localhost:${port}`);
  return hosts;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function machineAddresses(): string[] {
  return (
    Object.values(os.networkInterfaces())
      .flatMap((list) => list ?? [])
      .map((i) => i.address)
      // Link-local IPv6 needs a zone id in a URL; browsers send no Host for it we could match.
      .filter((a) => !a.startsWith('fe80:'))
  );
}
