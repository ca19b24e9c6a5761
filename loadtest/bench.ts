// The benchmark: `bun run bench [--quick] [--json]`. A program, not a test.
// Measures, in ONE run on this machine, the ceilings and the service against them:
//   1. database ceiling: the writers' own COPY (src/store/write.ts) into the same hypertable, no HTTP
//   2. HTTP ceiling: a bare Bun.serve answering 202 to the same POST, same load generator, same load
//   3. POST /events, default ack (202 queued): events/s, p50/p99
//   4. POST /events/batch, NDJSON, 500 events per request: events/s
//   5. POST /v1/logs, OTLP protobuf, 500 records per request; POST /loki/api/v1/push, Loki protobuf
//      (snappy), 500 lines per push: events/s, as ratios to the database ceiling like the batch
//   6. POST /events?wait=true (201 committed): events/s, p50/p99
//   6b. the same 50,000 events (client ids) resent round and round: the COPY refused, the INSERT path
//   7. verification: rows in the database == events acknowledged, no duplicate ids
//   Every server (the bare one included) warms up first: a few seconds of single events, not measured.
//   and, in-process, the OTLP and Loki receivers' decoding cost per record
// Engine: embedded by default (a fresh DATA_DIR), or the server in DATABASE_URL (a fresh database is
// created there and dropped afterwards, so point it at a server whose user may create databases).
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/log';
import { migrate } from '../src/store/migrate';
import { makeEventValidator } from '../src/receive/validate';
import { loadConfig } from '../src/config';
import { writeRecords } from '../src/store/write';
import { tmpdir } from 'node:os';
import { bodiesFile, decodingCost, lokiBodies, otlpBody } from './agents';
import { cpuNow, perCpuSecond } from './cpu';
import type { LoadOptions, LoadResult } from './load';
import { benchTarget, startServiceProcess } from './target';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const asJson = args.has('--json');
const SECONDS = quick ? 7 : 20;
// Each server gets the single-event load for a few seconds before it is measured: a fresh process
// runs its first seconds in the JIT's lower tiers (and the embedded engine's WebAssembly in its
// baseline tier, compiled further on helper threads meanwhile); the ratios compare steady states.
const WARM_UP_SECONDS = quick ? 2 : 5;
const ROOT = new URL('..', import.meta.url).pathname;
const BUN = process.execPath;
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

const EVENT = {
  service: 'checkout-service',
  message: 'Order placed successfully for customer after payment authorization',
  metadata: { user_id: '12345', ip_address: '192.168.1.1', order_id: 'ord_98765', amount: 129.99, currency: 'EUR', items: 3, region: 'eu-west-1' },
};
const SINGLE_BODY = JSON.stringify(EVENT);
const NDJSON_BODY = Array.from({ length: 500 }, () => SINGLE_BODY).join('\n');

const target = await benchTarget('bench');
const engineKind = target.kind;
const openDirect = target.open;

/** Microseconds of CPU (service and database) per event. */
const cpuPerEvent = (r: { events: number; cpu: { service_cpu_s: number; database_cpu_s: number } }) =>
  Math.round(((r.cpu.service_cpu_s + r.cpu.database_cpu_s) * 1e6) / Math.max(1, r.events));

function spawnLoad(o: LoadOptions): Promise<LoadResult> {
  // Options go through stdin: a 500-event body is over the kernel's limit for one argument.
  const p = Bun.spawn([BUN, join(ROOT, 'loadtest/load.ts')], { stdin: new TextEncoder().encode(JSON.stringify(o)), stdout: 'pipe', stderr: 'inherit' });
  return new Response(p.stdout).text().then((t) => JSON.parse(t.trim().split('\n').pop()!) as LoadResult);
}

let svc: Awaited<ReturnType<typeof startServiceProcess>>['proc'] | undefined;

