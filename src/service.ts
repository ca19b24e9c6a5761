// Wires the pipeline: queue -> batcher -> writer threads -> database, and the app in front of it.
// main.ts serves `app` and calls `stop` on a signal; tests build one service per test around a
// temporary data directory or a fresh database.
import Piscina from 'piscina';
import { createApp } from './app';
import type { Config } from './config';
import { createLogger, redactUrl, type Logger } from './log';
import { createFallbacks } from './fallbacks';
import { createJobs } from './maintain/scheduler';
import { bufferStatus } from './observe/health';
import { servePeers, type Peers } from './observe/peers';
import { createMetrics } from './observe/prometheus';
import { createLimits } from './protect/limits';
import { createBudgets } from './protect/budget';
import { BodyReader } from './receive/body';
import { newState, type ServiceState } from './state';
import { Batcher, type Faults } from './store/batcher';
import { detectDatabase, ensureSearchIndex, openServer, proxyEngine, type Engine } from './store/engine';
import { migrate, migratedEdition, type Edition } from './store/migrate';
import { lockDataDir } from './store/lock';
import { readRouting } from './store/replica';
import { EventQueue } from './store/queue';
import type { WriterData, WriterTask } from './store/writer-protocol';
import { replaySpills, spillDir, writeSpill } from './store/spill';

export interface ServiceOptions {
  log?: Logger;
  /** This process's siblings when HTTP_PROCESSES > 1 (set by main.ts from the supervisor's environment). */
  peers?: Peers | null;
  faults?: Faults;
  /** Tests and benchmarks only: migrate as this TimescaleDB edition (the Apache path on a Community database). */
  edition?: Edition;
}

export type Service = Awaited<ReturnType<typeof createService>>;

