// The mutation check (`bun run mutations`, run by CI): each entry breaks the code in one small,
// deliberate way, in a scratch copy of the tree, and runs only the tests named for it. A test suite
// that still passes on the broken code has a hole: the check fails naming the breakage that survived.
// A breakage whose text no longer matches the code fails too: update it along with the code.
import { scratch } from './scratch';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

interface Mutation {
  name: string;
  file: string;
  find: string;
  replace: string;
  /** Test files, and a name pattern (bun test -t) selecting the tests that must notice. */
  tests: string[];
  only?: string;
  /** Its tests need the server engine: run with TEST_DATABASE_URL, skipped (and said so) without it. */
  server?: boolean;
}

const MUTATIONS: Mutation[] = [
  {
    name: 'the batch insert without ON CONFLICT DO NOTHING (idempotency of every write path: writers and spill replay)',
    file: 'src/store/write.ts',
    find: '  ON CONFLICT DO NOTHING\n',
    replace: '\n',
    tests: ['test/batch.test.ts'],
    only: 'resent with the same id',
  },
  {
    name: 'the embedded writer holds one batch at a time (PGlite idle while the main thread sends the next)',
    file: 'src/service.ts',
    find: 'maxInFlight: embedded ? 2 : writers,',
    replace: 'maxInFlight: writers,',
    tests: ['test/durability.test.ts'],
    only: 'holding the batch behind',
  },
  {
    name: "no listener for the writer pool's 'error' (a thread failing between batches ends the process)",
    file: 'src/service.ts',
    find: "  pool.on('error', (err: Error) => log.error('a writer thread failed between batches; another took its place', { err }));\n",
    replace: '',
    tests: ['test/durability.test.ts'],
    only: 'fails between batches',
  },
  {
    name: "the server engine keeps postgres.js's reconnect backoff (10-20 s after a few failures)",
    file: 'src/store/engine.ts',
    find: '    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),\n',
    replace: '',
    tests: ['test/driver.test.ts'],
    only: 'failed reconnects',
    server: true,
  },
  {
    name: 'the circuit breaker never opens',
    file: 'src/store/batcher.ts',
    find: "this.breaker = 'open';",
    replace: '',
    tests: ['test/failures.test.ts'],
    only: 'writes failing under load',
  },
  {
    name: '/metrics/events and /health/business open to anyone',
    file: 'src/protect/access.ts',
    find: "paths: ['/events', '/events/:id', '/metrics/events', '/health/business'], scope: 'query', budget: 'query' },",
    replace:
      "paths: ['/events', '/events/:id'], scope: 'query', budget: 'query' },\n  { method: 'GET', paths: ['/metrics/events', '/health/business'], scope: null, budget: 'query' },",
    tests: ['test/auth.test.ts'],
    only: 'demands',
  },
  {
    name: '/health/detailed open to a query key',
    file: 'src/protect/access.ts',
    find: "paths: ['/health/buffer', '/health/database', '/health/detailed', '/metrics'], scope: 'admin', budget: 'health' },",
    replace:
      "paths: ['/health/buffer', '/health/database', '/metrics'], scope: 'admin', budget: 'health' },\n  { method: 'GET', paths: ['/health/detailed'], scope: 'query', budget: 'health' },",
    tests: ['test/auth.test.ts'],
    only: 'demands',
  },
  {
    name: 'the spill replayed after the batcher starts, not awaited',
    file: 'src/service.ts',
    find: '      await replaySpills(spillDir(config.dataDir), engine, log);\n',
    replace: '      setTimeout(() => void replaySpills(spillDir(config.dataDir), engine, log), 0);\n',
    tests: ['test/durability.test.ts'],
    only: 'written before the events that arrive',
  },
  {
    name: 'a spill file deleted even when its replay failed',
    file: 'src/store/spill.ts',
    find: '      const { records, result } = await replayFile(path, engine);\n',
    replace:
      '      const { records, result } = await replayFile(path, engine).catch(() => ({ records: 0, result: { inserted: 0, duplicates: [], rejected: [] } }));\n',
    tests: ['test/durability.test.ts'],
    only: 'replay that fails keeps the file',
  },
  {
    name: 'no lock on the embedded DATA_DIR',
    file: 'src/store/lock.ts',
    find: '  if (!tryLock(fd)) {',
    replace: '  if (false) {',
    tests: ['test/datadir.test.ts'],
    only: 'refused too',
  },
  {
    name: 'a spill file replayed without claiming it',
    file: 'src/store/lock.ts',
    find: 'if (tryLock(fd) && existsSync(path)',
    replace: 'if (existsSync(path)',
    tests: ['test/datadir.test.ts'],
    only: 'cannot be claimed again',
  },
  {
    name: 'totals from the aggregates always called exact',
    file: 'sql/009_count_events_public.sql',
    find: '  exact := aurore_aggregates_exact(services, m1, m2);',
    replace: '  exact := true;',
    tests: ['test/totals.test.ts'],
    only: 'make the total an estimate',
  },
  {
    name: 'Retry-After always the fallback, not the drain rate',
    file: 'src/receive/accept.ts',
    find: '    if (batcher.drainRate < 1) return config.retryAfterSeconds;',
    replace: '    return config.retryAfterSeconds;',
    tests: ['test/promises.test.ts'],
    only: 'Retry-After follows the drain rate',
  },
  {
    name: 'OTLP: service.name not read from the resource',
    file: 'src/receive/otlp.ts',
    find: "const service = typeof res['service.name'] === 'string' ? res['service.name'] : undefined;",
    replace: 'const service = undefined;',
    tests: ['test/receivers.test.ts'],
    only: 'unknown_service',
  },
  {
    name: 'Loki: service taken from job before service_name',
    file: 'src/receive/loki.ts',
    find: "export const SERVICE_LABELS = ['service_name', 'service', 'job', 'app'] as const;",
    replace: "export const SERVICE_LABELS = ['job', 'service_name', 'service', 'app'] as const;",
    tests: ['test/receivers.test.ts'],
    only: 'service from service_name',
  },
  {
    name: "Loki JSON: a timestamp in protobuf's {seconds, nanos} shape read as one (a 500 on {seconds: 'abc'})",
    file: 'src/receive/loki.ts',
    find: "  if (typeof ts === 'bigint') return ts;\n",
    replace: "  if (typeof ts === 'bigint') return ts;\n  if (ts && typeof ts === 'object') return timestampNs(ts as never);\n",
    tests: ['test/receivers.test.ts'],
    only: 'wrong field types',
  },
  {
    name: 'OTLP/JSON: a stringValue read with String() (an object with a toString key: a 500)',
    file: 'src/receive/otlp.ts',
    find: "if ('stringValue' in v) return text(v.stringValue, `${path}.stringValue`);",
    replace: "if ('stringValue' in v) return String(v.stringValue);",
    tests: ['test/receivers.test.ts'],
    only: 'toString or valueOf',
  },
  {
    name: 'GET /events: a search text holding NUL sent to the database (a 500)',
    file: 'src/read/params.ts',
    find: ".max(200, 'must be at most 200 characters').refine(storable, UNSTORABLE)",
    replace: ".max(200, 'must be at most 200 characters')",
    tests: ['test/query.test.ts'],
    only: 'NUL, an unpaired',
  },
  {
    name: 'a PGlite that trapped (WebAssembly RuntimeError) kept by its writer thread',
    file: 'workers/writer.ts',
    find: '  if (!isEngineBroken(e) || db !== opened) return;',
    replace: '  return;',
    tests: ['test/durability.test.ts'],
    only: 'WebAssembly trap',
  },
  {
    name: 'a database probe waits for ever on a writer thread that never answers',
    file: 'src/app.ts',
    find: "'/health/business', '/health/database', '/health/detailed'",
    replace: "'/health/business', '/health/detailed'",
    tests: ['test/shutdown.test.ts'],
    only: 'instead of waiting with it',
  },
  {
    name: 'the stop waits for ever for a writer thread that never answers',
    file: 'src/service.ts',
    find: '  if (!(await within(closed, waitedMs))) log.error(',
    replace: '  if (!(await closed.then(() => true))) log.error(',
    tests: ['test/shutdown.test.ts'],
    only: 'never answers',
  },
  {
    name: 'a PGlite that trapped runs the next statement (in an engine stopped mid-statement)',
    file: 'src/store/engine.ts',
    find: '    if (failure) throw failure;\n',
    replace: '\n',
    tests: ['test/durability.test.ts'],
    only: 'no statement runs in that instance again',
  },
  {
    name: 'metadata of any depth accepted (750 levels corrupt the embedded engine)',
    file: 'src/event.ts',
    find: '  if (levels === 0) return true;',
    replace: '  if (levels === 0) return false;',
    tests: ['test/ingest.test.ts'],
    only: 'nested deeper than 64',
  },
  {
    name: "agents' keys collected in plain objects (a '__proto__' attribute or label lost)",
    file: 'src/receive/fit.ts',
    find: 'Object.create(null) as Record<string, T>;',
    replace: '({}) as Record<string, T>;',
    tests: ['test/receivers.test.ts'],
    only: 'named __proto__',
  },
  {
    name: '/health/business: eventsByService built by assignment (a service named __proto__ missing)',
    file: 'src/read/metrics.ts',
    find: 'const eventsByService = Object.fromEntries(byService.map((s) => [s.service, s.events]));',
    replace: 'const eventsByService: Record<string, number> = {};\n  for (const s of byService) eventsByService[s.service] = s.events;',
    tests: ['test/aggregates.test.ts'],
    only: 'named __proto__',
  },
  {
    name: '/metrics/events: any number of points (services x buckets) built in one answer',
    file: 'src/read/metrics.ts',
    find: '  if (services * buckets <= max) return;',
    replace: '  return;',
    tests: ['test/aggregates.test.ts'],
    only: 'bounded size',
  },
  {
    name: 'reads never cancelled: a timed-out or abandoned query runs on to its end on the server',
    file: 'src/store/engine.ts',
    find: '      const cancel = () => void pending.cancel();',
    replace: '      const cancel = () => {};',
    tests: ['test/query.test.ts'],
    only: 'end with their request',
    server: true,
  },
  {
    name: 'embedded reads in one statement: a long search holds every write until it ends',
    file: 'src/read/events.ts',
    find: "const scansInSlices = (engine: Engine, q: ListQuery) => engine.kind === 'embedded' && ",
    replace: "const scansInSlices = (engine: Engine, q: ListQuery) => false && engine.kind === 'embedded' && ",
    tests: ['test/query.test.ts'],
    only: 'a write waits for a slice',
  },
  {
    name: 'time slices that overlap at their edges (an event on an edge read twice)',
    file: 'src/read/slices.ts',
    find: ': `time >= ${a} AND time < ${b}`, first ? [iso(next)] : [iso(next), iso(edge)]',
    replace: ': `time >= ${a} AND time <= ${b}`, first ? [iso(next)] : [iso(next), iso(edge)]',
    tests: ['test/query.test.ts'],
    only: 'exactly one slice',
  },
  {
    name: 'OTLP/Loki ids random: a retried export stored twice',
    file: 'src/receive/fit.ts',
    find: ': stableUuidV7(ms, `${m.timeNs}:${place}:${body}`);',
    replace: ": Bun.randomUUIDv7('hex', ms);",
    tests: ['test/receivers.test.ts'],
    only: 'retries a request',
  },
  {
    name: 'a long OTLP message refused instead of cut',
    file: 'src/receive/fit.ts',
    find: '    const message = cutText(cleanText(m.message), limits.messageMaxLength);',
    replace:
      "    if (m.message.length > limits.messageMaxLength) return { error: 'message too long' };\n    const message = cutText(cleanText(m.message), limits.messageMaxLength);",
    tests: ['test/receivers.test.ts'],
    only: 'cut with a marker',
  },
  {
    name: 'maintenance jobs run by every instance, not only the lease holder',
    file: 'src/maintain/scheduler.ts',
    find: '    if (stopped || !lease.held()) return;',
    replace: '    if (stopped) return;',
    tests: ['test/instances.test.ts'],
    only: 'one instance at a time',
    server: true,
  },
  {
    name: 'reads stay on a replica that stopped answering',
    file: 'src/store/replica.ts',
    find: "      use('primary', `the replica does not answer: ${(err as Error).message}`);",
    replace: '',
    tests: ['test/replica.test.ts'],
    only: 'fall back to the primary',
    server: true,
  },
  {
    name: 'HTTP_PROCESSES: /metrics answers for one process only',
    file: 'src/observe/prometheus.ts',
    find: '      if (!peers) return registry.metrics();',
    replace: '      if (peers || !peers) return registry.metrics();',
    tests: ['test/instances.test.ts'],
    only: 'both processes take connections',
    server: true,
  },
  {
    name: 'queue space never released',
    file: 'src/store/queue.ts',
    find: '    this.releasePos = b.end;\n',
    replace: '',
    tests: ['test/queue.test.ts'],
  },
  {
    name: 'a rate threshold without samples passes in the k6 runner',
    file: 'loadtest/k6run/metrics.ts',
    find: 'values.filter((v) => v !== 0).length / values.length : NaN;',
    replace: 'values.filter((v) => v !== 0).length / values.length : 1;',
    tests: ['test/k6.test.ts'],
    only: 'aggregates as k6 does',
  },
  {
    name: 'COPY text without the metadata backslashes doubled (COPY would read them as escapes)',
    file: 'src/store/record.ts',
    find: "if (metadata.includes('\\\\')) metadata = metadata.replaceAll('\\\\', '\\\\\\\\');",
    replace: '',
    tests: ['test/write.test.ts'],
    only: 'exactly as the INSERT path',
  },
  {
    name: 'a COPY refused for a stored event is not written again through the INSERT path',
    file: 'src/store/write.ts',
    find: '      // database refuses. The COPY wrote nothing: the INSERT path sorts the rows out.\n      if (!isDataError(e)) throw e;',
    replace: '      throw e;',
    tests: ['test/write.test.ts'],
    only: 'already-stored event',
  },
  {
    name: 'a batch read and parsed before the full queue refuses it',
    file: 'src/receive/accept.ts',
    find: '      if (room) this.assertRoom(c.req.raw);\n',
    replace: '',
    tests: ['test/durability.test.ts'],
    only: 'before its body is read',
  },
  {
    name: 'partial batches spread over several writers (smaller commits side by side)',
    file: 'src/store/batcher.ts',
    find: '      if (waiting < this.opts.size && this.inFlight.length > 0 && !this.flushAll) break;\n',
    replace: '',
    tests: ['test/durability.test.ts'],
    only: 'only a full batch takes a second writer',
    server: true,
  },
  {
    name: "the single-event 202 (its own Response) without the budget's RateLimit headers",
    file: 'src/receive/events.ts',
    find: '    writeRateLimitHeaders(res.headers, c, windowMs);\n',
    replace: '',
    tests: ['test/limits.test.ts'],
    only: 'announces',
  },
  {
    name: 'a waiting POST /events not cut at a REQUEST_TIMEOUT_MS shorter than WAIT_TIMEOUT_MS (it has no timeout middleware)',
    file: 'src/receive/accept.ts',
    find: '  if (!outcome && cut) throw',
    replace: '  if (false) throw',
    tests: ['test/observe.test.ts'],
    only: 'outlives REQUEST_TIMEOUT_MS',
  },
  {
    name: "the request histogram's buckets not cumulative (each counts only its own range)",
    file: 'src/observe/prometheus.ts',
    find: 'value: (seen += counts[i]!)',
    replace: 'value: (seen += counts[i]!) && counts[i]!',
    tests: ['test/observe.test.ts'],
    only: 'counters move with traffic',
  },
  {
    name: "agents' timestamps before 1970 truncated toward zero (an invalid time, the record refused)",
    file: 'src/receive/fit.ts',
    find: '(a >= 0n ? a / b : (a - b + 1n) / b)',
    replace: '(a / b)',
    tests: ['test/receivers.test.ts'],
    only: 'before 1970 as after',
  },
  {
    name: "an agent's record from before 1970 given a negative time in its id (not a UUID: the record refused)",
    file: 'src/receive/fit.ts',
    find: '  ms = Math.max(0, ms);\n',
    replace: '',
    tests: ['test/receivers.test.ts'],
    only: 'a record from before 1970',
  },
  {
    name: 'HTTP_PROCESSES: a process whose supervisor was killed goes on serving (orphaned)',
    file: 'src/main.ts',
    find: "  setInterval(() => process.ppid !== supervisor && void shutdown('supervisor gone'), 1000).unref();\n",
    replace: '',
    tests: ['test/instances.test.ts'],
    only: 'supervisor killed outright',
    server: true,
  },
  {
    name: "the benchmark's CPU split charging writer threads to the runtime",
    file: 'loadtest/cpu.ts',
    find: ": t.comm === 'Worker' ? 'writers' : 'runtime'",
    replace: ": 'runtime'",
    tests: ['test/bench-cpu.test.ts'],
  },
  {
    name: "Bun's body cap from BODY_MAX_BYTES alone (a batch over 1 MB cut off with a bare 413)",
    file: 'src/main.ts',
    find: 'maxRequestBodySize: Math.max(config.limits.bodyMaxBytes, config.limits.batchMaxBytes) * 4,',
    replace: 'maxRequestBodySize: config.limits.bodyMaxBytes * 4,',
    tests: ['test/bodies.test.ts'],
    only: 'just under BATCH_MAX_BYTES',
  },
  {
    name: 'a body read never gives its bytes back to BODY_BUDGET_BYTES',
    file: 'src/receive/body.ts',
    find: '      this.budget.give(mine);\n',
    replace: '',
    tests: ['test/bodies.test.ts'],
    only: 'budget',
  },
  {
    name: 'single events (read in one call) not counted in BODY_BUDGET_BYTES',
    file: 'src/receive/body.ts',
    find: '      this.budget.take(declared);\n',
    replace: '',
    tests: ['test/bodies.test.ts'],
    only: 'budget',
  },
  {
    name: 'a declared Content-Length held in the budget before any of it arrives',
    file: 'src/receive/body.ts',
    find: 'const ONE_READ_MAX = 4 * 1024;',
    replace: 'const ONE_READ_MAX = Infinity;',
    tests: ['test/bodies.test.ts'],
    only: 'budget',
  },
  {
    name: 'a large answer never gives its bytes back to READ_BUDGET_BYTES when its client goes away',
    file: 'src/read/send.ts',
    find: '      cancel: release,\n',
    replace: '      cancel() {},\n',
    tests: ['test/bodies.test.ts'],
    only: 'answers being sent',
  },
  {
    name: 'large answers sent whatever READ_BUDGET_BYTES holds',
    file: 'src/read/send.ts',
    find: '  budget.assertFits(bytes.length);\n',
    replace: '',
    tests: ['test/bodies.test.ts'],
    only: 'answers being sent',
  },
  {
    name: 'small answers (under 64 KB) refused by READ_BUDGET_BYTES too',
    file: 'src/read/send.ts',
    find: 'const LARGE = 64 * 1024;',
    replace: 'const LARGE = 0;',
    tests: ['test/bodies.test.ts'],
    only: 'answers being sent',
  },
  {
    name: 'rate limits fail closed when Redis is gone (every request an error)',
    file: 'src/protect/shared-store.ts',
    find: '            fault(e);\n            return uncounted();\n',
    replace: '            throw e;\n',
    tests: ['test/limits.test.ts'],
    only: 'Redis is gone',
  },
  {
    name: 'a hung Redis asked by every request (each waits the timeout)',
    file: 'src/protect/shared-store.ts',
    find: '          if (!up && Date.now() < probeAt) return uncounted();\n',
    replace: '',
    tests: ['test/limits.test.ts'],
    only: 'Redis is gone',
  },
  {
    name: 'shutdown waits for requests in flight without a bound (a trickling client holds it 60 s)',
    file: 'src/main.ts',
    find: 'if (!(await Promise.race([inFlight.then(() => true), Bun.sleep(config.shutdownTimeoutMs / 2).then(() => false)]))) {',
    replace: 'if (!(await inFlight.then(() => true))) {',
    tests: ['test/shutdown.test.ts'],
    only: 'trickling',
  },
  {
    name: "a client's aborted body logged as an internal error",
    file: 'src/receive/body.ts',
    find: '  e instanceof ApiError ? e : new ApiError(',
    replace: '  e ? (e as ApiError) : new ApiError(',
    tests: ['test/shutdown.test.ts'],
    only: 'trickling',
  },
  {
    name: '/health/business sums every day kept on every request',
    file: 'src/read/history.ts',
    find: 'if (kept && kept.before === before',
    replace: 'if (false && kept && kept.before === before',
    tests: ['test/aggregates.test.ts'],
    only: 'business totals',
  },
  {
    name: "/health/business keeps the past days' totals through the jobs' runs",
    file: 'src/read/history.ts',
    find: ' && kept.runs === jobRuns()',
    replace: '',
    tests: ['test/aggregates.test.ts'],
    only: 'business totals',
  },
  {
    name: 'events the database refused kept forever (events_rejected never trimmed)',
    file: 'src/maintain/scheduler.ts',
    find: "const jobs: Job[] = [job('retention events_rejected', HOURLY, rejectedRetention(engine, config, stopped))];",
    replace: 'const jobs: Job[] = [];',
    tests: ['test/aggregates.test.ts'],
    only: 'quarantine retention',
  },
  {
    name: 'the quarantine trimmed by one part of 10,000 rows a run',
    file: 'src/maintain/retention.ts',
    find: 'if (row!.n < TRIM_ROWS || stopped()) break;',
    replace: 'break;',
    tests: ['test/aggregates.test.ts'],
    only: 'quarantine retention',
  },
  {
    name: '/health/business sent whatever READ_BUDGET_BYTES holds (its answer names every service)',
    file: 'src/read/metrics.ts',
    find: 'return sendJson(c, await businessMetrics(requestEngine(c, engine, config.requestTimeoutMs), history, Date.now(), readScope(c)), answers);',
    replace: 'return c.json(await businessMetrics(requestEngine(c, engine, config.requestTimeoutMs), history, Date.now(), readScope(c)));',
    tests: ['test/bodies.test.ts'],
    only: 'eventsByService',
  },
  {
    name: 'aggregates held by a transaction left open, every rollup run saying it succeeded',
    file: 'src/maintain/aggregates.ts',
    find: "    await assertNotHeld(engine, 'rollup', config);\n",
    replace: '',
    tests: ['test/aggregates.test.ts'],
    only: 'held by an open transaction',
    server: true,
  },
  {
    name: "no takeover: a policy the database's scheduler stopped running is left unrun (retention never drops a chunk)",
    file: 'src/maintain/scheduler.ts',
    find: "    if (d.action === 'take over') {",
    replace: "    if (d.action === 'take over' && false) {",
    tests: ['test/takeover.test.ts'],
    only: 'within two periods',
    server: true,
  },
  {
    name: 'a negated line filter\'s negation dropped in the SQL (!= "x" reads the lines that hold x)',
    file: 'src/read/loki/sql.ts',
    find: "      w.sql.push(f.op === '|=' ? `(${parts.join(' OR ')})` : `NOT (${parts.join(' OR ')})`);",
    replace: "      w.sql.push(`(${parts.join(' OR ')})`);",
    tests: ['test/loki-query.test.ts'],
    only: 'negated line filters',
  },
  {
    name: "a negated line filter's negation dropped in the pipeline",
    file: 'src/read/loki/pipeline.ts',
    find: "  return f.op === '|=' || f.op === '|~' ? any : (line) => !any(line);",
    replace: '  return any;',
    tests: ['test/loki-query.test.ts'],
    only: 'negated line filters',
  },
  {
    name: 'label matcher regexes not anchored (=~"check" matches checkout)',
    file: 'src/read/loki/regex.ts',
    find: 'export function compile(source: string, anchored: boolean): Compiled {',
    replace: 'export function compile(source: string, _anchored: boolean): Compiled {\n  const anchored = false;',
    tests: ['test/loki-query.test.ts'],
    only: 'negated line filters',
  },
  {
    name: 'a != label matcher read as = in the SQL',
    file: 'src/read/loki/sql.ts',
    find: "    w.sql.push(`${col} ${m.op === '=' ? '=' : '<>'} ${param(w, m.value)}::text`);",
    replace: '    w.sql.push(`${col} = ${param(w, m.value)}::text`);',
    tests: ['test/loki-query.test.ts'],
    only: 'negated line filters',
  },
  {
    name: 'a range window [t - range, t] instead of (t - range, t] on the raw rows',
    file: 'src/read/loki/metric.ts',
    find: '      while (a < s.us.length && s.us[a]! <= lo) a++;',
    replace: '      while (a < s.us.length && s.us[a]! < lo) a++;',
    tests: ['test/loki-query.test.ts'],
    only: 'count_over_time windows',
  },
  {
    name: "the aggregates' windows without the events on their edges (bucket [t - range, t) for (t - range, t])",
    file: 'src/read/loki/aggregates.ts',
    find: '      let n = (g.edge.get(t) ?? 0) - (g.edge.get(t - m.rangeMs) ?? 0);',
    replace: '      let n = 0;',
    tests: ['test/loki-query.test.ts'],
    only: 'count_over_time windows',
  },
  {
    name: 'categorize-labels ignored (Grafana gets every label as a stream label)',
    file: 'src/read/loki/routes.ts',
    find: '  const categorize = (c: Context) =>',
    replace: '  const categorize = (c: Context) => false &&',
    tests: ['test/loki-query.test.ts'],
    only: 'as Explore sends it',
  },
  {
    name: "binary operators without PromQL's precedence (a - b - c * d read right to left)",
    file: 'src/read/loki/parse.ts',
    find: "      const right = parse(op === '^' ? p : p + 1);",
    replace: '      const right = parse(0);',
    tests: ['test/loki-query.test.ts'],
    only: 'arithmetic with scalars',
  },
  {
    name: "the key's service scope dropped from the Loki query API's SQL (aggregates, label values)",
    file: 'src/read/loki/sql.ts',
    find: '  if (!scope) return;\n  w.sql.push',
    replace: '  return;\n  w.sql.push',
    tests: ['test/tenants.test.ts'],
    only: 'Loki query API',
  },
  {
    name: 'a key sent as the basic-auth password not read',
    file: 'src/protect/auth.ts',
    find: '  const basic = BASIC.exec(header);',
    replace: '  const basic = null as RegExpExecArray | null;',
    tests: ['test/auth.test.ts'],
    only: 'basic-auth password',
  },
  {
    name: "the Loki query API's time bounds bound as timestamptz (postgres.js drops their microseconds: an event exactly at a window's end is missed on the server)",
    file: 'src/read/loki/sql.ts',
    find: '`time < ${param(w, usIso(toUs))}::text::timestamptz`',
    replace: '`time < ${param(w, usIso(toUs))}::timestamptz`',
    tests: ['test/loki-query.test.ts'],
    only: 'exactly at the last step',
    server: true,
  },
  {
    name: "the aggregates' edge events matched with time = ANY($1) (a 500 on compressed chunks: a vectorized filter TimescaleDB fails to evaluate)",
    file: 'src/read/loki/aggregates.ts',
    find: "     FROM unnest($1::text[]) AS x(at) JOIN events e ON e.time = x.at::timestamptz\n     ${exact.sql.length ? `WHERE ${exact.sql.join(' AND ')}` : ''} GROUP BY 1, 2`,",
    replace:
      "     FROM events e WHERE e.time = ANY($1::text[]::timestamptz[])\n     ${exact.sql.length ? `AND ${exact.sql.join(' AND ')}` : ''} GROUP BY 1, 2`,",
    tests: ['test/loki-query.test.ts'],
    only: 'over compressed chunks',
  },
  {
    name: 'a refresh refused for a concurrent one (55P03) is not waited out: "late events" fails whenever the database refreshes the same aggregate',
    file: 'src/maintain/policies.ts',
    find: 'const REFRESH_TRIES = 6;',
    replace: 'const REFRESH_TRIES = 1;',
    tests: ['test/takeover.test.ts'],
    only: 'concurrent refresh',
    server: true,
  },
  {
    name: 'a takeover counted from the last run without its period (a policy is taken over whenever it has run once)',
    file: 'src/maintain/takeover.ts',
    find: '  if (waited > OVERDUE_PERIODS * periodMs) {',
    replace: '  if (waited > 0) {',
    tests: ['test/takeover.test.ts'],
    only: 'who runs a policy',
  },
  {
    name: "a taken-over policy never handed back (the service runs it forever beside the database's scheduler)",
    file: 'src/maintain/takeover.ts',
    find: "return job.takenOverAt !== null && succeeded > job.takenOverAt ? { action: 'hand back' } : { action: 'keep' };",
    replace: "return { action: 'keep' };",
    tests: ['test/takeover.test.ts'],
    only: 'handed back',
  },
  {
    name: 'a failure of the exact-totals path turned into an estimate silently (not counted, not logged)',
    file: 'src/read/events.ts',
    find: "    fallbacks?.report('exact_total', err, 'totals from the aggregates failed: GET /events answers an estimate');\n",
    replace: '',
    tests: ['test/totals.test.ts'],
    only: 'aurore_fallbacks_total',
  },
  {
    name: 'the chunk range of the totals read from the catalog column 2.28 removed (every total past 10,000 an estimate there)',
    file: 'sql/009_count_events_public.sql',
    find: `  FROM timescaledb_information.chunks ch
  WHERE ch.hypertable_schema = 'public' AND ch.hypertable_name = 'events';`,
    replace: `  FROM timescaledb_information.chunks ch
  JOIN _timescaledb_catalog.chunk c ON c.table_name = ch.chunk_name AND NOT c.dropped
  WHERE ch.hypertable_schema = 'public' AND ch.hypertable_name = 'events';`,
    tests: ['test/totals.test.ts'],
    only: 'server',
    server: true,
  },
  {
    name: 'the embedded WAL not synced when a statement ends (a 201 that a power loss can take back)',
    file: 'src/store/fsync.ts',
    find: '    const result = run(message);\n    flushWal();\n',
    replace: '    const result = run(message);\n',
    tests: ['test/fsync.test.ts'],
    only: 'every 201 is sent after an fdatasync',
  },
  {
    name: 'embedded data pages written before the WAL that covers them is synced',
    file: 'src/store/fsync.ts',
    find: '    syncWal(); // WAL before data\n    return write(stream, ...rest);',
    replace: '    return write(stream, ...rest);',
    tests: ['test/fsync.test.ts'],
    only: 'every 201 is sent after an fdatasync',
  },
  {
    name: "the embedded engine's data files never synced (a checkpoint that a power loss can tear)",
    file: 'src/store/fsync.ts',
    find: '      sync(() => fsyncSync(stream.nfd!));\n      syncs.files++;\n',
    replace: '      syncs.files++;\n',
    tests: ['test/fsync.test.ts'],
    only: 'every 201 is sent after an fdatasync',
  },
  {
    name: "GET /events without the key's service patterns in its SQL (a pattern key lists every team's events)",
    file: 'src/read/events.ts',
    find: '  if (q.scopeLike) where.push(likeAny(p(q.scopeLike)));\n',
    replace: '',
    tests: ['test/tenants.test.ts'],
    only: 'lists only the key',
  },
  {
    name: "GET /events not narrowed to the key's services",
    file: 'src/read/events.ts',
    find: '    const q = narrow(parse.list(c.req.queries()), readScope(c));',
    replace: '    const q = parse.list(c.req.queries());',
    tests: ['test/tenants.test.ts'],
    only: 'lists only the key',
  },
  {
    name: "a service filter naming another team's service kept as it is",
    file: 'src/read/scope.ts',
    find: '    const kept = q.service.filter((s) => scope.test(s));',
    replace: '    const kept = q.service;',
    tests: ['test/tenants.test.ts'],
    only: 'lists only the key',
  },
  {
    name: "GET /events/:id returns another team's event",
    file: 'src/read/events.ts',
    find: '  const [row] = scope\n',
    replace: '  const [row] = false\n',
    tests: ['test/tenants.test.ts'],
    only: '404, as one that does not exist',
  },
  {
    name: "/metrics/events not narrowed to the key's services",
    file: 'src/read/metrics.ts',
    find: '    const q = narrow(parse.series(c.req.queries()), readScope(c));',
    replace: '    const q = parse.series(c.req.queries());',
    tests: ['test/tenants.test.ts'],
    only: 'count only the key',
  },
  {
    name: "/health/business counts every team's events for a scoped key",
    file: 'src/read/metrics.ts',
    find: 'businessMetrics(requestEngine(c, engine, config.requestTimeoutMs), history, Date.now(), readScope(c)), answers);',
    replace: 'businessMetrics(requestEngine(c, engine, config.requestTimeoutMs), history, Date.now(), null), answers);',
    tests: ['test/tenants.test.ts'],
    only: 'count only the key',
  },
  {
    name: "a batch item for another team's service stored under it",
    file: 'src/receive/events.ts',
    find: '      if (scope && !scope.services.test(ev.service)) {\n        rejected++;',
    replace: '      if (false) {\n        rejected++;',
    tests: ['test/tenants.test.ts'],
  },
  {
    name: "OTLP records and Loki streams for another team's service stored under it",
    file: 'src/receive/accept.ts',
    find: '    if (scope && !scope.services.test(it.service)) {',
    replace: '    if (false) {',
    tests: ['test/tenants.test.ts'],
    only: 'refused per record',
  },
  {
    name: 'a service character class that also takes [ \\ ] ^ _ and ` (A-z)',
    file: 'src/event.ts',
    find: 'export const SERVICE_RE = /^[A-Za-z0-9._:-]+$/;',
    replace: 'export const SERVICE_RE = /^[A-z0-9._:-]+$/;',
    tests: ['test/validate.test.ts'],
    only: 'a service holds only',
  },
  {
    name: 'a key with two scopes keeps only the first',
    file: 'src/config.ts',
    find: "    const scopes = (scopeList ?? '').split('+').filter(Boolean);",
    replace: "    const scopes = (scopeList ?? '').split('+').filter(Boolean).slice(0, 1);",
    tests: ['test/auth.test.ts'],
    only: 'two scopes',
  },
  {
    name: 'the raw retention policy set to the default whatever RETENTION_DAYS says',
    file: 'src/maintain/policies.ts',
    find: '    r.rawDays,\n    r.minuteDays,',
    replace: '    30,\n    r.minuteDays,',
    tests: ['test/aggregates.test.ts'],
    only: 'drops raw chunks past RETENTION_DAYS',
  },
  {
    name: "OTLP's eventName not mapped to metadata.event_name",
    file: 'src/receive/otlp.ts',
    find: "  set('event_name', typeof r.eventName === 'string' ? r.eventName : undefined);\n",
    replace: '',
    tests: ['test/receivers.test.ts'],
    only: 'OpenTelemetry',
  },
  {
    name: 'the decompressed-size cap checked only after inflating the whole body',
    file: 'src/receive/body.ts',
    find: '      if (total > max) throw tooLarge();\n      take(value.length);',
    replace: '      take(value.length);',
    tests: ['test/bodies.test.ts'],
    only: 'bomb is refused after the cap',
  },
  {
    name: 'the fast 202 of POST /events without the browser-safety headers',
    file: 'src/receive/events.ts',
    find: "'x-ingest-ack': 'queued', ...SECURITY_HEADERS });",
    replace: "'x-ingest-ack': 'queued' });",
    tests: ['test/observe.test.ts'],
    only: 'fast 202',
  },
  {
    name: 'metadata.<key>=value matched as a case-blind substring',
    file: 'src/read/events.ts',
    find: '::text[] = ${p(value)}`);',
    replace: "::text[] ILIKE '%' || ${p(value)} || '%'`);",
    tests: ['test/query.test.ts'],
    only: 'filters: several services',
  },
  {
    name: 'eventsLastHour counting 61 minutes',
    file: 'src/read/metrics.ts',
    find: '  const hourStart = minute - 59 * MINUTE;',
    replace: '  const hourStart = minute - 60 * MINUTE;',
    tests: ['test/aggregates.test.ts'],
    only: "eventsLastHour's window",
  },
  {
    name: "a key of service names read the pattern way (its totals past 10,000 the planner's guess)",
    file: 'src/read/scope.ts',
    find: "  if (scope.patterns.every((p) => !p.includes('*'))) return",
    replace: "  if (scope.patterns.every((p) => p.includes('*'))) return",
    tests: ['test/tenants.test.ts'],
    only: 'past 10,000',
  },
];

