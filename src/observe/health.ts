// The health routes: probes (/health, /health/live, /health/ready) for orchestrators, and the
// operator's views (/health/buffer, /health/database, /health/detailed) of the queue, the database
// with its maintenance jobs, and everything at once.
import { Hono } from 'hono';
import type { Config } from '../config';
import { ApiError, respondError } from '../errors';
import type { Logger } from '../log';
import { businessMetrics } from '../read/metrics';
import type { ServiceState } from '../state';
import type { Batcher } from '../store/batcher';
import type { Engine } from '../store/engine';
import type { EventQueue } from '../store/queue';

export interface HealthDeps {
  config: Config;
  engine: Engine;
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
  log: Logger;
}

/** The queue and the write stage's counters (GET /health/buffer). */
export function bufferStatus({ queue, batcher, state }: Pick<HealthDeps, 'queue' | 'batcher' | 'state'>) {
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
}

/** Connection, edition and the maintenance jobs' status; `ok` false when the database does not answer. */
async function databaseStatus({ engine, batcher, state, log }: HealthDeps) {
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
}

/** The MVP's complete status: queue, database, jobs and business metrics in one reply. */
async function detailedStatus(deps: HealthDeps, startedAt: number) {
  const { state, engine } = deps;
  const db = await databaseStatus(deps);
  const buffer = bufferStatus(deps);
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
  return { status, timestamp: new Date().toISOString(), uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), buffer, database: db.body, business };
}

export function healthRoutes(deps: HealthDeps) {
  const { config, state } = deps;
  const app = new Hono();
  const retryAfter = config.retryAfterSeconds;
  const startedAt = Date.now();
  /** 503 while starting or shutting down, else null. */
  const unavailable = (startingMessage: string) => {
    if (state.draining) return new ApiError('shutting_down', 'The service is shutting down', { retryAfter });
    if (!state.ready) return new ApiError('not_ready', state.startError ?? startingMessage, { retryAfter });
    return null;
  };

  app.get('/health', (c) => {
    const refused = unavailable('Starting: database not yet migrated');
    return refused ? respondError(c, refused) : c.json({ message: 'SERVER_IS_READY' });
  });
  // Kubernetes conventions: live = the process answers; ready = it can take traffic.
  app.get('/health/live', (c) => c.json({ status: 'live' }));
  app.get('/health/ready', (c) => {
    const refused = unavailable('Starting');
    return refused ? respondError(c, refused) : c.json({ status: 'ready' });
  });
  app.get('/health/buffer', (c) => c.json(bufferStatus(deps)));
  app.get('/health/database', async (c) => {
    const db = await databaseStatus(deps);
    return c.json(db.body, db.ok ? 200 : 503);
  });
  app.get('/health/detailed', async (c) => c.json(await detailedStatus(deps, startedAt)));
  return app;
}
