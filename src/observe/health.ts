// The health routes: probes (/health, /health/live, /health/ready) for orchestrators, and the
// operator's views (/health/buffer, /health/database, /health/detailed) of the queue, the database
// with its maintenance jobs, and everything at once.
import { Hono } from 'hono';
import type { Config } from '../config';
import { ApiError, respondError } from '../errors';
import type { Logger } from '../log';
import type { MemoryBudget } from '../protect/budget';
import type { ServiceHistory } from '../read/history';
import { businessMetrics } from '../read/metrics';
import { sendJson } from '../read/send';
import type { ServiceState } from '../state';
import type { Batcher } from '../store/batcher';
import type { Engine } from '../store/engine';
import type { EventQueue } from '../store/queue';
import type { ReadRouting } from '../store/replica';
import { fromSiblings, type Peers } from './peers';

export interface HealthDeps {
  config: Config;
  engine: Engine;
  /** The engine of the read routes: the replica's routing (DATABASE_READ_URL), else `engine`. */
  reader: Engine;
  reads: ReadRouting | null;
  /** The sibling processes (HTTP_PROCESSES > 1), whose queues /health/buffer adds up. */
  peers: Peers | null;
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
  log: Logger;
}

/** The routes' own: each service's events before yesterday, kept for a refresh period (read/history.ts), and the budget of answers being sent. */
type HealthRouteDeps = HealthDeps & { history: ServiceHistory; answers: MemoryBudget };

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

type BufferStatus = ReturnType<typeof bufferStatus>;
const BREAKER_RANK = { closed: 0, 'half-open': 1, open: 2 } as const;

/** The whole service's queue: this process's figures added to its siblings' (HTTP_PROCESSES > 1). */
async function serviceBuffer(deps: HealthDeps) {
  const own = bufferStatus(deps);
  if (!deps.peers) return own;
  const all = [own, ...(await fromSiblings<BufferStatus>(deps.peers, 'buffer'))];
  const sum = (k: keyof BufferStatus) => all.reduce((n, b) => n + (b[k] as number), 0);
  const numbers = [
    'depth',
    'pending',
    'inFlightBatches',
    'capacity',
    'bytesUsed',
    'bytesCapacity',
    'accepted',
    'written',
    'duplicates',
    'rejected',
    'recovered',
    'batches',
    'retriedBatches',
    'failed',
    'rejectedQueueFull',
    'drainRate',
  ] as const;
  const total = Object.fromEntries(numbers.map((k) => [k, sum(k)])) as Record<(typeof numbers)[number], number>;
  return {
    ...own,
    ...total,
    utilization: Math.max(total.depth / total.capacity, total.bytesUsed / total.bytesCapacity),
    breaker: all.map((b) => b.breaker).sort((a, b) => BREAKER_RANK[b] - BREAKER_RANK[a])[0]!,
    lastError: all.find((b) => b.lastError)?.lastError ?? null,
    lastWriteAt:
      all
        .map((b) => b.lastWriteAt)
        .filter(Boolean)
        .sort()
        .at(-1) ?? null,
    draining: all.some((b) => b.draining),
    processes: { configured: deps.peers.ports.length, reporting: all.length },
  };
}

/** Connection, edition and the maintenance jobs' status; `ok` false when the database does not answer. */
async function databaseStatus({ engine, reads, batcher, state, log }: HealthDeps) {
  const started = performance.now();
  const replica = reads ? { reads: reads.status() } : {};
  try {
    await engine.query('SELECT 1');
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    const jobs = state.jobs ? await state.jobs.status() : [];
    const maintenance = state.jobs ? { maintenance: state.jobs.runner() } : {};
    return {
      ok: true,
      body: {
        connected: true,
        ready: state.ready,
        latencyMs,
        breaker: batcher.breaker,
        ...(state.database ?? { engine: engine.kind }),
        ...replica,
        ...maintenance,
        jobs,
      },
    };
  } catch (err) {
    log.warn('database health check failed', { err });
    return { ok: false, body: { connected: false, ready: false, breaker: batcher.breaker, engine: engine.kind, ...replica, error: (err as Error).message } };
  }
}

/** The MVP's complete status: queue, database, jobs and business metrics in one reply. */
async function detailedStatus(deps: HealthRouteDeps, startedAt: number) {
  const { state } = deps;
  const db = await databaseStatus(deps);
  const buffer = await serviceBuffer(deps);
  const jobs = 'jobs' in db.body ? db.body.jobs : [];
  let business: Awaited<ReturnType<typeof businessMetrics>> | { error: string } | null = null;
  if (state.ready && db.ok) {
    try {
      business = await businessMetrics(deps.reader, deps.history);
    } catch (err) {
      business = { error: (err as Error).message };
    }
  }
  const degraded = !db.ok || buffer.breaker !== 'closed' || jobs.some((j) => j.lastError) || (business !== null && 'error' in business);
  const status = state.draining ? 'shutting_down' : !state.ready ? 'starting' : degraded ? 'degraded' : 'ok';
  return { status, timestamp: new Date().toISOString(), uptimeSeconds: Math.round((Date.now() - startedAt) / 1000), buffer, database: db.body, business };
}

export function healthRoutes(deps: HealthRouteDeps) {
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
  app.get('/health/buffer', async (c) => c.json(await serviceBuffer(deps)));
  app.get('/health/database', async (c) => {
    const db = await databaseStatus(deps);
    return c.json(db.body, db.ok ? 200 : 503);
  });
  // Its business part names every service: a large answer, sent within READ_BUDGET_BYTES.
  app.get('/health/detailed', async (c) => sendJson(c, await detailedStatus(deps, startedAt), deps.answers));
  return app;
}
