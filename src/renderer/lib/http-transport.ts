// The API over HTTP for `tidemark serve`. The session cookie (HttpOnly, set by the first page
// load) authenticates every request; the page never sees the token.
import type { ApiEvent, ApiTransport } from '../../shared/api';
import type { Result } from '../../shared/errors';

export function httpTransport(): ApiTransport {
  return {
    async call(method, params) {
      let res: globalThis.Response;
      try {
        res = await fetch(`/api/${method}`, {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(params),
        });
      } catch {
        return failure('The Tidemark server cannot be reached. Is `tidemark serve` running?');
      }
      if (res.status === 401)
        return failure('Not signed in: open the address `tidemark serve` printed.');
      if (!res.ok) return failure(`The server answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as Result<never>;
    },
    subscribe(listener, onLink) {
      // EventSource reconnects by itself after a dropped connection, but gives up for good on
      // an HTTP error (a 401 once the server's token changed): readyState then says CLOSED.
      const source = new EventSource('/api/events');
      source.onmessage = (message) => listener(JSON.parse(message.data as string) as ApiEvent);
      source.onopen = () => onLink?.('live');
      source.onerror = () =>
        onLink?.(source.readyState === EventSource.CLOSED ? 'lost' : 'reconnecting');
      return () => source.close();
    },
  };
}

function failure(message: string): Result<never> {
  return { ok: false, error: { code: 'internal', message, retryable: true } };
}
