// Access: API keys with scopes, sent as `Authorization: Bearer <key>`.
// Keys are configured as API_KEYS="name:scopes:secret,..." (scopes joined by +: ingest, query, admin)
// or from API_KEYS_FILE, one entry a line. The secret may be given as sha256:<hex> so that the
// plaintext never sits in configuration. Only SHA-256 digests are kept in memory, and a presented
// key is compared against every digest in constant time. Keys never reach a log: only the key's name.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { ApiError } from './errors';

export const SCOPES = ['ingest', 'query', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly digest: Buffer; // sha256 of the secret
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Parses key entries; throws with the entry's position (never its secret) when one is malformed. */
export function parseApiKeys(text: string, source: string): ApiKey[] {
  const entries = text
    .split(/[,\n]/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  return entries.map((entry, i) => {
    const [name, scopeList, ...rest] = entry.split(':');
    const secret = rest.join(':');
    const where = `${source} entry ${i + 1}${name ? ` (${name})` : ''}`;
    if (!name || !/^[\w.-]{1,64}$/.test(name)) throw new Error(`${where}: name must be 1-64 letters, digits, _ . -`);
    const scopes = (scopeList ?? '').split('+').filter(Boolean);
    if (!scopes.length || scopes.some((s) => !(SCOPES as readonly string[]).includes(s))) {
      throw new Error(`${where}: scopes must be ingest, query and/or admin joined by + (e.g. ingest+query)`);
    }
    let digest: Buffer;
    if (secret.startsWith('sha256:')) {
      const hex = secret.slice(7);
      if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${where}: sha256: must be followed by 64 hex digits`);
      digest = Buffer.from(hex, 'hex');
    } else {
      if (secret.length < 16) throw new Error(`${where}: the key must be at least 16 characters (generate one: openssl rand -hex 24)`);
      digest = sha256(secret);
    }
    return Object.freeze({ name, scopes: Object.freeze(scopes as Scope[]), digest });
  });
}

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
 * open development mode (main.ts then binds to loopback only) and this lets everything through.
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
    c.set('keyName' as never, key.name as never);
    return next();
  };
}
