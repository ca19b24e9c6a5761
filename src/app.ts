// The receive stage: the Hono app as a value (no port, no top-level await). main.ts serves it;
// tests call app.request() on it.
import { Hono, type MiddlewareHandler } from 'hono';
import type { Config } from './config';
import type { Engine, DatabaseInfo } from './engine';
import { ApiError, errorHandler, respondError } from './errors';
import { ingestRoutes } from './ingest';
import { requestContext } from './observe';
import type { Metrics } from './metrics';
import type { Limits } from './limits';
import { DOCS_HTML, openApiDocument } from './openapi';
import { cors } from 'hono/cors';
import { timeout } from 'hono/timeout';
import { HTTPException } from 'hono/http-exception';
import { requireScope, type Scope } from './auth';
import type { Logger } from './log';
import type { EventQueue } from './queue';
import type { Batcher } from './batcher';
import { getEvent, listEvents } from './query';
import { businessMetrics, eventSeries } from './aggregate';
import type { Jobs } from './jobs';
import { eventIdSchema, listQueryInput, listQuerySchema, seriesQuerySchema, zodErrors } from './validate';

export interface ServiceState {
  ready: boolean; // database reachable and migrated
  draining: boolean; // shutting down: no new events
  /** compression: the columnstore (Community); reorder: closed chunks CLUSTERed by service (every edition). */
  database: (DatabaseInfo & { aggregates: 'continuous' | 'rollup'; compression: boolean; reorder: boolean }) | null;
  jobs: Jobs | null; // the maintenance scheduler, once the database is migrated
  startError: string | null;
  received: number; // events seen in POST bodies
  accepted: number;
  invalid: number; // events refused at validation
  rejectedQueueFull: number;
}

export interface AppDeps {
  config: Config;
  engine: Engine;
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
  log: Logger;
  metrics: Metrics;
  limits: Limits;
}

