// The query benchmark: `bun run bench:query [--events N] [--quick] [--search-index] [--json] [--keep]`.
// Bulk-loads N events (default 10 million; --quick 1 million) spread over 30 days, 50 services,
// straight into the hypertable with SQL, then measures the service's query API over HTTP, one request
// at a time, each scenario with varied parameters:
//   window:   one service, a 1-hour window, first page of 100 (exact total)
//   page100:  the 100th page of 100 by cursor, one service
//   search:   case-insensitive substring in message, one service, a 1-day window
//   metadata: metadata.user_id=<v>, one service, a 1-day window
//   rare:     a rare substring across ALL events (only with --search-index, the trigram index)
//   business: GET /health/business (from the aggregates)
//   series24h:    GET /metrics/events, every service, the last 24 hours by hour
//   series24h_1m: GET /metrics/events, one service, the last 24 hours by minute
//   total_month_1svc / total_month_all: GET /events totals (count=auto) over a ragged month, one
//             service or all of them, from the aggregates; then each checked against count=exact
//   logql_volume_30d: the Loki query API, sum by (service_name) (count_over_time({service_name=~".+"}[1h]))
//             over the 30 days, step 1h (from the aggregates), as a Grafana panel asks it
//   logql_needle_1h: {service_name="svc-N"} |= "Payment failed", limit 100, over one hour
//   explore_opening: Grafana Explore's first view of one service, one request after another: labels,
//             service_name values, the volume histogram (by level, 1m steps over the hour), the first
//             1,000 lines
//   console_first_view: the web console in Chromium (when /usr/bin/chromium exists): from navigation
//             to the list and the chart drawn, five loads
// The events end at the current hour, so "the last 24 hours" holds data. Before measuring, it waits
// for the service's first maintenance run (the aggregates of everything loaded) and reports its time.
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { createLogger } from '../src/log';
import { migrate } from '../src/store/migrate';
import { ensureSearchIndex } from '../src/store/engine';
import { benchTarget, startServiceProcess } from './target';

const args = process.argv.slice(2);
const flag = (f: string) => args.includes(f);
const quick = flag('--quick');
const searchIndex = flag('--search-index');
const eventsArg = args.indexOf('--events');
const N = eventsArg >= 0 ? Number(args[eventsArg + 1]) : quick ? 1_000_000 : 10_000_000;
const REQUESTS = quick ? 60 : 200;
const ROOT = new URL('..', import.meta.url).pathname;
const progress = (m: string) => process.stderr.write(`[bench:query] ${m}\n`);

const DAYS = 30;
const END = Math.floor(Date.now() / 3_600_000) * 3_600_000;
const SPAN_MS = DAYS * 86_400_000;
const rand = (n: number) => Math.floor(Math.random() * n);

/** The console's first view in Chromium: navigation until the list and the chart are drawn. */
async function consoleFirstView(base: string) {
  const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!existsSync(chromiumPath)) {
    progress(`console first view: skipped (no Chromium at ${chromiumPath})`);
    return null;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  const times: number[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      const t = performance.now();
      await page.goto(`${base}/`);
      await page.waitForSelector('#list tbody tr');
      await page.waitForSelector('#chart canvas');
      if (i > 0) times.push(performance.now() - t); // the first load bundles the page's script
      await page.close();
    }
  } finally {
    await browser.close();
  }
  times.sort((a, b) => a - b);
  return { loads: times.length, median_ms: Math.round(times[Math.floor(times.length / 2)]!), max_ms: Math.round(times.at(-1)!) };
}

