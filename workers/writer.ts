// The write stage, in a piscina worker thread: reads a claimed batch straight out of the shared queue
// memory and inserts it into the events hypertable with ONE statement. The batch text is already a
// JSON array of records (validated at the edge) in one fixed layout, which this thread turns into
// COPY text by slicing, without parsing JSON (src/store/write.ts). In embedded mode this thread
// also owns the PGlite database and runs the main thread's statements (one session per process).
import { workerData } from 'node:worker_threads';
import { openEmbedded, openServer, statementFailure, type Engine } from '../src/store/engine';
import { readBatch } from '../src/store/queue';
import { writeRecords, type InsertResult } from '../src/store/write';

export interface WriterData {
  engine: 'embedded' | 'server';
  databaseUrl?: string;
  dataDir: string;
  trigram: boolean;
  sab: SharedArrayBuffer;
}

export type WriterFault = 'crash-before-write' | 'crash-mid-copy' | 'crash-after-write' | 'database-down';

export type WriterTask =
  | { op: 'insert'; start: number; end: number; count: number; fault?: WriterFault }
  | { op: 'query'; text: string; params: unknown[] }
  | { op: 'exec'; script: string; transaction: boolean }
  | { op: 'copy'; statement: string; chunks: string[] }
  | { op: 'close' };

const data = workerData as WriterData;
const bytes = new Uint8Array(data.sab);
let db: Promise<Engine> | undefined;

function database(): Promise<Engine> {
  db ??= (data.engine === 'server' ? Promise.resolve(openServer(data.databaseUrl!, 1)) : openEmbedded(data.dataDir, { trigram: data.trigram, locked: true })).catch((e) => {
    db = undefined; // let the next task try again (server not up yet, say)
    throw e;
  });
  return db;
}

/** The COPY text's first half, then the thread's death: the database has half a COPY and no commit. */
function* dieHalfway(text: string): Iterable<string> {
  yield text.slice(0, text.indexOf('\n', text.length >> 1) + 1);
  process.exit(3);
}

/**
 * PGlite trapped (a WebAssembly RuntimeError, e.g. its stack overflowed): that instance answers every
 * later statement with the same trap. The thread exits instead, so piscina starts a fresh one that
 * reopens the database from its files, as after a crash; the batch it held is retried (batcher.ts).
 */
function exitIfTrapped(e: unknown) {
  if (e instanceof WebAssembly.RuntimeError) process.exit(4);
}

/** The main thread's statements (embedded engine); a failure returns as a value, SQLSTATE kept (see proxyEngine). */
async function statement(engine: Engine, task: Extract<WriterTask, { op: 'query' | 'exec' | 'copy' }>): Promise<unknown> {
  try {
    if (task.op === 'query') return await engine.query(task.text, task.params);
    if (task.op === 'exec') await engine.exec(task.script, { transaction: task.transaction });
    else await engine.copyIn(task.statement, task.chunks);
    return null;
  } catch (e) {
    exitIfTrapped(e);
    return statementFailure(e);
  }
}

export default async function writer(task: WriterTask): Promise<unknown> {
  if (task.op === 'close') {
    const d = db;
    db = undefined;
    if (d) await (await d).close();
    return null;
  }
  const engine = await database();
  switch (task.op) {
    case 'insert': {
      const json = readBatch(bytes, task);
      // Fault injection for the crash tests (set only by tests through createService options): the
      // thread dies holding a batch, before its commit, halfway through its COPY, or after its commit.
      if (task.fault === 'crash-before-write') process.exit(3);
      if (task.fault === 'database-down') throw new Error('08006: connection to the database lost (test fault)');
      const result: InsertResult = { inserted: 0, duplicates: [], rejected: [] };
      try {
        await writeRecords(engine, json, task.count, result, task.fault === 'crash-mid-copy' ? { copyMinRows: 1, chunked: dieHalfway } : {});
      } catch (e) {
        exitIfTrapped(e);
        // Errors cross the thread boundary as plain messages: keep the SQLSTATE in it for the log.
        const code = (e as { code?: string }).code;
        throw new Error(code ? `${code}: ${(e as Error).message}` : (e as Error).message);
      }
      if (task.fault === 'crash-after-write') process.exit(3);
      return result;
    }
    default:
      return statement(engine, task);
  }
}