export function createApp({ config, engine, queue, batcher, state, log, metrics, limits }: AppDeps) {
  const app = new Hono();
  const listSchema = listQuerySchema(config.limits);
  const seriesSchema = seriesQuerySchema(config.limits);
  const startedAt = Date.now();
  const retryAfter = config.retryAfterSeconds;

  app.onError(errorHandler(log));
  app.use(requestContext(config, log, metrics));
  if (config.corsOrigins.length) {
    app.use(cors({ origin: [...config.corsOrigins], allowHeaders: ['Authorization', 'Content-Type', 'Content-Encoding', 'Prefer', 'X-Request-Id'], exposeHeaders: ['X-Request-Id', 'X-Ingest-Ack', 'Retry-After'], maxAge: 600 }));
  }
  // Routes that can take long: queries and batches. POST /events is bounded on its own: it answers
  // at once, or after the commit within WAIT_TIMEOUT_MS (and a timer per request was measurable on
  // that hot path). The only HTTPException(503) in the app: errorHandler answers it as request_timeout.
  const requestTimeout = timeout(config.requestTimeoutMs, () => new HTTPException(503, { message: `The request took longer than ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS)` }));
  app.use('/events/*', requestTimeout);
  app.on('GET', ['/events', '/metrics/events', '/health/business', '/health/detailed'], requestTimeout);
  app.notFound((c) => respondError(c, new ApiError('not_found', `No route for ${c.req.method} ${c.req.path}`)));

  // Access: each route's scope. /health, /health/live and /health/ready stay open for probes.
  // Then the rate-limit budget of the route (after auth: budgets are per key).
  // Each is registered only when it does something: every middleware is a hop on the hot path.
  // Patterns must not overlap ('/events/*' also matches '/events'): a middleware must run once.
  const keys = config.apiKeys;
  const guard = (method: 'GET' | 'POST', paths: string[], ...mw: (MiddlewareHandler | null)[]) => {
    const active = mw.filter((m): m is MiddlewareHandler => m !== null);
    if (active.length) app.on(method, paths, ...(active as [MiddlewareHandler]));
  };
  const scope = (s: Scope) => (keys.length ? requireScope(keys, s) : null);
  guard('POST', ['/events', '/events/batch'], scope('ingest'), limits.middleware('ingest'));
  guard('GET', ['/events', '/events/:id', '/metrics/events', '/health/business'], scope('query'), limits.middleware('query'));
  guard('GET', ['/health/buffer', '/health/database', '/health/detailed', '/metrics'], scope('admin'));
  guard('GET', ['/health', '/health/live', '/health/ready', '/health/buffer', '/health/database', '/health/detailed', '/metrics'], limits.middleware('health'));

  app.route('/', ingestRoutes({ config, queue, batcher, state }));

  app.get('/events', async (c) => {
    const params = listQueryInput(c.req.queries());
    const q = listSchema.safeParse(params);
    if (!q.success) {
      // metadata.<key>=value filters arrive as one record: name the parameter the client sent.
      const errors = zodErrors(q.error, params).map((e) => ({ ...e, field: e.field.replace(/^metaEq\./, 'metadata.').replace(/^service\.\d+$/, 'service') }));
      throw new ApiError('validation_failed', 'Query parameters are invalid', { errors });
    }
    if (!state.ready) throw new ApiError('not_ready', 'The database is not ready yet', { retryAfter });
    return c.json(await listEvents(engine, q.data));
  });

  app.get('/events/:id', async (c) => {
    const id = eventIdSchema.safeParse(c.req.param('id'));
    if (!id.success) throw new ApiError('validation_failed', 'The event id is invalid', { errors: [{ field: 'id', message: 'must be a UUID' }] });
    if (!state.ready) throw new ApiError('not_ready', 'The database is not ready yet', { retryAfter });
    const ev = await getEvent(engine, id.data.toLowerCase());
    if (!ev) throw new ApiError('not_found', `No event with id ${id.data}`);
    return c.json(ev);
  });

  app.get('/health', (c) => {
    if (state.draining) return respondError(c, new ApiError('shutting_down', 'The service is shutting down', { retryAfter }));
    if (!state.ready) return respondError(c, new ApiError('not_ready', state.startError ?? 'Starting: database not yet migrated', { retryAfter }));
    return c.json({ message: 'SERVER_IS_READY' });
  });

  app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }));

  const openapi = JSON.stringify(openApiDocument(config));
  app.get('/openapi.json', (c) => c.body(openapi, 200, { 'Content-Type': 'application/json' }));
  app.get('/docs', (c) => {
    // The page's own inline script and style, and requests to this origin: nothing else.
    c.header('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'");
    return c.html(DOCS_HTML);
  });

  // Kubernetes conventions: live = the process answers; ready = it can take traffic.
  app.get('/health/live', (c) => c.json({ status: 'live' }));
  app.get('/health/ready', (c) => {
    if (state.draining || !state.ready) return respondError(c, new ApiError(state.draining ? 'shutting_down' : 'not_ready', state.draining ? 'The service is shutting down' : (state.startError ?? 'Starting'), { retryAfter }));
    return c.json({ status: 'ready' });
  });

  const bufferStatus = () => {
    const s = batcher.stats;
    return {
      depth: queue.depth,
      pending: queue.pending,
      inFlightBatches: batcher.inFlightBatches,
      capacity: queue.maxEvents,
      utilization: Math.max(queue.depth / queue.maxEvents, queue.usedBytes / queue.maxBytes),
      bytesUsed: queue.usedBytes,
      bytesCapacity: queue.maxBytes,
      accepted: state.accepted,
      written: s.written,
      duplicates: s.duplicates,
      rejected: s.rejected,
      recovered: s.recovered,
      batches: s.batches,
      retriedBatches: s.retriedBatches,
      lastBatchSize: s.lastBatchSize,
      failed: s.failedAttempts,
      rejectedQueueFull: state.rejectedQueueFull,
      drainRate: Math.round(batcher.drainRate),
      breaker: batcher.breaker,
      lastError: s.lastError,
      lastWriteAt: s.lastWriteAt,
      draining: state.draining,
    };
  };

  /** Connection, edition and the maintenance jobs' status; `ok` false when the database does not answer. */
  const databaseStatus = async () => {
    const started = performance.now();
    try {
      await engine.query('SELECT 1');
      const latencyMs = Math.round((performance.now() - started) * 100) / 100;
      const jobs = state.jobs ? await state.jobs.status() : [];
      return { ok: true, body: { connected: true, ready: state.ready, latencyMs, breaker: batcher.breaker, ...(state.database ?? { engine: engine.kind }), jobs } };
    } catch (err) {
      log.warn('database health check failed', { err });
      return { ok: false, body: { connected: false, ready: false, breaker: batcher.breaker, engine: engine.kind, error: (err as Error).message } };
    }
  };

  app.get('/health/buffer', (c) => c.json(bufferStatus()));

  app.get('/health/database', async (c) => {
    const db = await databaseStatus();
    return c.json(db.body, db.ok ? 200 : 503);
  });

  // The MVP's business metrics, from the aggregates.
  app.get('/health/business', async (c) => {
    if (!state.ready) throw new ApiError('not_ready', 'The database is not ready yet', { retryAfter });
    return c.json(await businessMetrics(engine));
  });

  app.get('/metrics/events', async (c) => {
    const all = c.req.queries();
    const params = { service: all.service?.flatMap((s) => s.split(',')), from: all.from?.[0], to: all.to?.[0], bucket: all.bucket?.[0] };
    const q = seriesSchema.safeParse(params);
    if (!q.success) {
      const errors = zodErrors(q.error, params).map((e) => ({ ...e, field: e.field.replace(/^service\.\d+$/, 'service') }));
      throw new ApiError('validation_failed', 'Query parameters are invalid', { errors });
    }
    if (!state.ready) throw new ApiError('not_ready', 'The database is not ready yet', { retryAfter });
    return c.json(await eventSeries(engine, q.data));
  });

  // The MVP's complete status: queue, database, jobs and business metrics in one reply.
  app.get('/health/detailed', async (c) => {
    const db = await databaseStatus();
    const buffer = bufferStatus();
    const jobs = 'jobs' in db.body ? db.body.jobs : [];
    let business: Awaited<ReturnType<typeof businessMetrics>> | { error: string } | null = null;
    if (state.ready && db.ok) {
      try {
        business = await businessMetrics(engine);
      } catch (err) {
        business = { error: (err as Error).message };
      }
    }
    const degraded = !db.ok || buffer.breaker !== 'closed' || jobs.some((j) => j.lastError) || (business !== null && 'error' in business);
    const status = state.draining ? 'shutting_down' : !state.ready ? 'starting' : degraded ? 'degraded' : 'ok';
    return c.json({ status, timestamp: new Date().toISOString(), uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), buffer, database: db.body, business });
  });

  return app;
}