/** A load with the CPU the service (and the database server) used for it, backlog included. */
async function measured(
  o: LoadOptions,
  base: string,
): Promise<LoadResult & { cpu: ReturnType<typeof perCpuSecond> & { load_generator_cpu_s: number }; backlog_s: number }> {
  const before = cpuNow(svc!.pid, engineKind === 'server');
  const r = await spawnLoad(o);
  const backlog = await drained(r, base);
  const cpu = perCpuSecond(r.events, before, cpuNow(svc!.pid, engineKind === 'server'));
  return { ...r, backlog_s: backlog, cpu: { ...cpu, load_generator_cpu_s: r.cpu_s } };
}

/** Where a scenario's CPU went, per event: the service's threads by kind, the database, the load generator. */
function cpuSplit(r: Awaited<ReturnType<typeof measured>>) {
  const u = r.cpu.us_per_event;
  const mainBusy = Math.round(((u.main_threads ?? 0) * r.events) / 1e4 / (r.seconds + r.backlog_s));
  return `main ${u.main_threads} (${mainBusy}% of a core) / writers ${u.writer_threads} / runtime ${u.runtime_threads} / database ${u.database} / load generator ${Math.round((r.cpu_s * 1e7) / Math.max(1, r.events)) / 10}`;
}

let warmedUp = 0; // events acknowledged during warm-ups: stored like the rest, checked with them

/** The single-event load, unmeasured, until the server runs warm; its events written before returning. */
async function warmUp(base: string, stored = true) {
  progress(`  warming up: ${WARM_UP_SECONDS}s of single events, not measured`);
  const r = await spawnLoad({
    url: `${base}/events`,
    body: SINGLE_BODY,
    headers: { 'content-type': 'application/json' },
    connections: 32,
    durationMs: WARM_UP_SECONDS * 1000,
    count: 'single',
  });
  if (!stored) return;
  warmedUp += r.events;
  await drained(r, base);
}