/** Whether `step` ended within `ms` (its failure counts as ended: the caller logs failures itself). */
async function within(step: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  let timer: Timer | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([
      Promise.resolve(step).then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The writer threads: each reads batches from the queue's shared memory and owns a connection (or, embedded, the database). */
function writerPool(config: Config, queue: EventQueue, writers: number, log: Logger) {
  const embedded = config.engine === 'embedded';
  const workerData: WriterData = {
    engine: config.engine,
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    trigram: config.searchIndex === 'trgm',
    fsync: config.embeddedFsync,
    sab: queue.sab,
  };
  const pool = new Piscina<WriterTask, unknown>({
    filename: new URL('../workers/writer.ts', import.meta.url).href,
    minThreads: writers,
    maxThreads: writers,
    idleTimeout: Infinity,
    // piscina's default idle wait (Atomics.wait) blocks the thread between tasks, starving the async
    // work a writer keeps alive (its postgres.js connection, PGlite): measured with piscina 5.3 on Bun.
    atomics: 'disabled',
    // Embedded: queries and inserts share the one thread that owns the database; PGlite serializes.
    concurrentTasksPerWorker: embedded ? 16 : 1,
    workerData,
  });
  // A thread that fails between batches (an error no task awaits: a socket's late ECONNRESET, say)
  // has already been replaced by piscina, which then emits 'error': unheard, that ended the process,
  // and with it every accepted event still in the queue.
  pool.on('error', (err: Error) => log.error('a writer thread failed between batches; another took its place', { err }));
  return pool;
}

/**
 * The end of a stop, once the accepted events are written or saved: the maintenance job in
 * progress ends, then each writer closes its database and the threads end. A thread frozen inside
 * the embedded engine can be neither answered nor terminated (Bun cannot stop a thread running
 * WebAssembly), so each wait is bounded and the process can exit; a database left open recovers at
 * its next start, as after a crash.
 */
async function closeWriters(pool: Piscina, writers: number, jobsStopped: Promise<void> | undefined, waitedMs: number, log: Logger) {
  if (!(await within(jobsStopped, waitedMs))) {
    log.error('shutdown: a maintenance job did not end; stopping without closing the database', { waitedMs });
    return;
  }
  const closed = (async () => {
    try {
      await Promise.all(Array.from({ length: writers }, () => pool.run({ op: 'close' } satisfies WriterTask)));
    } catch (err) {
      log.warn('shutdown: closing a writer failed', { err });
    }
    await pool.destroy();
  })();
  if (!(await within(closed, waitedMs))) log.error('shutdown: a writer thread did not close; stopping without it', { waitedMs });
}

/** The embedded engine's DATA_DIR lock, taken before anything can open the database. */
function takeDataDir(config: Config, log: Logger) {
  // A second process on this DATA_DIR stops here (DataDirLocked).
  const dirLock = lockDataDir(config.dataDir);
  if (dirLock.previous) {
    const p = dirLock.previous;
    log.warn('DATA_DIR lock taken over from a process that did not stop cleanly (it is gone; the database recovers from its log)', {
      dataDir: config.dataDir,
      pid: p.pid,
      host: p.host,
      since: p.startedAt,
    });
  }
  return dirLock;
}

interface StartUp {
  config: Config;
  opts: ServiceOptions;
  log: Logger;
  engine: Engine;
  state: ServiceState;
  batcher: Batcher;
  dirLock: ReturnType<typeof lockDataDir> | null;
}

/** Connects and migrates, retrying until the database answers; then the writers and the jobs start. Resolves with whether it started. */
async function startUp({ config, opts, log, engine, state, batcher, dirLock }: StartUp, stopping: () => boolean): Promise<boolean> {
  const embedded = config.engine === 'embedded';
  log.info('starting', { engine: config.engine, target: embedded ? config.dataDir : redactUrl(config.databaseUrl!) });
  for (let attempt = 0; !stopping(); attempt++) {
    try {
      const applied = await migrate(engine, log, undefined, { edition: opts.edition });
      if (config.searchIndex === 'trgm') {
        const failed = await ensureSearchIndex(engine);
        if (failed) log.warn('SEARCH_INDEX=trgm: no trigram index (message search works, unindexed)', { err: failed });
      }
      // Events saved at an earlier shutdown go in before new ones.
      await replaySpills(spillDir(config.dataDir), engine, log);
      dirLock?.recordHolder(); // the database files exist now
      const info = await detectDatabase(engine);
      const edition = await migratedEdition(engine);
      if (stopping()) return false; // stop() came while migrating: start nothing
      state.database = {
        ...info,
        aggregates: edition === 'apache' ? 'rollup' : 'continuous',
        compression: edition === 'community' && config.compressAfterDays > 0,
        reorder: config.compressAfterDays > 0,
      };
      log.info('database ready', { migrationsApplied: applied, ...state.database });
      state.ready = true;
      state.startError = null;
      batcher.start();
      // Maintenance: policies follow the configuration; due jobs start running now.
      state.jobs = createJobs({ engine, config, log, edition, backgroundWorkers: info.backgroundWorkers });
      await state.jobs.start();
      return true;
    } catch (err) {
      state.startError = `Database not ready: ${(err as Error).message}`;
      log.error('database not ready; retrying', { attempt: attempt + 1, err });
      await Bun.sleep(Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)));
    }
  }
  return false;
}

export function createService(config: Config, opts: ServiceOptions = {}) {
  const log = opts.log ?? createLogger(config.logLevel);
  const embedded = config.engine === 'embedded';
  // The embedded database is one session in one thread: exactly one writer owns it.
  const writers = embedded ? 1 : config.batch.writers;
  if (embedded && config.batch.writers > 1) log.warn('WRITERS is ignored by the embedded engine (one writer owns the database)');

  const dirLock = embedded ? takeDataDir(config, log) : null;
  const queue = new EventQueue(config.queue.maxEvents, config.queue.maxBytes);
  const pool = writerPool(config, queue, writers, log);
  const engine: Engine = embedded ? proxyEngine(pool) : openServer(config.databaseUrl!, config.dbPoolMax);
  const reads = config.reads.url ? readRouting(engine, config.reads.url, { maxLagMs: config.reads.maxLagMs, poolMax: config.dbPoolMax, log }) : null;
  const batcher = new Batcher(
    queue,
    pool,
    {
      size: config.batch.size,
      lingerMs: config.batch.lingerMs,
      maxInFlight: embedded ? 2 : writers, // embedded: a second batch ready behind the first (workers/writer.ts)
      retryMaxMs: config.batch.retryMaxMs,
      breakerThreshold: config.breaker.threshold,
      breakerCooldownMs: config.breaker.cooldownMs,
    },
    log,
    opts.faults,
  );
  const state = newState();
  state.fallbacks = createFallbacks(log);
  const peers = opts.peers ?? null;
  const limits = createLimits(config, log, peers?.ports.length ?? 1);
  const budgets = createBudgets(config);
  const metrics = createMetrics(queue, batcher, state, limits, budgets, reads);
  batcher.onBatch = metrics.observeBatch;
  const app = createApp({
    config,
    engine,
    reader: reads?.engine ?? engine,
    reads,
    peers,
    queue,
    batcher,
    state,
    log,
    metrics,
    limits,
    bodies: new BodyReader(budgets.bodies),
    answers: budgets.answers,
  });
  const peerServer = peers
    ? servePeers(peers, { metrics: () => metrics.registry.getMetricsAsJSON(), buffer: () => bufferStatus({ queue, batcher, state }) })
    : null;
  let stopping = false;

  // Connect and migrate, retrying until the database answers; /health says 503 meanwhile, and events
  // posted meanwhile wait in the queue (bounded as always).
  const ready = startUp({ config, opts, log, engine, state, batcher, dirLock }, () => stopping);

  /**
   * Graceful stop: refuse new events (503), write everything queued (for at most `drainMs`, by
   * default SHUTDOWN_TIMEOUT_MS; the rest is saved), close the writers and the database. Resolves
   * with the number of accepted events that could not be written in time.
   */
  async function stop({ drainMs = config.shutdownTimeoutMs } = {}): Promise<{ unwritten: number; spilled: number }> {
    if (stopping) return { unwritten: queue.depth, spilled: 0 };
    stopping = true;
    state.draining = true;
    // No new maintenance job from now on. One in progress (a long refresh, say) is waited for only
    // after the accepted events are written or saved: they must not wait behind it.
    const jobsStopped = state.jobs?.stop();
    const drained = state.ready && (await batcher.drain(drainMs));
    batcher.stop();
    metrics.stop();
    void peerServer?.stop();
    limits.close();
    const unwritten = queue.depth;
    let spilled = 0;
    if (!drained && unwritten > 0) {
      try {
        const file = writeSpill(spillDir(config.dataDir), queue.backlog());
        spilled = unwritten;
        log.error('shutdown: the database did not take every accepted event; saved them, to be written at the next start', { events: unwritten, file });
      } catch (err) {
        log.error('shutdown: events accepted but neither written nor saved', { unwritten, err });
      }
    }
    await closeWriters(pool, writers, jobsStopped, config.shutdownTimeoutMs, log);
    await reads?.close();
    await engine.close();
    dirLock?.release();
    log.info('stopped', { written: batcher.stats.written, unwritten, spilled });
    return { unwritten, spilled };
  }

  return { app, config, engine, queue, batcher, state, metrics, ready, stop, log };
}
