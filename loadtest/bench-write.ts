// The write path's levers, measured without HTTP: `bun run bench:write [--quick]`. A program, not a test.
// Each lever writes 5,000-event batches of fresh events (the writers' own COPY text or INSERT
// statement) into the events hypertable for a few seconds and reports rows/s and rows per database
// CPU-second: INSERT ... json_to_recordset against COPY, 1 to 4 writers (server), each index's cost
// (the table without it), a primary key ordered (time, id), and TimescaleDB's direct-to-columnstore
// COPY where the edition has it. Engine: embedded by default, or the server in DATABASE_URL (a
// scratch database, dropped afterwards). The schema is restored after each lever.
import { cpus } from 'node:os';
import { createLogger } from '../src/log';
import { loadConfig } from '../src/config';
import type { Engine } from '../src/store/engine';
import { migrate } from '../src/store/migrate';
import { makeEventValidator, type ValidEvent } from '../src/receive/validate';
import { COPY_EVENTS, copyText, withId } from '../src/store/record';
import { insertRecords } from '../src/store/write';
import { cpuNow } from './cpu';
import { benchTarget } from './target';

const quick = process.argv.includes('--quick');
const SECONDS = quick ? 4 : 10;
const BATCH = 5000;
const progress = (msg: string) => process.stderr.write(`[bench:write] ${msg}\n`);

const target = await benchTarget('write');
const server = target.kind === 'server';
const validate = makeEventValidator(loadConfig({}).limits);
const TEMPLATE = (
  validate({
    service: 'bench-write',
    message: 'Order placed successfully for customer after payment authorization',
    metadata: { user_id: '12345', ip_address: '192.168.1.1', order_id: 'ord_98765', amount: 129.99, currency: 'EUR', items: 3, region: 'eu-west-1' },
  }) as ValidEvent
).record;
/** A batch of fresh events (new UUIDv7 ids, now), as the queue holds it. */
function batch(): string {
  const now = new Date().toISOString();
  const record = TEMPLATE.replace(/"time":"[^"]+"/, `"time":"${now}"`);
  const records = new Array<string>(BATCH);
  for (let i = 0; i < BATCH; i++) records[i] = withId(record, Bun.randomUUIDv7());
  return `[${records.join(',')}]`;
}

type Way = 'insert' | 'copy';

