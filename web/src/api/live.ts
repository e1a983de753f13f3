// The live national average over WebSocket (graphql-ws). The server sends the current
// snapshot at once and then every newer one; this keeps the subscription alive across server
// restarts and network drops, and reports the connection state for the page to show.

import { type Client, createClient } from 'graphql-ws';
import { type AggregateSnapshot, AGGREGATES_UPDATED } from './operations';
import type { LiveSubscription } from './generated/operations';
import { ENDPOINT } from './graphql';

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting';

export interface LiveHandlers {
  snapshot(snapshot: AggregateSnapshot): void;
  state?(state: ConnectionState): void;
}

const MAX_RETRY_DELAY_MS = 5_000;

/** Retry delay after `attempt` failures: 0.5 s doubling up to 5 s, with jitter against herds. */
export function retryDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** Math.max(0, attempt));
  return Math.round(base * (0.75 + random() * 0.5));
}

function socketUrl(): string {
  const url = new URL(ENDPOINT, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** Subscribes to `aggregatesUpdated` until the returned function is called. */
export function watchAggregates(handlers: LiveHandlers): () => void {
  let stopped = false;
  let everConnected = false;
  let newest = -1;
  let resubscribeTimer: ReturnType<typeof setTimeout> | undefined;
  let unsubscribe: (() => void) | undefined;
  let failures = 0;

  const report = (state: ConnectionState) => {
    if (!stopped) handlers.state?.(state);
  };

  const client: Client = createClient({
    url: socketUrl(),
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      await new Promise((resolve) => setTimeout(resolve, retryDelay(retries)));
    },
    keepAlive: 15_000,
    on: {
      connecting: () => report(everConnected ? 'reconnecting' : 'connecting'),
      connected: () => {
        everConnected = true;
        failures = 0;
        // A new connection starts with that server's current snapshot: take it as it is,
        // even if the database behind it was reset to a lower version.
        newest = -1;
        report('connected');
      },
      closed: () => report(everConnected ? 'reconnecting' : 'connecting'),
    },
  });

  // The client retries the connection itself; this covers a subscription that ends anyway
  // (an error result, or the server completing it), so the page never goes quiet for good.
  const subscribe = () => {
    if (stopped) return;
    unsubscribe = client.subscribe<LiveSubscription>(
      { query: AGGREGATES_UPDATED },
      {
        next: ({ data }) => {
          const snapshot = data?.aggregatesUpdated;
          // Versions only grow on one connection; skip anything older than what is shown.
          if (snapshot && snapshot.version >= newest) {
            newest = snapshot.version;
            handlers.snapshot(snapshot);
          }
        },
        error: () => resubscribeLater(),
        complete: () => resubscribeLater(),
      },
    );
  };
  const resubscribeLater = () => {
    if (stopped) return;
    report(everConnected ? 'reconnecting' : 'connecting');
    clearTimeout(resubscribeTimer);
    resubscribeTimer = setTimeout(subscribe, retryDelay(failures++));
  };

  subscribe();
  return () => {
    stopped = true;
    clearTimeout(resubscribeTimer);
    unsubscribe?.();
    void client.dispose();
  };
}
