// The writer threads' protocol, defined once for both sides: what the main thread sends a writer
// (workers/writer.ts) through the piscina pool, and how a statement's failure comes back. The main
// thread's side is store/batcher.ts (batches) and proxyEngine in store/engine.ts (the embedded
// engine's statements, which run in the thread that owns the database).
import type Piscina from 'piscina';

/** What each writer thread is started with. */
export interface WriterData {
  engine: 'embedded' | 'server';
  databaseUrl?: string;
  dataDir: string;
  trigram: boolean;
  /** Embedded engine: PostgreSQL's syncs reach the disk (store/fsync.ts; EMBEDDED_FSYNC). */
  fsync: boolean;
  sab: SharedArrayBuffer;
}

/** Fault injection for the crash tests (set only by tests, through createService options). */
export type WriterFault = 'crash-before-write' | 'crash-mid-copy' | 'crash-after-write' | 'stray-error-after-write' | 'freeze' | 'database-down';

/** A statement of the main thread, run in the thread that owns the embedded database. */
export type StatementTask =
  | { op: 'query'; text: string; params: unknown[] }
  | { op: 'exec'; script: string; transaction: boolean }
  | { op: 'copy'; statement: string; chunks: string[] };

export type WriterTask = { op: 'insert'; start: number; end: number; count: number; fault?: WriterFault; behind?: boolean } | StatementTask | { op: 'close' };

export type WriterPool = Piscina<WriterTask, unknown>;

// An Error crosses the thread boundary without its own properties: the SQLSTATE (`code`), which
// decides whether a row or the database is at fault (write.ts), would be lost. A failed statement
// returns as this value instead, and the main thread throws it again (statementResult).
const FAILED = 'aurore.statementFailed';
interface StatementFailure {
  [FAILED]: { message: string; code?: string };
}

/** The writer thread's side: a failed statement as a value, its SQLSTATE kept. */
export function statementFailure(e: unknown): StatementFailure {
  const code = (e as { code?: unknown }).code;
  return { [FAILED]: { message: (e as Error).message ?? String(e), ...(typeof code === 'string' ? { code } : {}) } };
}

/** The main thread's side: the statement's result, or its failure thrown again with its SQLSTATE. */
export function statementResult<T>(r: unknown): T {
  const f = (r as Partial<StatementFailure> | null)?.[FAILED];
  if (f) throw Object.assign(new Error(f.message), f.code ? { code: f.code } : {});
  return r as T;
}