/** Waits for the queue to be written; a scenario's rate counts that time (the queue can absorb 100,000 events, a big share of a short run). */
async function drained(r: LoadResult, url: string) {
  const t = performance.now();
  for (;;) {
    const b = (await (await fetch(`${url}/health/buffer`)).json()) as { depth: number };
    if (b.depth === 0) break;
    await Bun.sleep(20);
  }
  const backlogSeconds = (performance.now() - t) / 1000;
  r.eps = Math.round(r.events / (r.seconds + backlogSeconds));
  return Math.round(backlogSeconds * 100) / 100;
}
try {
  // ---- 1. database ceiling -------------------------------------------------------------------------
  progress(`engine: ${engineKind}; ${SECONDS}s per scenario; machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  progress("database ceiling: the writers' COPY of 5,000 rows, one writer, no HTTP");
  const db = await openDirect();
  await migrate(db, createLogger('silent'));
  const validate = makeEventValidator(loadConfig({}).limits);
  const makeBatch = () => {
    const records: string[] = [];
    for (let i = 0; i < 5000; i++) records.push((validate(EVENT) as { record: string }).record.replace('"checkout-service"', '"bench-db-ceiling"'));
    return `[${records.join(',')}]`;
  };
  let dbRows = 0;
  let dbTime = 0;
  const dbDeadline = performance.now() + SECONDS * 1000;
  while (performance.now() < dbDeadline) {
    const json = makeBatch(); // built outside the timed part: the writers receive it ready-made
    const t = performance.now();
    await writeRecords(db, json, 5000, { inserted: 0, duplicates: [], rejected: [] });
    dbTime += performance.now() - t;
    dbRows += 5000;
  }
  const dbCeiling = Math.round(dbRows / (dbTime / 1000));
  await db.close();
  progress(`  ${dbCeiling} rows/s`);

  // ---- 2. HTTP ceiling -------------------------------------------------------------------------------
  progress('HTTP ceiling: bare Bun.serve answering 202');
  const ceil = Bun.spawn([BUN, join(ROOT, 'loadtest/ceiling-server.ts')], { stdout: 'pipe' });
  const ceilUrl = (JSON.parse(new TextDecoder().decode((await ceil.stdout.getReader().read()).value)) as { url: string }).url;
  const json = { 'content-type': 'application/json' };
  await warmUp(ceilUrl, false);
  const http = await spawnLoad({ url: `${ceilUrl}/events`, body: SINGLE_BODY, headers: json, connections: 32, durationMs: SECONDS * 1000, count: 'single' });
  ceil.kill();
  await ceil.exited;
  progress(`  ${http.rps} req/s, p99 ${http.p99_ms} ms`);

  // ---- 3-5. the service --------------------------------------------------------------------------------
  progress('starting the service');
  // The rate limiter runs (its cost is part of the single-event figure) with a budget this run cannot
  // spend: at the default 600,000 requests a minute, a machine taking 30k single events a second
  // used it up during the first scenario, and every batch of the next was refused (429 rate_limited).
  const started = await startServiceProcess(ROOT, { ...target.env, RATE_LIMIT_INGEST: '1000000000' });
  svc = started.proc;
  const base = started.base;
  await warmUp(base);

  progress('POST /events, default ack (202 queued), 32 connections');
  const single = await measured(
    { url: `${base}/events`, body: SINGLE_BODY, headers: json, connections: 32, durationMs: SECONDS * 1000, count: 'single' },
    base,
  );
  const singleBacklog = single.backlog_s;
  progress(
    `  ${single.eps} events/s sustained (backlog written ${singleBacklog}s after the load), p50 ${single.p50_ms} ms, p99 ${single.p99_ms} ms, statuses ${JSON.stringify(single.statuses)}`,
  );

  progress('POST /events/batch, NDJSON, 500 events per request, 4 connections');
  const batch = await measured(
    {
      url: `${base}/events/batch`,
      body: NDJSON_BODY,
      headers: { 'content-type': 'application/x-ndjson' },
      connections: 4,
      durationMs: SECONDS * 1000,
      count: 'batch',
    },
    base,
  );
  const batchBacklog = batch.backlog_s;
  progress(`  ${batch.eps} events/s sustained (backlog ${batchBacklog}s), p99 ${batch.p99_ms} ms per request, statuses ${JSON.stringify(batch.statuses)}`);

  // The agents' protocols, into the same queue. OTLP records without a time of their own are new
  // events each time the body is sent; Loki entries carry theirs, so each push is a distinct body.
  const otlpFile = join(tmpdir(), `aurore-bench-otlp-${process.pid}.bin`);
  const lokiFile = join(tmpdir(), `aurore-bench-loki-${process.pid}.bin`);
  await Bun.write(otlpFile, bodiesFile([otlpBody('checkout-service')]));
  // Enough distinct pushes that none is sent twice: half again what the batch scenario took (Loki
  // runs slower than NDJSON batches), 6 KB each. 4,000 fixed ran out on a machine taking 115k a second.
  const lokiCount = Math.min(40_000, Math.max(quick ? 1500 : 4000, Math.ceil((batch.eps * 1.5 * SECONDS) / 500)));
  progress(`building ${lokiCount} Loki pushes of 500 lines`);
  await Bun.write(lokiFile, bodiesFile(lokiBodies('checkout-service', lokiCount)));
  progress('POST /v1/logs, OTLP protobuf, 500 records per request, 4 connections');
  const otlp = await measured(
    {
      url: `${base}/v1/logs`,
      body: '',
      bodiesFile: otlpFile,
      headers: { 'content-type': 'application/x-protobuf' },
      connections: 4,
      durationMs: SECONDS * 1000,
      count: 500,
    },
    base,
  );
  const otlpBacklog = otlp.backlog_s;
  progress(`  ${otlp.eps} events/s sustained (backlog ${otlpBacklog}s), p99 ${otlp.p99_ms} ms per request, statuses ${JSON.stringify(otlp.statuses)}`);
  progress('POST /loki/api/v1/push, protobuf + snappy, 500 lines per push, 4 connections');
  const loki = await measured(
    {
      url: `${base}/loki/api/v1/push`,
      body: '',
      bodiesFile: lokiFile,
      headers: { 'content-type': 'application/x-protobuf' },
      connections: 4,
      durationMs: SECONDS * 1000,
      count: 500,
    },
    base,
  );
  const lokiBacklog = loki.backlog_s;
  // A push sent again after its first 204 stores nothing new: only distinct ones count as events to find.
  const lokiDistinct = Math.min(loki.ok, lokiCount) * 500;
  if (loki.ok > lokiCount)
    progress(`  WARNING: ${loki.ok} pushes acknowledged for ${lokiCount} distinct bodies: the repeated ones are not counted as events to find`);
  progress(`  ${loki.eps} events/s sustained (backlog ${lokiBacklog}s), p99 ${loki.p99_ms} ms per request, statuses ${JSON.stringify(loki.statuses)}`);
  await Bun.file(otlpFile).delete();
  await Bun.file(lokiFile).delete();

  // Duplicates on purpose: 100 NDJSON bodies of 500 events with the client's ids and timestamps, sent
  // round and round, so most batches hold only events already stored and their COPY is refused.
  const dupFile = join(tmpdir(), `aurore-bench-dups-${process.pid}.bin`);
  const dupBodies = Array.from({ length: 100 }, (_, b) => {
    const at = Date.now() - 3_600_000 + b * 1000;
    return Buffer.from(
      Array.from({ length: 500 }, (_, i) =>
        JSON.stringify({ ...EVENT, service: 'bench-dups', id: Bun.randomUUIDv7('hex', at + i), timestamp: new Date(at + i).toISOString() }),
      ).join('\n'),
    );
  });
  await Bun.write(dupFile, bodiesFile(dupBodies));
  progress('POST /events/batch, the same 50,000 events (client ids) again and again, 4 connections');
  const dups = await measured(
    {
      url: `${base}/events/batch`,
      body: '',
      bodiesFile: dupFile,
      headers: { 'content-type': 'application/x-ndjson' },
      connections: 4,
      durationMs: SECONDS * 1000,
      count: 'batch',
    },
    base,
  );
  await Bun.file(dupFile).delete();
  const dupDistinct = Math.min(dups.bodies_used, dupBodies.length) * 500;
  progress(`  ${dups.eps} events/s acknowledged, ${dups.bodies_used} bodies sent for ${dupBodies.length} distinct (${dupDistinct} distinct events)`);

  progress('POST /events?wait=true (201 committed), 64 connections');
  const durable = await measured(
    { url: `${base}/events?wait=true`, body: SINGLE_BODY, headers: json, connections: 64, durationMs: SECONDS * 1000, count: 'single' },
    base,
  );
  progress(`  ${durable.eps} events/s, p50 ${durable.p50_ms} ms, p99 ${durable.p99_ms} ms, statuses ${JSON.stringify(durable.statuses)}`);

  svc.kill('SIGTERM');
  const code = await svc.exited;
  if (code !== 0) progress(`service exited with ${code}`);

  // What the per-request extras cost on the hot path: the same single-event load with the ingest
  // rate limiter and the request log switched off (same data, restarted service).
  progress('POST /events again, rate limiter and request log off (RATE_LIMIT_INGEST=0 LOG_REQUESTS=none)');
  const bare = await startServiceProcess(ROOT, { ...target.env, RATE_LIMIT_INGEST: '0', LOG_REQUESTS: 'none' });
  svc = bare.proc;
  await warmUp(bare.base);
  const lean = await measured(
    { url: `${bare.base}/events`, body: SINGLE_BODY, headers: json, connections: 32, durationMs: SECONDS * 1000, count: 'single' },
    bare.base,
  );
  progress(`  ${lean.eps} events/s (with them: ${single.eps})`);
  svc.kill('SIGTERM');
  await svc.exited;

  // Every core of one machine (server engine): the single-event load on two service processes
  // sharing the port, against one, in this run.
  let twoProcs: Awaited<ReturnType<typeof measured>> | null = null;
  if (engineKind === 'server') {
    progress('POST /events, HTTP_PROCESSES=2 (two processes, one port), 32 connections');
    const two = await startServiceProcess(ROOT, { ...target.env, HTTP_PROCESSES: '2' });
    svc = two.proc;
    await Bun.sleep(1500); // the second process migrates nothing, but starts its pool
    await warmUp(two.base);
    twoProcs = await measured(
      { url: `${two.base}/events`, body: SINGLE_BODY, headers: json, connections: 32, durationMs: SECONDS * 1000, count: 'single' },
      two.base,
    );
    progress(`  ${twoProcs.eps} events/s (one process: ${single.eps}); CPU per event ${cpuPerEvent(twoProcs)} us (one process: ${cpuPerEvent(single)} us)`);
    svc.kill('SIGTERM');
    await svc.exited;
  }

  // ---- 6. verification -----------------------------------------------------------------------------
  progress('verifying rows against acknowledgements');
  const check = await openDirect();
  const [row] = await check.query<{ rows: number; ids: number }>(
    `SELECT count(*)::float8 AS rows, count(DISTINCT id)::float8 AS ids FROM events WHERE service = 'checkout-service'`,
  );
  const [dupRow] = await check.query<{ rows: number; ids: number }>(
    `SELECT count(*)::float8 AS rows, count(DISTINCT id)::float8 AS ids FROM events WHERE service = 'bench-dups'`,
  );
  await check.close();
  const acknowledged = warmedUp + single.events + batch.events + otlp.events + lokiDistinct + durable.events + lean.events + (twoProcs?.events ?? 0);
  progress("decoding cost of the agents' protocols, in-process");
  const decoding = decodingCost();
  const stored = row!.rows;
  const result = {
    engine: engineKind,
    quick,
    seconds_per_scenario: SECONDS,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    http_ceiling_rps: http.rps,
    db_ceiling_rows: dbCeiling,
    single_eps: single.eps,
    single_p50_ms: single.p50_ms,
    single_p99_ms: single.p99_ms,
    single_statuses: single.statuses,
    single_backlog_s: singleBacklog,
    batch_eps: batch.eps,
    batch_p99_ms: batch.p99_ms,
    batch_statuses: batch.statuses,
    batch_backlog_s: batchBacklog,
    otlp_eps: otlp.eps,
    otlp_statuses: otlp.statuses,
    loki_eps: loki.eps,
    loki_statuses: loki.statuses,
    decoding,
    single_two_processes_eps: twoProcs?.eps ?? null,
    cpu: {
      single: single.cpu,
      batch: batch.cpu,
      resent: dups.cpu,
      otlp: otlp.cpu,
      loki: loki.cpu,
      durable: durable.cpu,
      single_without_limiter_and_request_log: lean.cpu,
      single_two_processes: twoProcs?.cpu ?? null,
    },
    durable_eps: durable.eps,
    durable_p50_ms: durable.p50_ms,
    durable_p99_ms: durable.p99_ms,
    single_eps_without_limiter_and_request_log: lean.eps,
    acknowledged,
    stored,
    lost: Math.max(0, acknowledged - stored) + Math.max(0, dupDistinct - dupRow!.rows),
    duplicated: stored - row!.ids + Math.max(0, stored - acknowledged) + (dupRow!.rows - dupRow!.ids) + Math.max(0, dupRow!.rows - dupDistinct),
    resent: { acknowledged: dups.events, distinct: dupDistinct, stored: dupRow!.rows },
    ratios: {
      single_vs_http: +(single.eps / http.rps).toFixed(3),
      batch_vs_db: +(batch.eps / dbCeiling).toFixed(3),
      otlp_vs_db: +(otlp.eps / dbCeiling).toFixed(3),
      loki_vs_db: +(loki.eps / dbCeiling).toFixed(3),
      durable_vs_single: +(durable.eps / single.eps).toFixed(3),
      two_processes_vs_one: twoProcs ? +(twoProcs.eps / single.eps).toFixed(3) : null,
    },
  };

  const targets: [string, boolean][] = [
    [`single_eps >= 0.25 x http_ceiling_rps      ${result.ratios.single_vs_http}`, result.ratios.single_vs_http >= 0.25],
    [`batch_eps >= 0.95 x db_ceiling_rows        ${result.ratios.batch_vs_db}`, result.ratios.batch_vs_db >= 0.95],
    [`batch events per CPU-second >= 80,000     ${batch.cpu.events_per_cpu_s}`, (batch.cpu.events_per_cpu_s ?? 0) >= 80_000],
    [`otlp_eps >= 0.75 x db_ceiling_rows         ${result.ratios.otlp_vs_db}`, result.ratios.otlp_vs_db >= 0.75],
    [`loki_eps >= 0.75 x db_ceiling_rows         ${result.ratios.loki_vs_db}`, result.ratios.loki_vs_db >= 0.75],
    [`durable_eps >= 0.30 x single_eps           ${result.ratios.durable_vs_single}`, result.ratios.durable_vs_single >= 0.3],
    [`durable_p99_ms <= 30                       ${result.durable_p99_ms}`, result.durable_p99_ms <= 30],
    [`lost == 0 and duplicated == 0              ${result.lost} / ${result.duplicated}`, result.lost === 0 && result.duplicated === 0],
  ];
  const table = [
    '',
    `| ${engineKind} engine, ${result.machine} | figure |`,
    '| --- | --- |',
    `| database ceiling (the writers' COPY, 5k rows, 1 writer) | ${dbCeiling} rows/s |`,
    `| HTTP ceiling (bare Bun.serve, 32 conns) | ${http.rps} req/s, p99 ${http.p99_ms} ms |`,
    `| POST /events, 202 queued (32 conns) | ${single.eps} events/s, p50 ${single.p50_ms} ms, p99 ${single.p99_ms} ms |`,
    `| POST /events/batch, NDJSON x500 (4 conns) | ${batch.eps} events/s; parsing and validating ${decoding.ndjson_us_per_event} us/event (main thread), COPY text ${decoding.copy_text_us_per_event} us/event (writer) |`,
    `| POST /v1/logs, OTLP protobuf x500 (4 conns) | ${otlp.eps} events/s; decoding ${decoding.otlp_protobuf_us_per_record} us/record |`,
    `| POST /loki/api/v1/push, protobuf+snappy x500 (4 conns) | ${loki.eps} events/s; decoding ${decoding.loki_protobuf_us_per_record} us/record |`,
    `| POST /events?wait=true, 201 committed (64 conns) | ${durable.eps} events/s, p50 ${durable.p50_ms} ms, p99 ${durable.p99_ms} ms |`,
    ...(twoProcs
      ? [
          `| POST /events, HTTP_PROCESSES=2 (32 conns) | ${twoProcs.eps} events/s (${result.ratios.two_processes_vs_one} x one process); CPU ${cpuPerEvent(twoProcs)} us/event (one process: ${cpuPerEvent(single)}) |`,
        ]
      : []),
    ...[
      ['single', single],
      ['batch', batch],
      ['otlp', otlp],
      ['loki', loki],
      ['durable', durable],
    ].map(([n, r]) => {
      const c = (r as typeof single).cpu;
      return `| events per CPU-second, ${n} (service+db / service / db) | ${c.events_per_cpu_s} / ${c.events_per_service_cpu_s} / ${c.events_per_database_cpu_s} |`;
    }),
    ...[
      ['single', single],
      ['single without limiter and log', lean],
      ['batch', batch],
      ['otlp', otlp],
      ['loki', loki],
    ].map(
      ([n, r]) =>
        `| CPU us per event, ${n as string}: main threads / writer threads / runtime threads / database / load generator | ${cpuSplit(r as typeof single)} |`,
    ),
    `| the same 50,000 events resent (NDJSON x500, 4 conns) | ${dups.eps} events/s acknowledged; ${dupDistinct} distinct sent, ${dupRow!.rows} stored |`,
    `| POST /events without rate limiter and request log | ${lean.eps} events/s (cost of both: ${Math.round((1 - single.eps / lean.eps) * 100)}%) |`,
    `| acknowledged / stored / lost / duplicated | ${acknowledged} / ${stored} / ${result.lost} / ${result.duplicated} |`,
    '',
    ...targets.map(([t, ok]) => `${ok ? 'MET ' : 'MISS'}  ${t}`),
    '',
  ].join('\n');
  console.log(table);
  if (asJson) console.log(JSON.stringify(result));
  process.exitCode = result.lost === 0 && result.duplicated === 0 ? 0 : 1;
} finally {
  if (svc && svc.exitCode === null) {
    svc.kill('SIGKILL');
    await svc.exited;
  }
  await target.destroy();
}
