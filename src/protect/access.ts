// Who may call what, in one table: each route's scope (null: open, for probes and documentation) and
// its rate-limit budget. app.ts registers the guards from it and the OpenAPI document declares each
// operation's security from it, so a new route without an entry here shows up in both (and in the
// access test that walks the OpenAPI document).
import type { Hono, MiddlewareHandler } from 'hono';
import type { Config, Scope } from '../config';
import { requireScope } from './auth';
import type { Budget, Limits } from './limits';

export interface RouteAccess {
  method: 'GET' | 'POST';
  paths: readonly string[];
  scope: Scope | null;
  budget: Budget | null;
}

/** Every route of the query API (read/loki/routes.ts): guarded below with the `query` scope; app.ts bounds them by REQUEST_TIMEOUT_MS. */
export const LOKI_GET_PATHS = [
  '/loki/api/v1/query_range',
  '/loki/api/v1/query',
  '/loki/api/v1/labels',
  '/loki/api/v1/label/:name/values',
  '/loki/api/v1/series',
  '/loki/api/v1/index/stats',
  '/loki/api/v1/index/volume',
  '/loki/api/v1/index/volume_range',
  '/loki/api/v1/detected_labels',
  '/loki/api/v1/detected_fields',
  '/loki/api/v1/detected_field/:name/values',
  '/loki/api/v1/patterns',
  '/loki/api/v1/status/buildinfo',
  '/loki/api/v1/format_query',
] as const;
export const LOKI_POST_PATHS = ['/loki/api/v1/query_range', '/loki/api/v1/query', '/loki/api/v1/series'] as const;

export const ACCESS: readonly RouteAccess[] = [
  { method: 'POST', paths: ['/events', '/events/batch', '/v1/logs', '/loki/api/v1/push'], scope: 'ingest', budget: 'ingest' },
  { method: 'GET', paths: ['/events', '/events/:id', '/metrics/events', '/health/business'], scope: 'query', budget: 'query' },
  // The Loki query API (Grafana's Loki data source, logcli): what GET /events may read, in LogQL.
  { method: 'GET', paths: LOKI_GET_PATHS, scope: 'query', budget: 'query' },
  { method: 'POST', paths: LOKI_POST_PATHS, scope: 'query', budget: 'query' },
  { method: 'GET', paths: ['/health/buffer', '/health/database', '/health/detailed', '/metrics'], scope: 'admin', budget: 'health' },
  { method: 'GET', paths: ['/health', '/health/live', '/health/ready'], scope: null, budget: 'health' },
  // The pages hold no data: they ask for a key and call the routes above with it.
  { method: 'GET', paths: ['/openapi.json', '/docs', '/docs/:file', '/', '/console/:file'], scope: null, budget: null },
];

/** The scope a route needs (OpenAPI path syntax or Hono's), or undefined for a route not in the table. */
export function scopeOf(method: string, path: string): Scope | null | undefined {
  const hono = path.replace(/\{(\w+)\}/g, ':$1');
  return ACCESS.find((a) => a.method === method.toUpperCase() && a.paths.includes(hono))?.scope;
}

/**
 * Registers each route's guard: its scope check, then its budget (after auth: budgets are per key),
 * as one middleware, and only when it does something: every middleware is a hop on the hot path.
 * Patterns must not overlap ('/events/*' also matches '/events'): a middleware must run once.
 */
export function guardRoutes(app: Hono, config: Config, limits: Limits) {
  const keys = config.apiKeys;
  for (const a of ACCESS) {
    const auth = a.scope && keys.length ? requireScope(keys, a.scope) : null;
    const budget = a.budget ? limits.middleware(a.budget) : null;
    // One hop for both: each middleware Hono composes costs a request about a microsecond.
    const guard: MiddlewareHandler | null = auth && budget ? (c, next) => auth(c, () => budget(c, next) as Promise<void>) : (auth ?? budget);
    if (guard) app.on(a.method, [...a.paths], guard);
  }
}