/** Database CPU seconds: the postgres processes (server), or this process itself (PGlite runs in it). */
function dbCpu(): number {
  if (server) return cpuNow(process.pid).database;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function write(engines: Engine[], way: Way) {
  let rows = 0;
  let buildMs = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const cpu0 = dbCpu();
  const t0 = performance.now();
  await Promise.all(
    engines.map(async (db) => {
      while (performance.now() < deadline) {
        const b0 = performance.now();
        const json = batch();
        const text = way === 'copy' ? copyText(json)! : '';
        buildMs += performance.now() - b0;
        if (way === 'copy') {
          await db.copyIn(COPY_EVENTS, [text]);
          rows += BATCH;
        } else {
          const r = { inserted: 0, duplicates: [], rejected: [] };
          await insertRecords(db, json, BATCH, 0, r);
          rows += r.inserted;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  // The batches are built in this process; on the embedded engine that CPU is not the database's.
  const cpu = dbCpu() - cpu0 - (server ? 0 : buildMs / 1000);
  return { rows_per_s: Math.round(rows / seconds), rows_per_db_cpu_s: cpu > 0 ? Math.round(rows / cpu) : null };
}

interface Lever {
  name: string;
  way: Way;
  writers?: number;
  setup?: string; // SQL before (after emptying the table)
  undo?: string; // SQL after
  only?: 'server' | 'embedded' | 'community';
}

const TIME_IDX = `events_time_idx`;
const levers: Lever[] = [
  { name: 'INSERT ... json_to_recordset ON CONFLICT, 1 writer (before)', way: 'insert' },
  { name: 'COPY, 1 writer', way: 'copy' },
  { name: 'COPY, 2 writers', way: 'copy', writers: 2, only: 'server' },
  { name: 'COPY, 4 writers', way: 'copy', writers: 4, only: 'server' },
  {
    name: 'COPY without events_service_time_idx',
    way: 'copy',
    setup: 'DROP INDEX events_service_time_idx',
    undo: 'CREATE INDEX events_service_time_idx ON events (service, time DESC)',
  },
  { name: `COPY without ${TIME_IDX} (time DESC)`, way: 'copy', setup: `DROP INDEX ${TIME_IDX}`, undo: `CREATE INDEX ${TIME_IDX} ON events (time DESC)` },
  {
    name: 'COPY without events_ingested_at_brin',
    way: 'copy',
    setup: 'DROP INDEX events_ingested_at_brin',
    undo: 'CREATE INDEX events_ingested_at_brin ON events USING brin (ingested_at) WITH (pages_per_range = 32)',
  },
  {
    name: `COPY, primary key (time, id), without ${TIME_IDX}`,
    way: 'copy',
    setup: `ALTER TABLE events DROP CONSTRAINT events_pkey; ALTER TABLE events ADD PRIMARY KEY (time, id); DROP INDEX ${TIME_IDX}`,
    undo: `ALTER TABLE events DROP CONSTRAINT events_pkey; ALTER TABLE events ADD PRIMARY KEY (id, time); CREATE INDEX ${TIME_IDX} ON events (time DESC)`,
  },
  {
    name: 'COPY, only the primary key (no secondary index)',
    way: 'copy',
    setup: `DROP INDEX events_service_time_idx; DROP INDEX ${TIME_IDX}; DROP INDEX events_ingested_at_brin`,
    undo: `CREATE INDEX events_service_time_idx ON events (service, time DESC); CREATE INDEX ${TIME_IDX} ON events (time DESC); CREATE INDEX events_ingested_at_brin ON events USING brin (ingested_at) WITH (pages_per_range = 32)`,
  },
  {
    // TimescaleDB 2.21+ (Community): COPY compressed straight into the columnstore. Session setting,
    // so measured on one writer.
    name: 'COPY direct to columnstore (timescaledb.enable_direct_compress_copy)',
    way: 'copy',
    only: 'community',
    setup: `ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'service', timescaledb.compress_orderby = 'time DESC'); SET timescaledb.enable_direct_compress_copy = on`,
    undo: `RESET timescaledb.enable_direct_compress_copy; TRUNCATE events; ALTER TABLE events SET (timescaledb.compress = false)`,
  },
];

async function run() {
  const admin = await target.open();
  await migrate(admin, createLogger('silent'));
  const [ed] = await admin.query<{ license: string | null }>(`SELECT current_setting('timescaledb.license', true) AS license`);
  const community = ed?.license !== 'apache';
  progress(`engine: ${target.kind} (${community ? 'Community' : 'Apache'} edition); ${SECONDS}s per lever; ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  const results: { lever: string; rows_per_s: number; rows_per_db_cpu_s: number | null }[] = [];
  for (const l of levers) {
    if ((l.only === 'server' && !server) || (l.only === 'community' && !community)) continue;
    await admin.exec(`TRUNCATE events`);
    if (l.setup) await admin.exec(l.setup);
    const writers = server ? await Promise.all(Array.from({ length: l.writers ?? 1 }, () => target.open())) : [admin];
    const r = await write(writers, l.way);
    if (server) await Promise.all(writers.map((w) => w.close()));
    if (l.undo) await admin.exec(l.undo);
    progress(`  ${l.name}: ${r.rows_per_s} rows/s, ${r.rows_per_db_cpu_s ?? '?'} rows per database CPU-second`);
    results.push({ lever: l.name, ...r });
  }
  await admin.close();
  return results;
}

try {
  const results = await run();
  console.log(`| lever (${target.kind}) | rows/s | rows per database CPU-second |\n| --- | --- | --- |`);
  for (const r of results) console.log(`| ${r.lever} | ${r.rows_per_s} | ${r.rows_per_db_cpu_s ?? '?'} |`);
} finally {
  await target.destroy();
}
