// Configuration: parsed once at boot from the environment into a frozen, typed object.
// Every setting has a default (the MVP refused to start without 40 variables); a bad value fails
// fast with an error naming the variable. Tests pass a plain object instead of touching process.env.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

// API keys: "name:scopes:secret" entries (docs/access.md). Only the SHA-256 digest of a secret is kept.
export const SCOPES = ['ingest', 'query', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly digest: Buffer; // sha256 of the secret
  /** The services it may read and write (its `services=` field); null: every service. Admin keys: null. */
  readonly services: ServiceScope | null;
}

/**
 * A key's services: names, or patterns where `*` stands for any characters (`billing-*`). `test`
 * decides for one name (ingest, a request's service filter); `like` is the same as LIKE patterns
 * (`_` escaped, `*` as `%`) for the reads that filter in SQL (`service LIKE ANY($n::text[])`).
 */
export interface ServiceScope {
  readonly patterns: readonly string[];
  readonly like: readonly string[];
  test(service: string): boolean;
}

const SCOPE_PATTERN = /^[A-Za-z0-9._:*-]{1,100}$/;

export function serviceScope(patterns: readonly string[]): ServiceScope {
  const regex = new RegExp(`^(?:${patterns.map((p) => p.replace(/[.]/g, '\\.').replaceAll('*', '.*')).join('|')})$`);
  return Object.freeze({
    patterns: Object.freeze([...patterns]),
    like: Object.freeze(patterns.map((p) => p.replaceAll('_', '\\_').replaceAll('*', '%'))),
    test: (service: string) => regex.test(service),
  });
}

