// Fan-out of API events to every connected UI (Electron windows, SSE clients, the tray).
import type { ApiEvent } from '../../shared/api.js';

export class EventBus {
  private readonly listeners = new Set<(event: ApiEvent) => void>();

  emit(event: ApiEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        // One broken listener (a closed socket) must not starve the others.
        console.error('tidemark: event listener failed:', err);
      }
    }
  }

  subscribe(listener: (event: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
