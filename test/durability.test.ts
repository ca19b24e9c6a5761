// What was accepted is never lost: a full queue refuses instead of dropping, a writer thread that dies
// holding a batch loses nothing and duplicates nothing, a restart keeps the data.
import { afterEach, describe, expect, test, setDefaultTimeout } from 'bun:test';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log';
import { loadMigrations } from '../src/store/migrate';
import { spillDir, writeSpill } from '../src/store/spill';
import { buildService, busyThreads, countRows, engines, migratedTemplate, newTarget, postEvent, ROOT, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

const targets: Target[] = [];
const services: { stop(): Promise<unknown> }[] = [];
const cleanupsAfter: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
  for (const t of targets.splice(0)) await t.destroy();
  for (const c of cleanupsAfter.splice(0)) c();
});
async function target(kind: Target['kind']) {
  const t = await newTarget(kind);
  targets.push(t);
  return t;
}
async function service(...args: Parameters<typeof startService>) {
  const s = await startService(...args);
  services.push(s);
  return s;
}
const ev = (i: number, service = 'dur') => ({ service, message: `event ${i}`, metadata: { i } });

describe.each(engines)('durability [%s]', (kind) => {
  test('returns 429 with Retry-After and the MVP body when the queue is full, and writes what it accepted', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(
      await target(kind),
      { QUEUE_MAX_EVENTS: '3', BATCH_SIZE: '3', RETRY_AFTER_SECONDS: '7' },
      { faults: { beforeWrite: () => gate } },
    );
    for (let i = 0; i < 3; i++) expect((await postEvent(svc.app, ev(i))).status).toBe(202);
    const full = await postEvent(svc.app, ev(3));
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toBe('7');
    expect(await full.json()).toMatchObject({ status: 'rate_limited', message: 'Buffer is full. Please retry in a few seconds.', retry_after: 7 });
    const buf = (await (await svc.app.request('/health/buffer')).json()) as Record<string, number>;
    expect(buf).toMatchObject({ depth: 3, capacity: 3, utilization: 1, rejectedQueueFull: 1 });

    open();
    await until(() => svc.batcher.stats.written === 3, 20_000, 'queued events written');
    expect((await postEvent(svc.app, ev(4))).status).toBe(202);
    await until(() => svc.batcher.stats.written === 4);
    expect(await countRows(svc.engine)).toBe(4);
  });

  test('a batch the full queue surely cannot take is refused with 429 before its body is read', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(await target(kind), { QUEUE_MAX_EVENTS: '40', BATCH_SIZE: '40' }, { faults: { beforeWrite: () => gate } });
    const lines = (n: number, from: number) => Array.from({ length: n }, (_, i) => JSON.stringify(ev(from + i, 'early'))).join('\n');
    const first = await svc.app.request('/events/batch', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines(30, 0) });
    expect(first.status).toBe(202);
    // A body that never ends: only a refusal that does not read it can answer.
    const endless = new ReadableStream({ pull: () => new Promise(() => {}) });
    const size = String(Buffer.byteLength(lines(30, 100)));
    const refused = await Promise.race([
      svc.app.request('/events/batch', {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', 'content-length': size },
        body: endless,
        duplex: 'half',
      } as RequestInit),
      Bun.sleep(5000).then(() => null),
    ]);
    expect(refused?.status).toBe(429);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Room for a small one: read and queued as usual.
    expect((await svc.app.request('/events/batch', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines(5, 200) })).status).toBe(
      202,
    );
    open();
    await until(() => svc.batcher.stats.written === 35, 20_000, 'queued events written');
  });

  test('a queue bounded in bytes refuses an event that does not fit', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await service(await target(kind), { QUEUE_MAX_BYTES: String(1024 * 1024), BATCH_SIZE: '1000' }, { faults: { beforeWrite: () => gate } });
    const big = { service: 'bytes', message: 'x'.repeat(2000), metadata: { pad: 'y'.repeat(15_000) } };
    let accepted = 0;
    let status = 202;
    while (status === 202 && accepted < 1000) {
      status = (await postEvent(svc.app, big)).status;
      if (status === 202) accepted++;
    }
    expect(status).toBe(429);
    expect(accepted).toBeGreaterThan(50); // ~17 KB each in 1 MB
    expect(accepted).toBeLessThan(70);
    open();
    await until(() => svc.batcher.stats.written === accepted);
    expect(await countRows(svc.engine, `service = 'bytes'`)).toBe(accepted);
  });

  test('a writer thread that dies before committing a batch loses none of it', async () => {
    const svc = await service(
      await target(kind),
      { BATCH_SIZE: '100', BATCH_LINGER_MS: '50' },
      { faults: { crashOnAttempt: { attempt: 1, when: 'crash-before-write' } } },
    );
    for (let i = 0; i < 60; i++) expect((await postEvent(svc.app, ev(i, 'crash-before'))).status).toBe(202);
    await until(() => svc.batcher.stats.written === 60, 30_000, 'batch rewritten after the crash');
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThanOrEqual(1);
    expect(await countRows(svc.engine, `service = 'crash-before'`)).toBe(60);
  });

  // Under a backlog the embedded writer holds two batches (one writing, one waiting behind it), the
  // server's two writers one each: a thread's death must cost a retry of each batch it held, no row.
  test('a writer thread that dies holding the batch behind the one it writes loses neither', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let held = true;
    const svc = await service(
      await target(kind),
      { BATCH_SIZE: '20', BATCH_LINGER_MS: '50' },
      { faults: { beforeWrite: () => (held ? gate : Promise.resolve()), crashOnAttempt: { attempt: 1, when: 'crash-before-write' } } },
    );
    for (let i = 0; i < 100; i++) expect((await postEvent(svc.app, ev(i, 'crash-two'))).status).toBe(202);
    await until(() => svc.batcher.inFlightBatches === 2, 5_000, 'two batches in flight'); // both held at the gate
    held = false;
    open();
    await until(() => svc.batcher.stats.written === 100, 30_000, 'every batch written after the crash');
    // Embedded: both batches were in the thread that died; the server's other writer kept its own.
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThanOrEqual(kind === 'embedded' ? 2 : 1);
    const [d] = await svc.engine.query<{ rows: number; ids: number }>(
      `SELECT count(*)::float8 AS rows, count(DISTINCT id)::float8 AS ids FROM events WHERE service = 'crash-two'`,
    );
    expect(d).toEqual({ rows: 100, ids: 100 });
  });

  // Server: the database holds half a COPY when the connection drops, and rolls it back. Embedded:
  // PGlite reads a COPY in one call inside this thread, so the thread dies before the COPY starts.
  test('a writer thread that dies halfway through its COPY loses nothing and duplicates nothing', async () => {
    const svc = await service(
      await target(kind),
      { BATCH_SIZE: '100', BATCH_LINGER_MS: '50' },
      { faults: { crashOnAttempt: { attempt: 1, when: 'crash-mid-copy' } } },
    );
    for (let i = 0; i < 80; i++) expect((await postEvent(svc.app, ev(i, 'crash-mid-copy'))).status).toBe(202);
    await until(() => svc.batcher.stats.written === 80, 30_000, 'batch rewritten after the crash');
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThanOrEqual(1);
    const [d] = await svc.engine.query<{ rows: number; ids: number }>(
      `SELECT count(*)::float8 AS rows, count(DISTINCT id)::float8 AS ids FROM events WHERE service = 'crash-mid-copy'`,
    );
    expect(d).toEqual({ rows: 80, ids: 80 });
  });

  test('a writer thread that dies after committing a batch causes no duplicate rows on the retry', async () => {
    const svc = await service(
      await target(kind),
      { BATCH_SIZE: '100', BATCH_LINGER_MS: '50' },
      { faults: { crashOnAttempt: { attempt: 1, when: 'crash-after-write' } } },
    );
    for (let i = 0; i < 40; i++) expect((await postEvent(svc.app, ev(i, 'crash-after'))).status).toBe(202);
    await until(() => svc.batcher.stats.written === 40, 30_000, 'batch retried after the crash');
    expect(svc.batcher.stats.failedAttempts).toBeGreaterThanOrEqual(1);
    expect(svc.batcher.stats.recovered).toBe(40);
    expect(await countRows(svc.engine, `service = 'crash-after'`)).toBe(40);
    const [d] = await svc.engine.query<{ n: number }>(`SELECT count(DISTINCT id)::float8 AS n FROM events WHERE service = 'crash-after'`);
    expect(d!.n).toBe(40);
  });

  test('a writer thread that fails between batches is replaced: the process goes on and every event is written', async () => {
    const lines: string[] = [];
    const uncaught: unknown[] = [];
    const onError = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onError);
    try {
      const svc = await service(
        await target(kind),
        { BATCH_SIZE: '100', BATCH_LINGER_MS: '50' },
        { log: createLogger('warn', (l) => lines.push(l)), faults: { crashOnAttempt: { attempt: 1, when: 'stray-error-after-write' } } },
      );
      for (let i = 0; i < 40; i++) expect((await postEvent(svc.app, ev(i, 'stray'))).status).toBe(202);
      await until(() => lines.some((l) => l.includes('a writer thread failed between batches')), 30_000, 'the thread to fail and be logged');
      for (let i = 40; i < 80; i++) expect((await postEvent(svc.app, ev(i, 'stray'))).status).toBe(202);
      await until(() => svc.batcher.stats.written === 80, 30_000, 'every event written by the thread that took its place');
      expect(await countRows(svc.engine, `service = 'stray'`)).toBe(80);
      expect(lines.find((l) => l.includes('between batches'))).toContain('ECONNRESET');
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(uncaught).toEqual([]);
  });

  test('a restart on the same data keeps every event and still accepts new ones', async () => {
    const t = await target(kind);
    const first = await startService(t);
    for (let i = 0; i < 10; i++) expect((await postEvent(first.app, ev(i, 'restart'))).status).toBe(202);
    expect(await first.stop()).toEqual({ unwritten: 0, spilled: 0 });

    const second = await service(t);
    const page = (await (await second.app.request('/events?service=restart&pageSize=100')).json()) as { pagination: { total: number } };
    expect(page.pagination.total).toBe(10);
    const migrations = await second.engine.query<{ version: number }>('SELECT version FROM aurore_migrations ORDER BY version');
    expect(migrations.map((m) => m.version)).toEqual([...new Set(loadMigrations().map((m) => m.version))]); // each once (one edition of 003)
    for (let i = 10; i < 15; i++) expect((await postEvent(second.app, ev(i, 'restart'))).status).toBe(202);
    await until(() => second.batcher.stats.written === 5);
    expect(await countRows(second.engine, `service = 'restart'`)).toBe(15);
    // Hypertable inserts go through TimescaleDB on a reopened database (engine.ts: LOAD first).
    const [chunks] = await second.engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'events'`);
    expect(chunks!.n).toBeGreaterThanOrEqual(1);
  });

  test('events the database could not take before shutdown are saved, then written at the next start', async () => {
    const t = await target(kind);
    const dataDir = t.env.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'aurore-spill-'));
    const never = new Promise<void>(() => {}); // the database never takes a write during the first run
    const first = await startService(t, { DATA_DIR: dataDir, SHUTDOWN_TIMEOUT_MS: '300' }, { faults: { beforeWrite: () => never } });
    for (let i = 0; i < 12; i++) expect((await postEvent(first.app, ev(i, 'spill'))).status).toBe(202);
    expect(await first.stop()).toEqual({ unwritten: 12, spilled: 12 });
    const spillDir = join(dataDir, 'spill');
    const files = readdirSync(spillDir);
    expect(files).toHaveLength(1);
    expect(statSync(join(spillDir, files[0]!)).mode & 0o777).toBe(0o600);

    const second = await service(t, { DATA_DIR: dataDir });
    expect(await countRows(second.engine, `service = 'spill'`)).toBe(12);
    expect(readdirSync(spillDir)).toEqual([]);
    if (!t.env.DATA_DIR) rmSync(dataDir, { recursive: true, force: true });
  });

  /** A DATA_DIR for the spill (the embedded target's own; a fresh one for the server) whose database exists. */
  async function spillWorld() {
    const t = await target(kind);
    const dataDir = t.env.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'aurore-spill-'));
    if (!t.env.DATA_DIR) cleanupsAfter.push(() => rmSync(dataDir, { recursive: true, force: true }));
    await (await startService(t, { DATA_DIR: dataDir })).stop(); // migrated, then stopped
    return { t, dataDir };
  }
  const record = (i: number, service: string) =>
    `{"id":"00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}","time":"2024-03-01T00:00:${String(i % 60).padStart(2, '0')}.${String(i % 1000).padStart(3, '0')}Z","service":"${service}","message":"spilled ${i}","metadata":{}}`;

  test('spilled events are written before the events that arrive while the service starts', async () => {
    const { t, dataDir } = await spillWorld();
    writeSpill(spillDir(dataDir), `[${Array.from({ length: 20_000 }, (_, i) => record(i, 'spill-first')).join(',')}]`);
    const svc = buildService(t, { DATA_DIR: dataDir });
    services.push(svc);
    // Accepted while the service migrates and replays: they wait in the queue.
    for (let i = 0; i < 50; i++) expect((await postEvent(svc.app, ev(i, 'spill-then'))).status).toBe(202);
    await svc.ready;
    await until(() => svc.queue.depth === 0);
    const [r] = await svc.engine.query<{ spilled_last: string; new_first: string; spilled: number }>(
      `SELECT (SELECT max(ingested_at) FROM events WHERE service = 'spill-first')::text AS spilled_last,
              (SELECT min(ingested_at) FROM events WHERE service = 'spill-then')::text AS new_first,
              (SELECT count(*) FROM events WHERE service = 'spill-first')::int AS spilled`,
    );
    expect(r!.spilled).toBe(20_000);
    expect(r!.spilled_last < r!.new_first).toBe(true);
  });

  test('a replay is idempotent: spilled events already stored add no row', async () => {
    const { t, dataDir } = await spillWorld();
    const stored = await startService(t, { DATA_DIR: dataDir });
    const body = `[${Array.from({ length: 10 }, (_, i) => record(i, 'spill-twice')).join(',')}]`;
    // The API's own form of the same events (id, timestamp): 10 stored now.
    const res = await stored.app.request('/events/batch?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(
        (JSON.parse(body) as { id: string; time: string; service: string; message: string }[]).map((e) => ({
          id: e.id,
          timestamp: e.time,
          service: e.service,
          message: e.message,
        })),
      ),
    });
    expect(res.status).toBe(201);
    await stored.stop();
    writeSpill(spillDir(dataDir), `[${Array.from({ length: 15 }, (_, i) => record(i, 'spill-twice')).join(',')}]`); // the same 10 and 5 more
    const svc = await service(t, { DATA_DIR: dataDir });
    expect(await countRows(svc.engine, `service = 'spill-twice'`)).toBe(15);
    expect(readdirSync(spillDir(dataDir))).toEqual([]);
  });

  test('a replay that fails keeps the file, and the next attempt writes it', async () => {
    const { t, dataDir } = await spillWorld();
    // An operator's trigger that fails every insert of this service (not a data error: the whole
    // statement fails, as a lost connection would).
    const direct = await t.open();
    await direct.exec(`CREATE FUNCTION refuse_replay() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.service = 'spill-kept' THEN RAISE EXCEPTION 'not now'; END IF; RETURN NEW; END $$;
                       CREATE TRIGGER refuse_replay BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_replay();`);
    await direct.close();
    const file = writeSpill(spillDir(dataDir), `[${Array.from({ length: 30 }, (_, i) => record(i, 'spill-kept')).join(',')}]`);
    const svc = buildService(t, { DATA_DIR: dataDir });
    services.push(svc);
    await until(() => (svc.state.startError ?? '').includes('not now'), 20_000, 'the replay to fail');
    expect(existsSync(file)).toBe(true);
    expect(svc.state.ready).toBe(false);
    await svc.engine.exec(`DROP TRIGGER refuse_replay ON events`);
    await svc.ready;
    expect(existsSync(file)).toBe(false);
    expect(await countRows(svc.engine, `service = 'spill-kept'`)).toBe(30);
  });

  test('events posted while stopping are refused with 503, and stop writes everything accepted before', async () => {
    const svc = await startService(await target(kind), { BATCH_LINGER_MS: '1000' });
    for (let i = 0; i < 20; i++) expect((await postEvent(svc.app, ev(i, 'drain'))).status).toBe(202);
    const stopping = svc.stop();
    const late = await postEvent(svc.app, ev(99, 'drain'));
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).not.toBeNull();
    expect((await svc.app.request('/health')).status).toBe(503);
    expect(await stopping).toEqual({ unwritten: 0, spilled: 0 });
    expect(svc.batcher.stats.written).toBe(20);
  });
});

describe.skipIf(!engines.includes('server'))('several writers [server]', () => {
  test("waiting clients share the busy writer's next commit; only a full batch takes a second writer", async () => {
    const held: (() => void)[] = [];
    const svc = await service(
      await target('server'),
      { WRITERS: '2', BATCH_SIZE: '10', BATCH_LINGER_MS: '0' },
      { faults: { beforeWrite: () => new Promise<void>((r) => held.push(r)) } },
    );
    const waiting = (i: number) => postEvent(svc.app, ev(i, 'writers'), { prefer: 'wait' });
    const first = waiting(0);
    await until(() => held.length === 1, 10_000, 'the first write to start');
    // Partial batches while the first is in flight: no second writer, however many clients wait.
    const more = [1, 2, 3].map(waiting);
    await until(() => svc.queue.pending === 3, 10_000, 'three more events queued');
    await Bun.sleep(200);
    expect(held.length).toBe(1);
    // A full batch (a backlog) does take the second writer.
    const body = Array.from({ length: 10 }, (_, i) => JSON.stringify(ev(100 + i, 'writers'))).join('\n');
    expect((await svc.app.request('/events/batch', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body })).status).toBe(202);
    await until(() => held.length === 2, 10_000, 'a full batch on the second writer');
    // Released: the full batch took the three waiting events first (claims are in arrival order);
    // the rest is the third commit.
    for (const r of held.splice(0)) r();
    await until(() => held.length > 0, 10_000, 'the next write');
    for (const r of held.splice(0)) r();
    const answers = await Promise.all([first, ...more]);
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201]);
    await until(() => svc.batcher.stats.written === 14, 10_000, 'every event written');
    expect(svc.batcher.stats.batches).toBe(3);
  });
});

// A trap that surfaces every time, on any machine: a json value nested far deeper than the thread's
// native stack holds. PostgreSQL parses json recursively, and that parse keeps nothing on the engine's
// own stack (measured: 0 bytes a level), so the thread's stack overflows first (RangeError, at about
// 10,000 levels here) with the engine mid-statement. Not jsonb: building a jsonb takes 80 bytes a
// level of the engine's 64 KB stack, whose overflow (about 750 levels) writes over PostgreSQL's
// own memory without any error: from there anything can happen, and in CI that statement looped for
// ever. Ingest keeps metadata far from that (METADATA_MAX_DEPTH); no test can rely on what it does.
const nestedJson = (depth: number) => `{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`;

// One trap in a process of its own, on a copy of a migrated database: a json value `depth` levels
// deep (by query, or by exec in a transaction), then a plain statement. Prints each outcome. A
// thread frozen in the engine prints nothing more: the parent kills it.
const TRAP_CHILD = `
const { openEmbedded } = await import(process.argv[1]);
const [dir, depth, how] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const db = await openEmbedded(dir, { locked: true });
const outcome = (p) => p.then(() => 'answered', (e) => 'refused: ' + e.constructor.name + ': ' + e.message);
const deep = '{"a":' + '['.repeat(depth) + ']'.repeat(depth) + '}';
console.log(await outcome(how === 'exec' ? db.exec("SELECT '" + deep + "'::json IS NOT NULL") : db.query('SELECT $1::json IS NOT NULL', [deep])));
console.log(await outcome(db.query('SELECT 1')));
process.exit(0);
`;

async function trapOnce(depth: number, how: 'query' | 'exec') {
  const dir = mkdtempSync(join(tmpdir(), 'aurore-trap-'));
  cleanupsAfter.push(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(await migratedTemplate(), dir, { recursive: true });
  const child = Bun.spawn([process.execPath, '-e', TRAP_CHILD, join(ROOT, 'src/store/engine.ts'), dir, String(depth), how], {
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const killer = setTimeout(() => child.kill(), 10_000);
  const [first = 'no answer', after = 'no answer'] = (await new Response(child.stdout).text()).split('\n').filter(Boolean);
  clearTimeout(killer);
  await child.exited;
  return { depth, how, first, after };
}

describe.skipIf(!engines.includes('embedded'))('the embedded engine trapped [embedded]', () => {
  test('after a trap no statement runs in that instance again: each is refused at once with the same error', async () => {
    // Unfenced, the next statement ran in the engine the trap had left mid-statement: after such a
    // trap it answered as if nothing happened (after deeper ones in the engine's own stack it froze
    // its thread for good, or answered from corrupted memory). Two depths, by query and by exec (a
    // transaction: PGlite runs its ROLLBACK in the broken engine).
    const runs = [];
    for (const depth of [100_000, 1_000_000]) for (const how of ['query', 'exec'] as const) runs.push(await trapOnce(depth, how));
    expect(runs.filter((r) => !r.first.startsWith('refused: RangeError') || r.after !== r.first)).toEqual([]);
  });

  test('a WebAssembly trap in PGlite costs the statements already sent to that instance: the database is reopened from its files and writes go on', async () => {
    const svc = await service(await target('embedded'));
    const stored = (i: number) =>
      svc.app.request('/events?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ev(i, 'trap')) });
    expect((await stored(1)).status).toBe(201);
    // Which instance answers: each PGlite instance has its own start time.
    const instance = () => svc.engine.query<{ started: unknown }>(`SELECT pg_postmaster_start_time()::text AS started`);
    const [{ started: trappedStart }] = (await instance()) as [{ started: unknown }];
    // The trap of nestedJson (above); this statement reaches the engine directly, as any other cause
    // of a trap would.
    const outcome = (p: Promise<{ started: unknown }[]>) =>
      p.then(
        ([r]) => (r?.started === trappedStart ? 'answered by the trapped instance' : 'answered after reopening'),
        () => 'refused',
      );
    const trapped = outcome(svc.engine.query('SELECT $1::json IS NOT NULL AS started', [nestedJson(1_000_000)]));
    // Statements sent while it traps (a read, a maintenance job): those that reached the broken
    // instance are refused; the others run on the reopened one.
    const waiting = Array.from({ length: 3 }, () => outcome(instance()));
    const settled = await Promise.race([Promise.all([trapped, ...waiting]), Bun.sleep(30_000).then(async () => [`no answer in 30 s; ${await busyThreads()}`])]);
    expect(settled[0]).toBe('refused');
    expect(settled.slice(1).filter((o) => o !== 'refused' && o !== 'answered after reopening')).toEqual([]);
    // Without a fresh instance every later write failed with the same trap, for good.
    const after = await Promise.race([stored(2), Bun.sleep(30_000).then(async () => `no answer in 30 s; ${await busyThreads()}`)]);
    expect(typeof after === 'string' ? after : after.status).toBe(201);
    expect(await countRows(svc.engine, `service = 'trap'`)).toBe(2);
    expect(await outcome(instance())).toBe('answered after reopening');
  });
});
