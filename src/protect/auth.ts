// Access: API keys with scopes, sent as `Authorization: Bearer <key>`. The keys themselves are parsed
// with the configuration (config.ts keeps only their SHA-256 digests); this file checks a presented
// key against every digest in constant time and enforces a route's scope. Keys never reach a log:
// only the key's name.
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { sha256, type ApiKey, type Scope } from '../config';
import { ApiError } from '../errors';

/** The key matching a presented secret, or undefined. Every stored digest is compared, in constant time. */
export function findKey(keys: readonly ApiKey[], presented: string): ApiKey | undefined {
  const digest = sha256(presented);
  let found: ApiKey | undefined;
  for (const k of keys) if (timingSafeEqual(k.digest, digest) && !found) found = k;
  return found;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * Requires a key with `scope` (admin keys hold every scope). With no keys configured the service is in
 * open development mode (config.ts then refuses any address but loopback) and this lets everything through.
 */
export function requireScope(keys: readonly ApiKey[], scope: Scope): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0) return next();
    const m = BEARER.exec(c.req.header('authorization') ?? '');
    const key = m ? findKey(keys, m[1]!) : undefined;
    if (!key) {
      c.header('WWW-Authenticate', 'Bearer realm="aurore-events"');
      throw new ApiError('unauthorized', m ? 'The API key is not valid' : 'Send an API key: Authorization: Bearer <key>');
    }
    if (!key.scopes.includes(scope) && !key.scopes.includes('admin')) {
      throw new ApiError('forbidden', `The API key '${key.name}' lacks the '${scope}' scope`);
    }
    c.set('keyName', key.name);
    c.set('services', key.services);
    return next();
  };
}
