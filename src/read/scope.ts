// What a read may see: the services of the request's API key (its `services=` field; admin keys and
// keys without one see every service), applied once to a query before it runs, on every read route
// (GET /events and /events/:id, /metrics/events, /health/business) and so on every client of them
// (the console, curl). A filter naming another service finds nothing, as a service without events
// would: the answer never tells a key that the service exists.
import type { Context } from 'hono';
import type { ServiceScope } from '../config';

/** The key's services, or null for every service. */
export function readScope(c: Context): ServiceScope | null {
  return c.get('services') ?? null;
}

/** The read's own service filter, plus the scope's: `scopeLike` (LIKE patterns) when it has wildcards. */
export type Scoped<T> = T & { scopeLike?: readonly string[] };

/**
 * A query narrowed to the scope: its service filter keeps only the services the key may read (none
 * left: it matches nothing); without a filter, the key's names, or its patterns as LIKE patterns.
 */
export function narrow<T extends { service?: string[] | undefined }>(q: T, scope: ServiceScope | null): Scoped<T> {
  if (!scope) return q;
  if (q.service) {
    const kept = q.service.filter((s) => scope.test(s));
    return kept.length ? { ...q, service: kept } : { ...q, service: undefined, scopeLike: [] };
  }
  if (scope.patterns.every((p) => !p.includes('*'))) return { ...q, service: [...scope.patterns] };
  return { ...q, scopeLike: scope.like };
}

/** The SQL condition of a scope's LIKE patterns (`$n` is the patterns' parameter). */
export const likeAny = (param: string) => `service LIKE ANY(${param}::text[])`;
