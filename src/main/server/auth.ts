// Who may talk to the headless server: the token holder, on the host name it was bound to.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const COOKIE_NAME = 'tidemark_token';

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

export function cookieToken(req: IncomingMessage): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE_NAME) return decodeURIComponent(value.join('='));
  }
  return null;
}

/** The cookie the first page load (`?token=T`) trades the token for. */
export function sessionCookie(token: string): string {
  return `${COOKIE_NAME}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
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
  const name = host.includes(':') ? `[${host}]` : host;
  const hosts = new Set([`${name}:${port}`]);
  if (isLoopback(host)) hosts.add(`localhost:${port}`);
  return hosts;
}
