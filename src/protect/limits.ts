// Rate limits (hono-rate-limiter): separate budgets for ingest, query and health, per API key (per
// client address when anonymous), with RateLimit/RateLimit-Policy headers and 429 + Retry-After.
// The headers are written by whoever builds the answer (observe/requests.ts for every route, the
// POST /events hot path into its own Response) from the count the library leaves on the context: its
// own (draft-7) went into Hono's prepared headers, which a Response built directly never carries.
// Memory store by default; with REDIS_URL a shared one (shared-store.ts), so several instances share
// one budget. (@hono-rate-limiter/redis 0.1.4 wants hono-rate-limiter ^0.2: npm refuses it beside 0.5.)
import type { Context, MiddlewareHandler } from 'hono';
import { getConnInfo } from 'hono/bun';
import { MemoryStore, rateLimiter, type Store } from 'hono-rate-limiter';
import { isLoopback, type Config } from '../config';
import { ApiError } from '../errors';
import type { Logger } from '../log';
import { sharedStores } from './shared-store';

export type Budget = 'ingest' | 'query' | 'health';

/** What the library counted for this request (set on the context by its middleware). */
interface RateLimitInfo {
  limit: number;
  remaining: number;
  resetTime?: Date;
}

const rateLimitInfo = (c: Context) => c.get('rateLimit') as RateLimitInfo | undefined;

/**
 * Writes the budget this request counted against, if any: `RateLimit-Policy` (the budget and its
 * window) and `RateLimit` (the budget, what is left, seconds to the reset), as in
 * draft-ietf-httpapi-ratelimit-headers-07.
 */
export function writeRateLimitHeaders(headers: Headers, c: Context, windowMs: number) {
  const info = rateLimitInfo(c);
  if (!info) return;
  const reset = info.resetTime ? Math.max(0, Math.ceil((info.resetTime.getTime() - Date.now()) / 1000)) : 0;
  headers.set('ratelimit-policy', `${info.limit};w=${Math.ceil(windowMs / 1000)}`);
  headers.set('ratelimit', `limit=${info.limit}, remaining=${info.remaining}, reset=${reset}`);
}

/**
 * The client a budget belongs to: the API key's name, else the peer address. A service listening on
 * loopback only has one possible peer, this machine: it is not asked for (the kernel call costs
 * 1.5 us, on every anonymous request of the hot path).
 */
function clientKeyFor(config: Config): (c: Context) => string {
  const localOnly = isLoopback(config.host);
  return (c) => {
    const key = c.get('keyName') as string | undefined;
    if (key) return `key:${key}`;
    if (localOnly) return 'ip:local';
    try {
      return `ip:${getConnInfo(c).remote.address ?? 'unknown'}`;
    } catch {
      return 'ip:local'; // in-process requests (tests) have no socket
    }
  };
}

export interface Limits {
  /** The budget's middleware, or null when the budget is off (RATE_LIMIT_*=0). */
  middleware(budget: Budget): MiddlewareHandler | null;
  /** Requests refused by a rate limit so far. */
  readonly refused: number;
  /** With REDIS_URL: whether the shared store answers (while it does not, requests go uncounted). */
  readonly storeUp: boolean | null;
  close(): void;
}

/**
 * `processes`: how many processes share the port (HTTP_PROCESSES). Without Redis each counts in its
 * own memory, so each gets its share of every budget; with REDIS_URL they share one count.
 */
export function createLimits(config: Config, log: Logger, processes = 1): Limits {
  let refused = 0;
  const { windowMs } = config.rateLimit;
  const shared = config.rateLimit.redisUrl ? sharedStores(config.rateLimit.redisUrl, log) : null;
  const share = shared ? 1 : processes;
  const clientKey = clientKeyFor(config);
  const store = (budget: Budget): Store => shared?.store(budget, windowMs) ?? new MemoryStore();
  const make = (budget: Budget): MiddlewareHandler | null => {
    if (config.rateLimit[budget] === 0) return null; // 0 switches a budget off
    const limit = Math.ceil(config.rateLimit[budget] / share);
    return rateLimiter({
      windowMs,
      limit,
      standardHeaders: false, // written with the answer (see the top of this file)
      keyGenerator: clientKey,
      store: store(budget),
      handler: (c) => {
        refused++;
        const info = rateLimitInfo(c);
        const retryAfter = Math.max(1, Math.ceil(((info?.resetTime?.getTime() ?? Date.now() + windowMs) - Date.now()) / 1000));
        throw new ApiError('rate_limited', `Rate limit of ${limit} ${budget} requests per ${windowMs / 1000} s exceeded`, { retryAfter });
      },
    });
  };
  const middlewares = { ingest: make('ingest'), query: make('query'), health: make('health') };
  return {
    middleware: (budget) => middlewares[budget],
    get refused() {
      return refused;
    },
    get storeUp() {
      return shared ? shared.up : null;
    },
    close: () => shared?.close(),
  };
}
