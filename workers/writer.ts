// The write stage, in a piscina worker thread (its protocol: src/store/writer-protocol.ts): reads a claimed batch straight out of the shared queue
// memory and inserts it into the events hypertable with ONE statement. The batch text is already a
// JSON array of records (validated at the edge) in one fixed layout, which this thread turns into
// COPY text by slicing, without parsing JSON (src/store/write.ts). In embedded mode this thread
// also owns the PGlite database and runs the main thread's statements (one session per process).
import { workerData } from 'node:worker_threads';
import { isEngineBroken, openEmbedded, openServer, type Engine } from '../src/store/engine';
import { readBatch } from '../src/store/queue';
import { writeRecords, type InsertResult } from '../src/store/write';
import { statementFailure, type StatementTask, type WriterData, type WriterTask } from '../src/store/writer-protocol';

const data = workerData as WriterData;
const bytes = new Uint8Array(data.sab);
let db: Promise<Engine> | undefined;

function database(): Promise<Engine> {
  db ??= (
    data.engine === 'server'
      ? Promise.resolve(openServer(data.databaseUrl!, 1))
      : openEmbedded(data.dataDir, { trigram: data.trigram, fsync: data.fsync, locked: true })
  ).catch((e) => {
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
 * PGlite's engine failed (a WebAssembly trap, e.g. its stack overflowed): that instance refuses every
 * later statement (engine.ts fences it), so this thread drops it, closes its files, and the next task
 * reopens the database from its files, as after a crash; the batch it held is retried (batcher.ts).
 * The thread itself stays: with the instance gone it holds nothing broken, and a replacement thread
 * would only add a start-up (and a worker's exit while its tasks are in flight, Bun's weak spot).
 */
function dropIfBroken(opened: Promise<Engine>, e: unknown) {
  if (!isEngineBroken(e) || db !== opened) return; // not the engine's failure, or dropped already
  db = undefined;
  void opened.then((engine) => engine.close()).catch(() => {});
}

// Statements of the main thread (embedded: reads, maintenance) running in this thread, and when the
// last one ended: a batch waiting behind another lets them go first (see `inserting` below).
let statements = 0;
let statementEnded = 0;

/** The main thread's statements (embedded engine); a failure returns as a value, SQLSTATE kept (see proxyEngine). */
async function statement(engine: Engine, opened: Promise<Engine>, task: StatementTask): Promise<unknown> {
  statements++;
  try {
    if (task.op === 'query') return await engine.query(task.text, task.params);
    if (task.op === 'exec') await engine.exec(task.script, { transaction: task.transaction });
    else await engine.copyIn(task.statement, task.chunks);
    return null;
  } catch (e) {
    dropIfBroken(opened, e);
    return statementFailure(e);
  } finally {
    statements--;
    statementEnded = performance.now();
  }
}

/** One batch: its records out of shared memory, into the events table (COPY, or the INSERT path). */
async function insert(engine: Engine, opened: Promise<Engine>, task: Extract<WriterTask, { op: 'insert' }>): Promise<InsertResult> {
  const json = readBatch(bytes, task);
  // Fault injection for the crash tests (set only by tests through createService options): the
  // thread dies holding a batch, before its commit, halfway through its COPY, after its commit, or
  // just after the batch (stray-error-after-write, below), or never answers again (freeze).
  if (task.fault === 'crash-before-write') process.exit(3);
  // The thread stops answering anything, as one frozen inside the embedded engine (engine.ts); it
  // sleeps rather than spins, and ends itself after a minute.
  if (task.fault === 'freeze') {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
    process.exit(3);
  }
  if (task.fault === 'database-down') throw new Error('08006: connection to the database lost (test fault)');
  const result: InsertResult = { inserted: 0, duplicates: [], rejected: [] };
  try {
    await writeRecords(engine, json, task.count, result, task.fault === 'crash-mid-copy' ? { copyMinRows: 1, chunked: dieHalfway } : {});
  } catch (e) {
    dropIfBroken(opened, e);
    // Errors cross the thread boundary as plain messages: keep the SQLSTATE in it for the log.
    const code = (e as { code?: string }).code;
    throw new Error(code ? `${code}: ${(e as Error).message}` : (e as Error).message);
  }
  if (task.fault === 'crash-after-write') process.exit(3);
  // An error thrown where no task awaits it, after the batch's answer went back (as a socket's late
  // ECONNRESET, seen once after a database restart): it ends the thread, outside any batch.
  if (task.fault === 'stray-error-after-write')
    setTimeout(() => {
      throw Object.assign(new Error('read ECONNRESET (test fault)'), { code: 'ECONNRESET' });
    }, 20);
  return result;
}

// Embedded, the batcher keeps a second full batch here while the first is written, so PGlite starts
// it the moment the first commits instead of after a round trip through a main thread busy parsing
// requests (BENCHMARKS.md). Batches reach the database one at a time, in order, and the second first
// lets the main thread's statements go: those sent while the first ran, and the next slice of a read
// whose slice just ended (READ_GAP_MS), for at most YIELD_MAX_MS: a read under a backlog waits for
// the batch being written, not for two, and a stream of reads cannot stop the writes.
const READ_GAP_MS = 20;
const YIELD_MAX_MS = 50;
let inserting: Promise<unknown> = Promise.resolve();

async function afterStatements() {
  const until = performance.now() + YIELD_MAX_MS;
  // A COPY holds this thread while it runs: the main thread's statements sent meanwhile are still
  // messages in the port, behind this task's. A timer turn lets them in first.
  await Bun.sleep(1);
  while ((statements > 0 || performance.now() - statementEnded < READ_GAP_MS) && performance.now() < until) await Bun.sleep(1);
}

export default async function writer(task: WriterTask): Promise<unknown> {
  if (task.op === 'close') {
    const d = db;
    db = undefined;
    if (d) await (await d).close();
    return null;
  }
  const opened = database();
  const engine = await opened;
  if (task.op !== 'insert') return statement(engine, opened, task);
  const turn = inserting.then(async () => {
    if (task.behind && data.engine === 'embedded') await afterStatements();
    // An engine that broke while this batch waited refuses it; the batcher sends it again.
    return insert(engine, opened, task);
  });
  inserting = turn.catch(() => {});
  return turn;
}