const ROOT = new URL('..', import.meta.url).pathname;
const log = (m: string) => process.stderr.write(`[mutations] ${m}\n`);

// --check: only whether every breakage still finds its text, exactly once (seconds; the structure
// test runs it, so a change that moves a breakage's code is told at once, not after the whole check).
if (process.argv.includes('--check')) {
  const stale = MUTATIONS.filter((m) => {
    const text = readFileSync(join(ROOT, m.file), 'utf8');
    const at = text.indexOf(m.find);
    return at < 0 || text.indexOf(m.find, at + 1) >= 0;
  });
  for (const m of stale) log(`NO LONGER APPLIES: ${m.name} (${m.file}): update its text along with the code`);
  log(`${MUTATIONS.length - stale.length} of ${MUTATIONS.length} breakages apply`);
  process.exit(stale.length ? 1 : 0);
}

type Outcome = 'killed' | 'killed (timed out)' | 'SURVIVED' | 'NO LONGER APPLIES' | 'skipped (no TEST_DATABASE_URL)';
const serverUrl = process.env.TEST_DATABASE_URL || '';

/** Breaks the code in `dir` as `m` says, runs its tests, puts the code back. */
async function breakAndTest(m: Mutation, dir: string): Promise<{ name: string; outcome: Outcome; seconds: number }> {
  if (m.server && !serverUrl) return { name: m.name, outcome: 'skipped (no TEST_DATABASE_URL)', seconds: 0 };
  const path = join(dir, m.file);
  const original = readFileSync(path, 'utf8');
  const started = performance.now();
  const at = original.indexOf(m.find);
  if (at < 0 || original.indexOf(m.find, at + 1) >= 0) {
    log(`${m.name}: its text is not in ${m.file} exactly once`);
    return { name: m.name, outcome: 'NO LONGER APPLIES', seconds: 0 };
  }
  writeFileSync(path, original.replace(m.find, m.replace));
  log(`${m.name} -> ${m.tests.join(' ')}${m.only ? ` -t '${m.only}'` : ''}`);
  try {
    // The embedded engine (fast, and on every machine), unless the breakage is the server's.
    const env = { ...process.env, TEST_DATABASE_URL: m.server ? serverUrl : '' };
    const p = Bun.spawn([process.execPath, 'test', '--timeout', '120000', ...m.tests, ...(m.only ? ['-t', m.only] : [])], {
      cwd: dir,
      env,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    // A breakage can hang its tests (a wedged thread the process waits for): stopped after 5 minutes,
    // that counts as noticed (the tests did not pass), as mutation tools count a timeout.
    let timedOut = false;
    const guard = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, 300_000);
    const [out, code] = [await new Response(p.stderr).text(), await p.exited];
    clearTimeout(guard);
    // Killed means a test failed on it (not that the run could not start): bun prints ' N fail'.
    const failed = Number(/ (\d+) fail/.exec(out)?.[1] ?? 0);
    const outcome: Outcome = timedOut ? 'killed (timed out)' : code !== 0 && failed > 0 ? 'killed' : 'SURVIVED';
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    log(`  ${outcome} (${seconds} s): ${m.name}`);
    return { name: m.name, outcome, seconds };
  } finally {
    writeFileSync(path, original);
  }
}

// MUTATIONS_ONLY=<text>: only the breakages whose name contains it (while writing a test).
const selected = MUTATIONS.filter((x) => x.name.includes(process.env.MUTATIONS_ONLY ?? ''));
// MUTATION_JOBS breakages at a time, each in its own scratch copy (default: 2 on 2 cores or more).
// A breakage's tests then share the CPU with another's: slower each, never kinder to a breakage
// (load can make a test fail, not make a broken one pass), and CI stays within its time on 2 cores.
const jobs = Math.max(1, Number(process.env.MUTATION_JOBS) || Math.min(2, availableParallelism()));
const dirs = Array.from({ length: Math.min(jobs, selected.length) }, () => scratch(ROOT, 'aurore-mutations-'));
const results: Awaited<ReturnType<typeof breakAndTest>>[] = [];
let next = 0;
try {
  await Promise.all(
    dirs.map(async (dir) => {
      for (let i = next++; i < selected.length; i = next++) results[i] = await breakAndTest(selected[i]!, dir);
    }),
  );
} finally {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
console.log(
  ['', '| breakage | outcome | seconds |', '| --- | --- | --- |', ...results.map((r) => `| ${r.name} | ${r.outcome} | ${r.seconds} |`), ''].join('\n'),
);
const bad = results.filter((r) => r.outcome === 'SURVIVED' || r.outcome === 'NO LONGER APPLIES');
if (bad.length) console.log(`${bad.length} breakage(s) not caught by the tests named for them: ${bad.map((b) => b.name).join('; ')}`);
process.exit(bad.length ? 1 : 0);