/** The `services=a|b-*` field of a key entry, or why it is wrong. */
function parseServices(field: string, where: string): ServiceScope {
  const patterns = field.split('|').map((p) => p.trim());
  const bad = patterns.find((p) => !SCOPE_PATTERN.test(p));
  if (bad !== undefined)
    throw new Error(`${where}: services= takes service names or patterns with * (letters, digits, . _ : - *), separated by |; '${bad}' is not one`);
  return serviceScope(patterns);
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Parses key entries; throws with the entry's position (never its secret) when one is malformed. */
export function parseApiKeys(text: string, source: string): ApiKey[] {
  const entries = text
    .split(/[,\n]/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  return entries.map((entry, i) => {
    // name:scopes:secret[:services=a|b-*]; service names may hold ':', so the field is found by its name.
    const at = entry.indexOf(':services=');
    const [name, scopeList, ...rest] = (at < 0 ? entry : entry.slice(0, at)).split(':');
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
    const services = at < 0 || scopes.includes('admin') ? null : parseServices(entry.slice(at + ':services='.length), where);
    return Object.freeze({ name, scopes: Object.freeze(scopes as Scope[]), digest, services });
  });
}

const int = (def: number, min = 1, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

/** Each key is the environment variable; the comment is what docs/configuration.md documents. */
export const envSchema = z.object({
  PORT: int(3000, 0, 65535), // 0 = any free port
  HTTP_PROCESSES: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(256)]).default(1), // service processes sharing PORT (server engine); auto: one per CPU
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z.string().url().optional(), // unset = embedded engine
  DATABASE_READ_URL: z.string().url().optional(), // a streaming replica for the read routes (server engine)
  READ_MAX_LAG_MS: int(5_000, 0, 3_600_000), // a replica further behind: reads go to the primary
  DATA_DIR: z.string().min(1).default('./data'),
  DB_POOL_MAX: int(10, 1, 1000), // server engine: query connections of the main thread
  // Embedded engine: a commit is on the disk before its 201 (src/store/fsync.ts). off: faster for
  // throwaway data, but an OS crash or power loss can lose the last seconds' commits or the database.
  EMBEDDED_FSYNC: z.enum(['on', 'off']).default('on'),

  QUEUE_MAX_EVENTS: int(100_000, 1),
  QUEUE_MAX_BYTES: int(64 * 1024 * 1024, 1024 * 1024),
  BATCH_SIZE: int(5_000, 1, 10_000), // rows per statement; 5k-row batches reached the insert ceiling when measured (BENCHMARKS.md)
  BATCH_LINGER_MS: int(20, 0, 60_000),
  // Server engine. auto: one per CPU, 2 to 8. On 2 cores (bench:write, 10 s a lever) COPY wrote
  // 49k rows/s with one writer, 82k with two, 75k with four; end to end (bench) batches went from
  // 38k to 51k events/s with two. Past 8 the database's WAL insertion and the btrees' right-hand
  // pages are shared by all of them (an estimate, not measured here): `bun run bench:write`
  // measures 1, 2 and 4 writers on your machine.
  WRITERS: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(64)]).default('auto'),
  RETRY_AFTER_SECONDS: int(5, 1, 3600), // Retry-After when no better estimate exists
  WAIT_TIMEOUT_MS: int(30_000, 100, 250_000), // ?wait=true: longest wait for the commit before answering 202 (Bun keeps a quiet connection at most 255 s)
  CIRCUIT_BREAKER_THRESHOLD: int(5, 1), // consecutive failed writes that open the breaker
  CIRCUIT_BREAKER_COOLDOWN_MS: int(5_000, 10),
  WRITE_RETRY_MAX_MS: int(10_000, 10), // cap of the exponential backoff between batch retries
  SHUTDOWN_TIMEOUT_MS: int(30_000, 100),

  SERVICE_NAME_MAX_LENGTH: int(100, 1, 1000),
  MESSAGE_MAX_LENGTH: int(2_000, 1, 1_000_000),
  METADATA_MAX_BYTES: int(16 * 1024, 2, 1024 * 1024),
  BODY_MAX_BYTES: int(256 * 1024, 1024), // POST /events, decompressed
  BATCH_MAX_EVENTS: int(10_000, 1, 1_000_000), // POST /events/batch
  BATCH_MAX_BYTES: int(10 * 1024 * 1024, 1024), // POST /events/batch, decompressed
  // Request bodies held in memory at once, all receivers together (each is capped by the limits
  // above, their number is not): past it, 503 overloaded with Retry-After. 128 MiB: a dozen full
  // batches, or half a million single events, at once.
  BODY_BUDGET_BYTES: int(128 * 1024 * 1024, 1024),
  // Large query answers (GET /events pages, GET /metrics/events series over 64 KB) being sent at once: a client that does not
  // read its answer holds it until Bun drops the connection. Past it, 503 overloaded.
  READ_BUDGET_BYTES: int(128 * 1024 * 1024, 1024),

  // Points (services x buckets) in one GET /metrics/events answer: ~50 bytes of JSON each.
  SERIES_MAX_POINTS: int(200_000, 1, 10_000_000),
  // Events one LogQL metric query may read from the raw rows (the Loki query API; volumes by service
  // come from the aggregates instead): past it, 400 naming it. About a second of reading here.
  LOKI_QUERY_MAX_EVENTS: int(1_000_000, 1, 100_000_000),
  DEFAULT_QUERY_LIMIT: int(100, 1, 10_000),
  MAX_QUERY_LIMIT: int(1_000, 1, 10_000),

  API_KEYS: z.string().optional(), // name:scopes:secret,... (docs/access.md)
  API_KEYS_FILE: z.string().optional(), // the same, one entry a line
  ALLOW_UNAUTHENTICATED: z.enum(['true', 'false']).default('false'), // serve a non-loopback HOST without keys
  // A trigram index makes message search fast but made inserts 3.7x slower when measured (docs/api.md):
  // opt-in for deployments that search more than they ingest.
  SEARCH_INDEX: z.enum(['none', 'trgm']).default('none'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'), // auto: pretty on a terminal outside production
  LOG_REQUESTS: z.enum(['all', 'errors', 'none']).default('all'), // one line per request, or only 4xx/5xx
  // Rate limits per API key (per client address when anonymous), requests per window; 0 = off.
  RATE_LIMIT_WINDOW_MS: int(60_000, 1000),
  RATE_LIMIT_INGEST: int(600_000, 0), // 10,000/s sustained per client: generous, stops a runaway loop
  RATE_LIMIT_QUERY: int(12_000, 0),
  RATE_LIMIT_HEALTH: int(1_200, 0),
  REDIS_URL: z.string().url().optional(), // share rate-limit budgets across instances
  CONSOLE: z.enum(['true', 'false']).default('true'), // the web console at / (false: / is a 404)
  CORS_ORIGINS: z.string().optional(), // comma-separated origins allowed to call the API from a browser; unset: none
  REQUEST_TIMEOUT_MS: int(60_000, 100, 250_000), // longest a request may take before 503 (above WAIT_TIMEOUT_MS)

  // Retention and aggregates (docs/aggregates.md). Ages in days; 0 = keep forever.
  RETENTION_DAYS: int(30, 1, 36_500), // raw events; replaces the MVP's nightly cleanup job
  AGGREGATE_MINUTE_RETENTION_DAYS: int(90, 0, 36_500),
  AGGREGATE_HOUR_RETENTION_DAYS: int(730, 0, 36_500),
  AGGREGATE_DAY_RETENTION_DAYS: int(730, 0, 36_500),
  COMPRESS_AFTER_DAYS: int(7, 0, 36_500), // columnstore for raw chunks this old (Community edition); 0 = off
  AGGREGATE_REFRESH_SECONDS: int(60, 1, 3600), // how often the service brings aggregates up to date
});