const target = await benchTarget('qbench', { trigram: searchIndex });
let svc: Awaited<ReturnType<typeof startServiceProcess>> | undefined;
try {
  progress(`engine: ${target.kind}; ${N.toLocaleString('en')} events over ${DAYS} days; machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  const db = await target.open();
  await migrate(db, createLogger('silent'));
  const CHUNK = 250_000;
  const started = performance.now();
  for (let a = 1; a <= N; a += CHUNK) {
    const b = Math.min(N, a + CHUNK - 1);
    // Event g sits at END - g * step: newest first, evenly over the span. Messages are five kinds with
    // a customer number and an md5 reference (rare substrings to search for); metadata has three keys.
    await db.query(
      `INSERT INTO events (time, id, service, message, metadata)
       SELECT $1::timestamptz - (g * $2::float8) * interval '1 millisecond',
              gen_random_uuid(),
              'svc-' || (g % 50),
              (ARRAY['Order placed','Payment failed','User login','Cache miss','Disk full'])[1 + g % 5]
                || ' for customer ' || (g % 100000) || ' ref ' || md5(g::text),
              jsonb_build_object('user_id', (g % 100000)::text, 'region', (ARRAY['eu','us','ap'])[1 + g % 3], 'status', g % 7)
       FROM generate_series($3::int, $4::int) g`,
      [new Date(END).toISOString(), SPAN_MS / N, a, b],
    );
    const rate = Math.round(b / ((performance.now() - started) / 1000));
    progress(`  loaded ${b.toLocaleString('en')} (${rate.toLocaleString('en')} rows/s)`);
  }
  const loadSeconds = (performance.now() - started) / 1000;
  if (searchIndex) {
    const t = performance.now();
    const err = await ensureSearchIndex(db);
    if (err) throw new Error(`trigram index: ${err}`);
    progress(`  trigram index built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  await db.exec('ANALYZE events', { transaction: false });
  await db.close();

  progress('starting the service');
  // Retention past the loaded span: the benchmark measures queries, not how fast chunks are dropped.
  svc = await startServiceProcess(ROOT, { ...target.env, RETENTION_DAYS: '45', ...(searchIndex ? { SEARCH_INDEX: 'trgm' } : {}) });
  const base = svc.base;
  // The first maintenance run aggregates (and, on the Community edition, compresses) what was loaded.
  const aggStarted = performance.now();
  for (;;) {
    const db = (await (await fetch(`${base}/health/database`)).json()) as {
      aggregates: string;
      jobs: { name: string; runBy: string; runs: number; lastError: string | null; lastSuccessAt: string | null }[];
    };
    const mine = db.jobs.filter((j) => j.runBy === 'service');
    const failed = mine.find((j) => j.lastError);
    if (failed) throw new Error(`job ${failed.name} failed: ${failed.lastError}`);
    if (mine.length && mine.every((j) => j.lastSuccessAt)) {
      progress(`  first maintenance run (${db.aggregates} aggregates): ${((performance.now() - aggStarted) / 1000).toFixed(1)} s`);
      break;
    }
    await Bun.sleep(500);
  }
  const aggregateSeconds = Math.round((performance.now() - aggStarted) / 1000);
  const hourStart = () => END - SPAN_MS + rand(DAYS * 24 - 1) * 3_600_000;
  const iso = (t: number) => new Date(t).toISOString();
  const service = () => `svc-${rand(50)}`;

  const get = async (url: string) => {
    const res = await fetch(url);
    return { res, body: (await res.json()) as never };
  };
  /** Explore's opening requests for one service and hour, in order; the answer of the last (the lines) is returned. */
  async function exploreOpening(path: string) {
    const [, , svcName, hour] = path.split('/');
    const from = Number(hour);
    const range = `start=${BigInt(from) * 1_000_000n}&end=${BigInt(from + 3_600_000) * 1_000_000n}`;
    const sel = encodeURIComponent(`{service_name="${svcName}"}`);
    for (const u of [
      `/loki/api/v1/labels?${range}`,
      `/loki/api/v1/label/service_name/values?${range}`,
      `/loki/api/v1/query_range?query=${encodeURIComponent(`sum by (level, detected_level) (count_over_time({service_name="${svcName}"} | drop __error__ [1m]))`)}&${range}&step=60000ms`,
    ]) {
      const r = await get(`${base}${u}`);
      if (r.res.status !== 200) return r;
    }
    return get(`${base}/loki/api/v1/query_range?query=${sel}&${range}&limit=1000&direction=backward`);
  }

  /** Times REQUESTS requests (after five warm-ups); `make` gives the path and query after the base URL. */
  async function measure(name: string, make: () => string, count: (body: never) => number = (b: { events: unknown[] }) => b.events.length) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < REQUESTS + 5; i++) {
      const path = make();
      const t = performance.now();
      const { res, body } = path.startsWith('/__sequence__/') ? await exploreOpening(path) : await get(`${base}${path}`);
      const ms = performance.now() - t;
      if (res.status !== 200) throw new Error(`${name}: ${res.status} ${JSON.stringify(body)}`);
      if (i >= 5) {
        times.push(ms); // the first five warm the caches and the prepared statements
        rows += count(body);
      }
    }
    times.sort((a, b) => a - b);
    const p = (q: number) => Math.round(times[Math.min(times.length - 1, Math.floor(times.length * q))]! * 10) / 10;
    const r = { name, p50_ms: p(0.5), p95_ms: p(0.95), p99_ms: p(0.99), avg_rows: Math.round(rows / REQUESTS) };
    progress(`  ${name}: p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms (${r.avg_rows} rows per page)`);
    return r;
  }

  const results = [];
  results.push(
    await measure('window', () => {
      const h = hourStart();
      return `/events?service=${service()}&from=${iso(h)}&to=${iso(h + 3_600_000)}&pageSize=100`;
    }),
  );

  // page100: walk 99 pages once per service to get the cursors, then time page 100.
  const cursors: string[] = [];
  for (let s = 0; s < 5; s++) {
    let cursor = '';
    for (let page = 1; page < 100; page++) {
      const r = (await (await fetch(`${base}/events?service=svc-${s}&pageSize=100&count=none${cursor ? `&cursor=${cursor}` : ''}`)).json()) as {
        pagination: { next_cursor: string };
      };
      cursor = r.pagination.next_cursor;
      if (!cursor) throw new Error(`svc-${s} has fewer than 100 pages of 100 events: load more events (--events)`);
    }
    cursors.push(cursor);
  }
  results.push(await measure('page100', () => `/events?service=svc-${rand(5)}&pageSize=100&count=none&cursor=${cursors[rand(5)]}`));
  results.push(
    await measure('search', () => {
      const d = hourStart();
      return `/events?service=${service()}&q=payment%20FAILED&from=${iso(d)}&to=${iso(d + 86_400_000)}&pageSize=100`;
    }),
  );
  results.push(
    await measure('metadata', () => {
      const d = hourStart();
      const user = rand(100000); // user u's events belong to service svc-(u % 50), as loaded
      return `/events?service=svc-${user % 50}&metadata.user_id=${user}&from=${iso(d)}&to=${iso(d + 86_400_000)}&pageSize=100`;
    }),
  );
  if (searchIndex) {
    results.push(await measure('rare', () => `/events?q=ref%20${Math.random().toString(16).slice(2, 8)}&pageSize=100&count=none`));
  }

  // The aggregates: rows = series points, or eventsByHour entries.
  results.push(
    await measure(
      'business',
      () => '/health/business',
      (b: { eventsByHour: unknown[] }) => b.eventsByHour.length,
    ),
  );
  results.push(
    await measure(
      'series24h',
      () => '/metrics/events?bucket=1h',
      (b: { series: { points: unknown[] }[] }) => b.series.reduce((n, s) => n + s.points.length, 0),
    ),
  );
  results.push(
    await measure(
      'series24h_1m',
      () => `/metrics/events?bucket=1m&service=${service()}`,
      (b: { series: { points: unknown[] }[] }) => b.series.reduce((n, s) => n + s.points.length, 0),
    ),
  );

  // The Loki query API, as Grafana asks (nanosecond times, step in ms).
  const ns = (t: number) => `${BigInt(t) * 1_000_000n}`;
  const logql = (q: string, from: number, to: number, extra = '') =>
    `/loki/api/v1/query_range?query=${encodeURIComponent(q)}&start=${ns(from)}&end=${ns(to)}${extra}`;
  const points = (b: { data: { result: { values: unknown[] }[] } }) => b.data.result.reduce((n, s) => n + s.values.length, 0);
  results.push(
    await measure(
      'logql_volume_30d',
      () => logql('sum by (service_name) (count_over_time({service_name=~".+"}[1h]))', END - SPAN_MS + 3_600_000, END, '&step=3600000ms'),
      points,
    ),
  );
  results.push(
    await measure(
      'logql_needle_1h',
      () => {
        const h = hourStart();
        return logql(`{service_name="${service()}"} |= "Payment failed"`, h, h + 3_600_000, '&limit=100&direction=backward');
      },
      points,
    ),
  );
  results.push(await measure('explore_opening', () => `/__sequence__/${service()}/${hourStart()}`, points));
  // Totals over a month (ragged at both ends), one service and all of them: from the aggregates.
  const month = () => `from=${iso(END - SPAN_MS + rand(3_600_000))}&to=${iso(END - rand(3_600_000))}`;
  type Page = { pagination: { total: number; total_is_exact: boolean } };
  results.push(
    await measure(
      'total_month_1svc',
      () => `/events?service=${service()}&${month()}&pageSize=1`,
      (b: Page) => b.pagination.total,
    ),
  );
  results.push(
    await measure(
      'total_month_all',
      () => `/events?${month()}&pageSize=1`,
      (b: Page) => b.pagination.total,
    ),
  );
  // Accuracy: the same ranges counted row by row.
  let worst = 0;
  let allExact = true;
  for (let i = 0; i < 6; i++) {
    const q = `${i % 2 ? '' : `service=${service()}&`}${month()}&pageSize=1`;
    const auto = (await (await fetch(`${base}/events?${q}`)).json()) as Page;
    const exact = (await (await fetch(`${base}/events?${q}&count=exact`)).json()) as Page;
    worst = Math.max(worst, Math.abs(auto.pagination.total - exact.pagination.total) / exact.pagination.total);
    allExact &&= auto.pagination.total_is_exact && auto.pagination.total === exact.pagination.total;
  }
  const totals = { max_error_pct: Math.round(worst * 10_000) / 100, all_exact: allExact };
  progress(`  totals against count=exact: largest error ${totals.max_error_pct}%, every one exact and flagged so: ${allExact}`);

  const consoleView = await consoleFirstView(base);
  if (consoleView) progress(`  console first view: median ${consoleView.median_ms} ms, max ${consoleView.max_ms} ms (${consoleView.loads} loads)`);

  const out = {
    engine: target.kind,
    events: N,
    load_seconds: Math.round(loadSeconds),
    aggregate_seconds: aggregateSeconds,
    search_index: searchIndex,
    requests_per_scenario: REQUESTS,
    totals,
    console_first_view: consoleView,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
    scenarios: results,
  };
  console.log(
    [
      '',
      `| ${target.kind}, ${N.toLocaleString('en')} events${searchIndex ? ', trigram index' : ''} | p50 | p95 | p99 | rows/page |`,
      '| --- | --- | --- | --- | --- |',
      ...results.map((r) => `| ${r.name} | ${r.p50_ms} ms | ${r.p95_ms} ms | ${r.p99_ms} ms | ${r.avg_rows} |`),
      '',
    ].join('\n'),
  );
  if (flag('--json')) console.log(JSON.stringify(out));
} finally {
  if (svc && svc.proc.exitCode === null) {
    svc.proc.kill('SIGTERM');
    await svc.proc.exited;
  }
  if (flag('--keep')) progress(`kept the data: ${JSON.stringify(target.env)}`);
  else await target.destroy();
}
