// The rate limits' shared store (REDIS_URL): hono-rate-limiter's own RedisStore over Bun's Redis
// client, so several instances count one budget. Rate limits protect the service; they must not stop
// it: while Redis does not answer (down, or slower than STORE_TIMEOUT_MS), every request counts as
// within its budget, and the service says so once in its log and in a gauge. Meanwhile one request a
// second asks Redis (a hung one would otherwise cost every request the timeout). Measured before: with
// Redis gone, each request waited 10-20 s for Bun's offline queue and ended 500, /health included.
import { RedisClient } from 'bun';
import { RedisStore, type Store } from 'hono-rate-limiter';
import type { Logger } from '../log';

const STORE_TIMEOUT_MS = 500; // Redis answers in well under a millisecond on a healthy network
const RECONNECT_EVERY_MS = 2_000;
const PROBE_EVERY_MS = 1_000;

/** The four commands RedisStore uses, over Bun's RedisClient. */
export function redisAdapter(client: RedisClient) {
  return {
    scriptLoad: (script: string) => client.send('SCRIPT', ['LOAD', script]) as Promise<string>,
    evalsha: <A extends unknown[], D = unknown>(sha: string, keys: string[], args: A) =>
      client.send('EVALSHA', [sha, String(keys.length), ...keys, ...args.map(String)]) as Promise<D>,
    decr: (key: string) => client.decr(key),
    del: (key: string) => client.del(key),
  };
}

function within<T>(p: T | Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${STORE_TIMEOUT_MS} ms`)), STORE_TIMEOUT_MS);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export interface SharedStores {
  /** A store for one budget, under its own key prefix. */
  store(budget: string, windowMs: number): Store;
  /** Whether Redis answered the last command. */
  readonly up: boolean;
  close(): void;
}

export function sharedStores(url: string, log: Logger): SharedStores {
  // Without the offline queue a command fails at once while the connection is down, instead of
  // waiting for it; Bun reconnects by itself, but stops after 20 tries: past that, connect() again.
  const client = new RedisClient(url, { enableOfflineQueue: false, connectionTimeout: 2_000 });
  let up = true;
  let probeAt = 0; // while down: when a request may ask Redis again
  let lastConnect = 0;
  const reconnect = () => {
    if (client.connected || Date.now() - lastConnect < RECONNECT_EVERY_MS) return;
    lastConnect = Date.now();
    client.connect().catch(() => {});
  };
  reconnect();
  const fault = (err: unknown) => {
    if (up) log.warn('rate limits: the shared store (REDIS_URL) does not answer; requests are let through uncounted until it does', { err });
    up = false;
    probeAt = Date.now() + PROBE_EVERY_MS;
    reconnect();
  };
  const answered = () => {
    if (!up) log.info('rate limits: the shared store (REDIS_URL) answers again');
    up = true;
  };
  return {
    store(budget, windowMs) {
      const inner: Store = new RedisStore({ client: redisAdapter(client) as never, prefix: `aurore:rl:${budget}:` });
      const quietly = async (p: () => unknown) => {
        try {
          await within(p());
        } catch (e) {
          fault(e);
        }
      };
      const uncounted = () => ({ totalHits: 0, resetTime: new Date(Date.now() + windowMs) });
      return {
        init: (options) => inner.init?.(options),
        async increment(key) {
          if (!up && Date.now() < probeAt) return uncounted();
          try {
            const info = await within(inner.increment(key));
            answered();
            return info;
          } catch (e) {
            fault(e);
            return uncounted();
          }
        },
        decrement: (key) => (up ? quietly(() => inner.decrement(key)) : undefined),
        resetKey: (key) => (up ? quietly(() => inner.resetKey(key)) : undefined),
      };
    },
    get up() {
      return up;
    },
    close: () => client.close(),
  };
}