export type Env = z.input<typeof envSchema>;

/** The parsed configuration: its type is what loadConfig builds from the schema (settings below). */
export type Config = ReturnType<typeof settings>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function isLoopback(host: string) {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (v && typeof v === 'object' && !Buffer.isBuffer(v)) deepFreeze(v);
  return Object.freeze(o);
}

/** Parses settings from `env` (default: process.env). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.keys(envSchema.shape).flatMap((k) => (env[k] === undefined || env[k] === '' ? [] : [[k, env[k]]])));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0]);
      // Never echo URLs or keys: they carry passwords.
      const shown = ['DATABASE_URL', 'DATABASE_READ_URL', 'REDIS_URL', 'API_KEYS'].includes(name) ? '' : ` (got ${JSON.stringify(present[name])})`;
      return `  ${name}: ${i.message}${shown}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}\nFix the variable(s) above or unset them to use the defaults (docs/configuration.md).`);
  }
  const e = parsed.data;
  const apiKeys: ApiKey[] = [];
  try {
    if (e.API_KEYS) apiKeys.push(...parseApiKeys(e.API_KEYS, 'API_KEYS'));
    if (e.API_KEYS_FILE) apiKeys.push(...parseApiKeys(readFileSync(e.API_KEYS_FILE, 'utf8'), `API_KEYS_FILE ${e.API_KEYS_FILE}`));
  } catch (err) {
    const msg = (err as NodeJS.ErrnoException).code ? `API_KEYS_FILE: cannot read ${e.API_KEYS_FILE} (${(err as Error).message})` : (err as Error).message;
    throw new ConfigError(`Invalid configuration:\n  ${msg}`);
  }
  if (new Set(apiKeys.map((k) => k.name)).size !== apiKeys.length) throw new ConfigError('Invalid configuration:\n  API_KEYS: two keys share a name');
  if (!apiKeys.length && !isLoopback(e.HOST) && e.ALLOW_UNAUTHENTICATED !== 'true') {
    throw new ConfigError(
      `Refusing to serve HOST=${e.HOST} without API keys: anyone who can reach it could read and write events.\n` +
        '  Set API_KEYS (docs/access.md), or HOST=127.0.0.1, or ALLOW_UNAUTHENTICATED=true if something in front of the service authenticates.',
    );
  }
  if (!e.DATABASE_URL && (e.HTTP_PROCESSES === 'auto' ? availableParallelism() : e.HTTP_PROCESSES) > 1) {
    throw new ConfigError(
      `Invalid configuration:\n  HTTP_PROCESSES=${e.HTTP_PROCESSES} needs the server engine (DATABASE_URL): the embedded database is one session in one process.\n` +
        '  Unset HTTP_PROCESSES (or set it to 1), or point DATABASE_URL at a TimescaleDB server.',
    );
  }
  if (e.DATABASE_READ_URL && !e.DATABASE_URL) {
    throw new ConfigError(
      'Invalid configuration:\n  DATABASE_READ_URL needs DATABASE_URL: a read replica is for the server engine (the embedded engine has no replicas)',
    );
  }
  if (e.BODY_BUDGET_BYTES < Math.max(e.BODY_MAX_BYTES, e.BATCH_MAX_BYTES)) {
    throw new ConfigError(
      `Invalid configuration:\n  BODY_BUDGET_BYTES (${e.BODY_BUDGET_BYTES}) must be at least BODY_MAX_BYTES and BATCH_MAX_BYTES (${Math.max(e.BODY_MAX_BYTES, e.BATCH_MAX_BYTES)}): a body at the limit could never be read`,
    );
  }
  if (e.DEFAULT_QUERY_LIMIT > e.MAX_QUERY_LIMIT) {
    throw new ConfigError(`Invalid configuration:\n  DEFAULT_QUERY_LIMIT (${e.DEFAULT_QUERY_LIMIT}) must not exceed MAX_QUERY_LIMIT (${e.MAX_QUERY_LIMIT})`);
  }
  // Each aggregate is recounted from the next finer level for every bucket that raw events still
  // cover, so it must outlive the raw events; and the refresh windows reach back 6 days.
  for (const name of ['AGGREGATE_MINUTE_RETENTION_DAYS', 'AGGREGATE_HOUR_RETENTION_DAYS', 'AGGREGATE_DAY_RETENTION_DAYS'] as const) {
    const days = e[name];
    const min = Math.max(7, e.RETENTION_DAYS + 1);
    if (days !== 0 && days < min) {
      throw new ConfigError(
        `Invalid configuration:\n  ${name} (${days}) must be 0 (keep forever) or at least ${min} (7, and more than RETENTION_DAYS=${e.RETENTION_DAYS}): aggregates must outlive the raw events they are counted from`,
      );
    }
  }
  return deepFreeze(settings(e, env, apiKeys));
}

/** The settings as the stages use them, from the parsed environment (read-only, literal types kept). */
function settings(e: z.output<typeof envSchema>, env: Record<string, string | undefined>, apiKeys: readonly ApiKey[]) {
  return {
    port: e.PORT,
    /** Service processes sharing the port (SO_REUSEPORT): 1, or more on the server engine. */
    httpProcesses: e.HTTP_PROCESSES === 'auto' ? availableParallelism() : e.HTTP_PROCESSES,
    host: e.HOST,
    engine: (e.DATABASE_URL ? 'server' : 'embedded') as 'embedded' | 'server',
    databaseUrl: e.DATABASE_URL,
    /** A streaming replica for the read routes, and how far behind it may be. */
    reads: { url: e.DATABASE_READ_URL, maxLagMs: e.READ_MAX_LAG_MS },
    dataDir: e.DATA_DIR,
    dbPoolMax: e.DB_POOL_MAX,
    queue: { maxEvents: e.QUEUE_MAX_EVENTS, maxBytes: e.QUEUE_MAX_BYTES },
    batch: {
      size: Math.min(e.BATCH_SIZE, e.QUEUE_MAX_EVENTS),
      lingerMs: e.BATCH_LINGER_MS,
      writers: e.WRITERS === 'auto' ? Math.max(2, Math.min(8, availableParallelism())) : e.WRITERS,
      retryMaxMs: e.WRITE_RETRY_MAX_MS,
    },
    breaker: { threshold: e.CIRCUIT_BREAKER_THRESHOLD, cooldownMs: e.CIRCUIT_BREAKER_COOLDOWN_MS },
    retryAfterSeconds: e.RETRY_AFTER_SECONDS,
    waitTimeoutMs: e.WAIT_TIMEOUT_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    limits: {
      serviceMaxLength: e.SERVICE_NAME_MAX_LENGTH,
      messageMaxLength: e.MESSAGE_MAX_LENGTH,
      metadataMaxBytes: e.METADATA_MAX_BYTES,
      bodyMaxBytes: e.BODY_MAX_BYTES,
      batchMaxEvents: e.BATCH_MAX_EVENTS,
      batchMaxBytes: e.BATCH_MAX_BYTES,
      bodyBudgetBytes: e.BODY_BUDGET_BYTES,
      readBudgetBytes: e.READ_BUDGET_BYTES,
      defaultQueryLimit: e.DEFAULT_QUERY_LIMIT,
      maxQueryLimit: e.MAX_QUERY_LIMIT,
      seriesMaxPoints: e.SERIES_MAX_POINTS,
      lokiQueryMaxEvents: e.LOKI_QUERY_MAX_EVENTS,
    },
    searchIndex: e.SEARCH_INDEX,
    embeddedFsync: e.EMBEDDED_FSYNC === 'on',
    apiKeys,
    logLevel: e.LOG_LEVEL,
    logFormat: (e.LOG_FORMAT === 'auto' ? (process.stdout.isTTY && env.NODE_ENV !== 'production' ? 'pretty' : 'json') : e.LOG_FORMAT) as 'json' | 'pretty',
    logRequests: e.LOG_REQUESTS,
    rateLimit: { windowMs: e.RATE_LIMIT_WINDOW_MS, ingest: e.RATE_LIMIT_INGEST, query: e.RATE_LIMIT_QUERY, health: e.RATE_LIMIT_HEALTH, redisUrl: e.REDIS_URL },
    corsOrigins: (e.CORS_ORIGINS
      ? e.CORS_ORIGINS.split(',')
          .map((o) => o.trim())
          .filter(Boolean)
      : []) as readonly string[],
    console: e.CONSOLE === 'true',
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    /** Days kept; 0 = forever (aggregates only). */
    retention: {
      rawDays: e.RETENTION_DAYS,
      minuteDays: e.AGGREGATE_MINUTE_RETENTION_DAYS,
      hourDays: e.AGGREGATE_HOUR_RETENTION_DAYS,
      dayDays: e.AGGREGATE_DAY_RETENTION_DAYS,
    },
    compressAfterDays: e.COMPRESS_AFTER_DAYS,
    aggregateRefreshMs: e.AGGREGATE_REFRESH_SECONDS * 1000,
  } as const;
}
