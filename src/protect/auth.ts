// Access: API keys with scopes, sent as `Authorization: Bearer <key>` (or as a basic-auth password). The keys themselves are parsed
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
const BASIC = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i;

/**
 * The key a request presents: `Authorization: Bearer <key>`, or basic auth with the key as the
 * password and any user name (what Grafana's data sources and logcli send with a password set).
 */
function presented(header: string): string | undefined {
  const bearer = BEARER.exec(header);
  if (bearer) return bearer[1];
  const basic = BASIC.exec(header);
  if (!basic) return undefined;
  const pair = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = pair.indexOf(':');
  return colon >= 0 && colon < pair.length - 1 ? pair.slice(colon + 1) : undefined;
}

/**
 * Requires a key with `scope` (admin keys hold every scope). With no keys configured the service is in
 * open development mode (config.ts then refuses any address but loopback) and this lets everything through.
 */
export function requireScope(keys: readonly ApiKey[], scope: Scope): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0) return next();
    const secret = presented(c.req.header('authorization') ?? '');
    const key = secret ? findKey(keys, secret) : undefined;
    if (!key) {
      c.header('WWW-Authenticate', 'Bearer realm="aurore-events"');
      throw new ApiError(
        'unauthorized',
        secret ? 'The API key is not valid' : 'Send an API key: Authorization: Bearer <key> (or basic auth with the key as the password)',
      );
    }
    if (!key.scopes.includes(scope) && !key.scopes.includes('admin')) {
      throw new ApiError('forbidden', `The API key '${key.name}' lacks the '${scope}' scope`);
    }
    c.set('keyName', key.name);
    c.set('services', key.services);
    return next();
  };
}
