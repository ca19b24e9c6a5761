// The Loki query API (src/read/loki/) as Grafana's Loki data source and logcli call it: the exact
// requests their source sends (grafana/grafana pkg/tsdb/loki/api.go and healthcheck.go; loki
// pkg/logcli/client/client.go: query strings encoded as Go's url.Values, keys sorted, spaces as
// "+"), over data pushed with the real clients (winston-loki, the OpenTelemetry SDK) and the native
// API, on both engines. Answers are checked against Loki's documented shapes and semantics.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import winston from 'winston';
import LokiTransport from 'winston-loki';
import { engines, newTarget, startService, until, type Target } from './harness';

setDefaultTimeout(120_000);

type Svc = Awaited<ReturnType<typeof startService>>;
const MIN = 60_000;
const HOUR = 60 * MIN;

/** A query string as Go's url.Values.Encode() writes it: keys sorted, QueryEscape (space as "+"). */
export function goQuery(params: [string, string][]): string {
  const esc = (v: string) =>
    encodeURIComponent(v)
      .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
      .replace(/%20/g, '+');
  return [...params]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${esc(k)}=${esc(v)}`)
    .join('&');
}
const ns = (ms: number) => `${BigInt(Math.round(ms)) * 1_000_000n}`;

/** Grafana's range query (makeDataRequest): direction, end, limit (when MaxLines is set), query, start, step in ms. */
const grafanaRange = (expr: string, start: number, end: number, stepMs: number, limit = 1000, direction = 'backward') =>
  `/loki/api/v1/query_range?${goQuery([
    ['query', expr],
    ['direction', direction],
    ['limit', String(limit)],
    ['start', ns(start)],
    ['end', ns(end)],
    ['step', `${stepMs}ms`],
  ])}`;
const grafanaInstant = (expr: string, at: number) =>
  `/loki/api/v1/query?${goQuery([
    ['query', expr],
    ['direction', 'backward'],
    ['time', ns(at)],
  ])}`;
const GRAFANA = { 'X-Loki-Response-Encoding-Flags': 'categorize-labels', 'X-Query-Tags': 'Source=grafana' };

describe.each(engines)('the Loki query API [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  let server: ReturnType<typeof Bun.serve>;
  // Whole minutes, so the aggregates and the raw rows can be compared at bucket edges.
  const T = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const res = await svc.app.request(url, { headers });
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target);
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    // The native API: checkout and billing, one event a minute for 90 minutes from T, some failed,
    // two exactly on window edges (T + 30 min and T + 60 min, to the millisecond).
    const events = [];
    for (let i = 0; i < 90; i++) {
      for (const service of ['checkout', 'billing']) {
        const failed = i % 10 === 0;
        events.push({
          service,
          message: failed ? `payment failed order=${i} took=${i * 10}ms` : `payment ok order=${i} took=${i}ms`,
          timestamp: new Date(T + i * MIN + (i === 30 || i === 60 ? 0 : 1234)).toISOString(),
          metadata: { level: failed ? 'error' : 'info', user: { id: `u${i}` } },
        });
      }
    }
    events.push({
      service: 'json-svc',
      message: JSON.stringify({ status: 503, path: '/pay', latency: '250ms', user: { tier: 'gold' } }),
      timestamp: new Date(T + 5 * MIN).toISOString(),
    });
    events.push({
      service: 'json-svc',
      message: JSON.stringify({ status: 200, path: '/home', latency: '12ms', user: { tier: 'free' } }),
      timestamp: new Date(T + 6 * MIN).toISOString(),
    });
    events.push({ service: 'json-svc', message: 'not json at all', timestamp: new Date(T + 7 * MIN).toISOString() });
    // For the pipeline's stages: nulls, arrays and bytes in JSON, colours, a quoted logfmt value.
    events.push({
      service: 'stages',
      message: JSON.stringify({ status: null, tags: ['a'], size: '2KB', n: 1 }),
      timestamp: new Date(T + 8 * MIN).toISOString(),
    });
    // an agent's coloured line, as stored: ESC as its control picture (receive/fit.ts)
    events.push({ service: 'stages', message: '\u241b[31mred\u241b[0m text', timestamp: new Date(T + 9 * MIN).toISOString() });
    events.push({ service: 'stages', message: 'level=warn msg="quoted \\"value\\" here" code=7', timestamp: new Date(T + 10 * MIN).toISOString() });
    events.push({ service: 'stages', message: '42', timestamp: new Date(T + 11 * MIN).toISOString() }); // JSON, but not an object
    const res = await svc.app.request('/events/batch?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    expect(res.status).toBe(201);

    // winston-loki (protobuf + snappy): labels env and level, one structured-metadata-less stream.
    const transport = new LokiTransport({
      host: `http://127.0.0.1:${server.port}`,
      labels: { service_name: 'winston-app', env: 'prod' },
      batching: true,
      interval: 0.05,
    });
    const logger = winston.createLogger({ transports: [transport] });
    for (let i = 0; i < 5; i++) logger.info(`winston line ${i}`);
    logger.error('winston broke');
    // The OpenTelemetry SDK (OTLP protobuf): promoted and other resource attributes, attributes, severity.
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': 'otel-app', 'k8s.namespace.name': 'shop', 'host.name': 'box-1' }),
      processors: [
        new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${server.port}/v1/logs` }), scheduledDelayMillis: 20 }),
      ],
    });
    provider.getLogger('cart').emit({ body: 'cart updated', severityText: 'WARN', severityNumber: 13, attributes: { 'cart.items': 3 } });
    await provider.forceFlush();
    await provider.shutdown();
    await until(
      async () => {
        const r = await get('/events?service=winston-app&service=otel-app');
        return r.body.events?.length === 7;
      },
      20_000,
      'the winston-loki and OpenTelemetry records to be stored',
    );
    logger.close();
    await svc.state.jobs!.runAll();
  });
  afterAll(async () => {
    server?.stop(true);
    await svc?.stop();
    await target?.destroy();
  });

  test("Grafana's health check (the instant query vector(1)+vector(1) at 4 s) answers 2", async () => {
    const r = await get('/loki/api/v1/query?direction=backward&query=vector%281%29%2Bvector%281%29&time=4000000000');
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('success');
    expect(r.body.data.resultType).toBe('vector');
    // Ten digits are seconds to Loki (loghttp's parseTimestamp), so its answer says 4,000,000,000 s too.
    expect(r.body.data.result).toEqual([{ metric: {}, value: [4_000_000_000, '2'] }]);
  });

  test('status/buildinfo answers a Loki 3.x version, so Grafana turns its features on', async () => {
    const r = await get('/loki/api/v1/status/buildinfo');
    expect(r.body.version).toMatch(/^3\.\d+\.\d+$/);
  });

  test('a log query, as Explore sends it (categorize-labels): newest first, at most limit, stream labels apart from structured metadata', async () => {
    const r = await get(grafanaRange('{service_name="checkout"} |= "failed"', T, T + 2 * HOUR, 1000, 3), GRAFANA);
    expect(r.status).toBe(200);
    expect(r.body.data.encodingFlags).toEqual(['categorize-labels']);
    expect(r.body.data.resultType).toBe('streams');
    expect(r.body.data.result).toHaveLength(1);
    const [s] = r.body.data.result;
    expect(s.stream).toEqual({ service_name: 'checkout' });
    expect(s.values.map((v: unknown[]) => v[1])).toEqual([
      'payment failed order=80 took=800ms',
      'payment failed order=70 took=700ms',
      'payment failed order=60 took=600ms',
    ]);
    expect(s.values[0][0]).toBe(ns(T + 80 * MIN + 1234));
    expect(s.values[0][2]).toEqual({ structuredMetadata: { level: 'error', user_id: 'u80', detected_level: 'error' } });
  });

  test('direction=forward reads oldest first; without categorize-labels every label keys the stream', async () => {
    const r = await get(grafanaRange('{service_name="checkout"} |= "failed"', T, T + 2 * HOUR, 1000, 2, 'forward'));
    expect(r.body.data.encodingFlags).toBeUndefined();
    expect(r.body.data.result.map((s: any) => [s.stream, s.values.map((v: unknown[]) => v[1])])).toEqual([
      [{ service_name: 'checkout', level: 'error', user_id: 'u0', detected_level: 'error' }, ['payment failed order=0 took=0ms']],
      [{ service_name: 'checkout', level: 'error', user_id: 'u10', detected_level: 'error' }, ['payment failed order=10 took=100ms']],
    ]);
  });

  test('what winston-loki and the OpenTelemetry SDK pushed reads back as Loki shows it: labels, structured metadata, detected_level', async () => {
    const w = await get(grafanaRange('{service_name="winston-app", env="prod"}', Date.now() - HOUR, Date.now() + MIN, 1000, 10), GRAFANA);
    // winston-loki writes the entry's other fields after the message: the stored line, as Loki would show it.
    const streams = w.body.data.result.map((s: any) => ({ stream: s.stream, lines: s.values.map((v: unknown[]) => v[1]).sort() }));
    expect(streams.sort((a: any, b: any) => (a.stream.level < b.stream.level ? -1 : 1))).toEqual([
      { stream: { service_name: 'winston-app', env: 'prod', level: 'error' }, lines: ['winston broke {"level":"error"}'] },
      { stream: { service_name: 'winston-app', env: 'prod', level: 'info' }, lines: [0, 1, 2, 3, 4].map((i) => `winston line ${i} {"level":"info"}`) },
    ]);
    const o = await get(grafanaRange('{k8s_namespace_name="shop"}', Date.now() - HOUR, Date.now() + MIN, 1000, 10), GRAFANA);
    expect(o.body.data.result).toHaveLength(1);
    expect(o.body.data.result[0].stream).toEqual({ service_name: 'otel-app', k8s_namespace_name: 'shop' });
    const [, line, extra] = o.body.data.result[0].values[0];
    expect(line).toBe('cart updated');
    expect(extra.structuredMetadata).toMatchObject({
      host_name: 'box-1',
      cart_items: '3',
      severity_text: 'WARN',
      severity_number: '13',
      scope_name: 'cart',
      detected_level: 'warn',
    });
  });

  test('the raw read includes an event exactly at the last step', async () => {
    const r = await get(grafanaRange('sum(count_over_time({service_name="checkout"} |= "" [30m]))', T + 60 * MIN, T + 60 * MIN, MIN));
    expect(r.body.data.result[0].values).toEqual([[(T + 60 * MIN) / 1000, '30']]); // minutes 31..60, the 60th exactly at the end
  });

  test('count_over_time windows are (t - range, t]: an event exactly at t counts, one exactly at t - range does not; the aggregates agree with the raw rows', async () => {
    // T + 30 min and T + 60 min hold an event exactly on the edge; the others are 1.234 s past the minute.
    const expected = (t: number) => {
      let n = 0;
      for (let i = 0; i < 90; i++) {
        const at = T + i * MIN + (i === 30 || i === 60 ? 0 : 1234);
        if (at > t - 30 * MIN && at <= t) n++;
      }
      return n;
    };
    const steps = [T + 30 * MIN, T + 60 * MIN, T + 90 * MIN];
    const fast = await get(grafanaRange('sum by (service_name) (count_over_time({service_name="checkout"}[30m]))', steps[0]!, steps[2]!, 30 * MIN));
    // `|= ""` keeps every line but makes the query read the raw rows.
    const raw = await get(grafanaRange('sum by (service_name) (count_over_time({service_name="checkout"} |= "" [30m]))', steps[0]!, steps[2]!, 30 * MIN));
    const want = [{ metric: { service_name: 'checkout' }, values: steps.map((t) => [t / 1000, String(expected(t))]) }];
    expect(want[0]!.values.map((v) => v[1])).toEqual(['31', '30', '29']);
    expect(fast.body.data).toMatchObject({ resultType: 'matrix', result: want });
    expect(raw.body.data).toMatchObject({ resultType: 'matrix', result: want });
  });

  // Queries the aggregates must not answer (they know only counts per service) give what the raw rows give.
  test('on bucket edges, only service volumes come from the aggregates: bytes, other groupings, other labels, negations and regexes answer as the raw rows do', async () => {
    const range = (q: string) => get(grafanaRange(q, T + 30 * MIN, T + 90 * MIN, 30 * MIN));
    const cases = [
      'sum by (service_name) (bytes_over_time({service_name="checkout"}[30m]))',
      'sum by (level) (count_over_time({service_name="checkout"}[30m]))',
      'sum without (service_name) (count_over_time({service_name="checkout"}[30m]))',
      'sum by (service_name) (count_over_time({service_name="checkout", env="prod"}[30m]))',
      'sum by (service_name) (count_over_time({service_name=~"check.*|billing", service_name!="checkout"}[30m]))',
      'sum by (service_name) (count_over_time({service_name=~"check"}[30m]))',
      'sum by (service_name) (rate({service_name=~"(?i)CHECKOUT"}[30m]))',
    ];
    const answers: Record<string, unknown> = {};
    for (const q of cases) {
      const fast = await range(q);
      const raw = await range(q.replace(/\}\[30m\]/, '} |= "" [30m]'));
      expect({ q, fast: fast.body.data?.result }).toEqual({ q, fast: raw.body.data?.result });
      answers[q] = fast.body.data.result.map((r: any) => [r.metric, r.values.length]);
    }
    expect(answers[cases[1]!]).toEqual([
      [{ level: 'error' }, 3],
      [{ level: 'info' }, 3],
    ]);
    expect(answers[cases[3]!]).toEqual([]);
    // bytes: the lines' UTF-8 bytes in (T, T + 30 min]: minutes 0 (1.234 s past T) to 30 (exactly at the end)
    let bytes = 0;
    for (let i = 0; i <= 30; i++) bytes += Buffer.byteLength(i % 10 === 0 ? `payment failed order=${i} took=${i * 10}ms` : `payment ok order=${i} took=${i}ms`);
    const b = await range(cases[0]!);
    expect(b.body.data.result[0].values[0]).toEqual([(T + 30 * MIN) / 1000, String(bytes)]);
    // without (service_name): every other label kept, service_name gone
    const without = (await range(cases[2]!)).body.data.result.map((r: any) => r.metric);
    expect(without.length).toBeGreaterThan(1);
    expect(without.every((m: any) => m.service_name === undefined && m.user_id !== undefined)).toBe(true);
    expect(answers[cases[4]!]).toEqual([[{ service_name: 'billing' }, 3]]);
    expect(answers[cases[5]!]).toEqual([]);
    expect(answers[cases[6]!]).toEqual([[{ service_name: 'checkout' }, 3]]);
  });

  test('the dashboard panel sum by (service_name) (count_over_time({service_name=~".+"}[1h])) over a day: every service, each hour', async () => {
    const end = T + 2 * HOUR;
    const r = await get(grafanaRange('sum by (service_name) (count_over_time({service_name=~".+"}[1h]))', end - 24 * HOUR, end, HOUR));
    const bySvc = Object.fromEntries(r.body.data.result.map((s: any) => [s.metric.service_name, s.values]));
    // (T, T + 1h] holds minutes 0..60 (minute 0 is 1.234 s past T; minute 60 is exactly on the edge), (T + 1h, T + 2h] the 29 after.
    expect(bySvc.checkout).toEqual([
      [(T + HOUR) / 1000, '61'],
      [(T + 2 * HOUR) / 1000, '29'],
    ]);
    expect(bySvc.billing).toEqual(bySvc.checkout);
    expect(bySvc['json-svc']).toEqual([[(T + HOUR) / 1000, '3']]);
    expect(bySvc.stages).toEqual([[(T + HOUR) / 1000, '4']]);
    expect(Object.keys(bySvc).sort()).toEqual(['billing', 'checkout', 'json-svc', 'stages']); // otel-app and winston-app are newer than T + 2h
  });

  test('the alert rule rate({service_name="checkout"} |= "payment failed" [5m]) > 0, summed, fires with the failed payments of the window', async () => {
    const at = T + 61 * MIN;
    const r = await get(grafanaInstant('sum(rate({service_name="checkout"} |= "payment failed" [5m])) > 0', at));
    expect(r.body.data.result).toEqual([{ metric: {}, value: [at / 1000, String(1 / 300)] }]); // order 60 failed, at T + 60 min
    const none = await get(grafanaInstant('sum(rate({service_name="checkout"} |= "payment failed" [5m])) > 0', T + 69 * MIN));
    expect(none.body.data.result).toEqual([]);
  });

  test('negated line filters, regexes anchored for label matchers and not for lines, json and logfmt parsers, label filters, line_format, drop and keep', async () => {
    const lines = async (q: string, limit = 100) =>
      (await get(grafanaRange(q, T, T + 2 * HOUR, 1000, limit))).body.data.result.flatMap((s: any) => s.values.map((v: unknown[]) => v[1])).sort();
    const failed = [0, 20, 30, 40, 50, 60, 70, 80].map((i) => `payment failed order=${i} took=${i * 10}ms`).sort();
    expect(await lines('{service_name="checkout"} != "payment ok" != "order=10 "')).toEqual(failed);
    expect(await lines('{service_name="checkout"} |= "payment ok" or "order=10 " != "payment ok" ')).toEqual(['payment failed order=10 took=100ms']);
    expect(await lines('{service_name=~"check"}')).toEqual([]);
    expect((await lines('{service_name=~"check.*|billing", service_name!="billing"} |= "order=1 "')).length).toBe(1);
    expect((await lines('{service_name=~"check.*|billing", service_name!~"bill.*"} |= "order=1 "')).length).toBe(1); // anchored: "check" is not "checkout"
    expect((await lines('{service_name=~"check.*"} |~ "order=8[0-9] "')).length).toBe(10); // a line regex matches anywhere
    expect((await lines('{service_name=~"check.*"} !~ "order=[0-8]?[0-9] "')).length).toBe(0);
    expect(await lines('{service_name="json-svc"} | json | __error__="" | status >= 500 | line_format "{{.path}} {{.user_tier}}"')).toEqual(['/pay gold']);
    // As in Loki, a value that is not a number keeps its line, marked: the non-JSON line has no status.
    expect(await lines('{service_name="json-svc"} | json | status >= 500 | line_format "{{.__error__}}"')).toEqual(['', 'LabelFilterErr']);
    expect(await lines('{service_name="json-svc"} | json | __error__="" | latency > 100ms')).toEqual([
      JSON.stringify({ status: 503, path: '/pay', latency: '250ms', user: { tier: 'gold' } }),
    ]);
    expect(await lines('{service_name="json-svc"} | json | __error__!=""')).toEqual(['not json at all']);
    expect(await lines('{service_name="billing"} | logfmt | took > 700ms | line_format "{{.order}}"')).toEqual(['80']);
    const kept = await get(grafanaRange('{service_name="checkout"} |= "order=0 " | keep service_name, level', T, T + 2 * HOUR, 1000, 5));
    expect(kept.body.data.result.map((s: any) => s.stream)).toEqual([{ service_name: 'checkout', level: 'error' }]);
    const dropped = await get(grafanaRange('{service_name="checkout"} |= "order=0 " | drop user_id, detected_level', T, T + 2 * HOUR, 1000, 5));
    expect(dropped.body.data.result.map((s: any) => s.stream)).toEqual([{ service_name: 'checkout', level: 'error' }]);
  });

  // Each stage of the log pipeline (src/read/loki/pipeline.ts) with Loki's semantics.
  test('pipeline stages: label-filter regexes anchored, json expressions, regexp, pattern, number/duration/bytes comparisons, and/or, label_format, drop by value, decolorize, quoted logfmt', async () => {
    const lines = async (q: string) =>
      (await get(grafanaRange(q, T, T + 2 * HOUR, 1000, 100))).body.data.result.flatMap((s: any) => s.values.map((v: unknown[]) => v[1])).sort();
    const count = async (q: string) => (await lines(q)).length;
    const billing = '{service_name="billing"} | logfmt';
    expect(await lines(`${billing} | order=~"8" | line_format "{{.order}}"`)).toEqual(['8']); // the whole value, not a part
    expect(await count(`${billing} | order!~"8.*"`)).toBe(79);
    for (const [f, n] of [
      ['order == 5', 1],
      ['order != 5', 89],
      ['order >= 88', 2],
      ['order > 88', 1],
      ['order < 2', 2],
      ['order <= 1', 2],
      ['took > 800ms', 0],
      ['took >= 800ms', 1],
    ] as const)
      expect({ f, n: await count(`${billing} | ${f}`) }).toEqual({ f, n });
    expect(await count(`${billing} | order >= 10 and order < 12`)).toBe(2);
    expect(await count(`${billing} | order >= 10, order < 12`)).toBe(2);
    expect(await count(`${billing} | order < 1 or order > 88`)).toBe(2);
    expect(await lines('{service_name="json-svc"} | json tier="user.tier", p="path", u="user" | tier="gold" | line_format "{{.p}} {{.u}}"')).toEqual([
      '/pay {"tier":"gold"}',
    ]);
    expect(await lines('{service_name="stages"} | json | __error__="" | size > 1KiB | line_format "[{{.status}}] [{{.tags}}] {{.n}}"')).toEqual(['[] [] 1']);
    expect(await count('{service_name="stages"} | json | __error__="" | size > 3KB')).toBe(0);
    expect(await lines('{service_name="billing"} | regexp `order=(?P<o>\\d+) took=(?P<t>\\d+)ms` | t > 700 | line_format "{{.o}}"')).toEqual(['80']);
    expect(await count('{service_name="billing"} | pattern "payment <status> order=<o> <_>" | status="failed"')).toBe(9);
    expect(await lines('{service_name="billing"} | pattern "<_> order=80 took=<t>" | t!="" | line_format "{{.t}}"')).toEqual(['800ms']); // the last capture runs to the end
    expect(await lines(`${billing} | order=3 | label_format x="{{.order}}-{{.took}}", o=order | line_format "{{.x}} {{.o}}[{{.order}}]"`)).toEqual([
      '3-3ms 3[]',
    ]);
    const dropped = await get(grafanaRange('{service_name="checkout"} |= "order=1" | drop level="info"', T, T + 2 * HOUR, 1000, 100));
    const levels = dropped.body.data.result.map((s: any) => s.stream.level ?? null);
    expect([...new Set(levels)].sort()).toEqual(['error', null]);
    expect(await lines('{service_name="stages"} |= "red" | decolorize')).toEqual(['red text']);
    expect(await lines('{service_name="stages"} | json | __error__="JSONParserErr" | line_format "{{__line__}}"')).toEqual([
      '42',
      'level=warn msg="quoted \\"value\\" here" code=7',
      'red text'.replace('red', '\u241b[31mred\u241b[0m'),
    ]);
    expect(await lines('{service_name="json-svc"} | json p0="path[0]", none="nope" | __error__="" | line_format "[{{.p0}}][{{.none}}]"')).toEqual([
      '[][]',
      '[][]',
    ]);
    expect(await count('{service_name="billing"} | logfmt |= "order=8."')).toBe(0); // after a parser: still a substring, not a regex
    expect(await lines('{service_name="stages"} | logfmt | code="7" | line_format "{{.msg}}"')).toEqual(['quoted "value" here']);
  });

  test('topk, avg, arithmetic with scalars, and comparisons with bool', async () => {
    const at = T + 90 * MIN;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body.data;
    expect((await v('topk(1, sum by (service_name) (count_over_time({service_name=~".+"}[2h])))')).result).toHaveLength(1);
    expect((await v('sum(count_over_time({service_name="checkout"}[2h])) * 2 + 1')).result).toEqual([{ metric: {}, value: [at / 1000, '181'] }]);
    expect((await v('sum(count_over_time({service_name="checkout"}[2h])) > bool 1000')).result).toEqual([{ metric: {}, value: [at / 1000, '0'] }]);
    expect(await v('2 * 3')).toMatchObject({ resultType: 'scalar', result: [at / 1000, '6'] });
    // PromQL's precedence and associativity (the grammar nests every chain to the right)
    expect(await v('10 - 2 - 3 * 2 ^ 2')).toMatchObject({ resultType: 'scalar', result: [at / 1000, '-4'] });
  });

  // Each operator and function of the metric evaluation (src/read/loki/metric.ts), on numbers known from the data.
  test('comparisons filter (or with bool answer 0/1) between vectors and scalars, both ways round; scalar comparisons need bool', async () => {
    const at = T + 90 * MIN;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body;
    const n = 'sum(count_over_time({service_name="checkout"}[2h]))'; // 90
    const value = async (q: string) => (await v(q)).data.result.map((r: any) => r.value[1]);
    for (const [op, yes, no] of [
      ['==', 90, 89],
      ['!=', 89, 90],
      ['>', 89, 90],
      ['>=', 90, 91],
      ['<', 91, 90],
      ['<=', 90, 89],
    ] as const) {
      expect({ op, yes: await value(`${n} ${op} ${yes}`), no: await value(`${n} ${op} ${no}`) }).toEqual({ op, yes: ['90'], no: [] });
      expect({ op, bool: await value(`${n} ${op} bool ${no}`) }).toEqual({ op, bool: ['0'] });
    }
    expect(await value(`100 > ${n}`)).toEqual(['90']); // scalar first: the vector's value is kept
    expect(await value(`2 * ${n}`)).toEqual(['180']);
    expect((await v('1 > bool 2')).data.result[1]).toBe('0');
    expect((await v('1 > 2')).errorType).toBe('bad_data');
  });

  test('topk and bottomk pick per step; max and other aggregations of raw series are not summed first; a nested sum sums', async () => {
    const at = T + 90 * MIN;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body.data.result;
    const both = 'sum by (service_name) (count_over_time({service_name=~"checkout|json-svc"}[2h]))';
    expect((await v(`topk(1, ${both})`)).map((r: any) => [r.metric.service_name, r.value[1]])).toEqual([['checkout', '90']]);
    expect((await v(`bottomk(1, ${both})`)).map((r: any) => [r.metric.service_name, r.value[1]])).toEqual([['json-svc', '3']]);
    const failed = 'count_over_time({service_name="checkout"} |= "failed" [2h])'; // 9 series (one user each), 1 apiece
    expect((await v(`max(${failed})`)).map((r: any) => r.value[1])).toEqual(['1']);
    expect((await v(`count(${failed})`)).map((r: any) => r.value[1])).toEqual(['9']);
    const top = await v(`topk(1, ${failed})`);
    expect(top.map((r: any) => r.value[1])).toEqual(['1']);
    expect(top[0].metric.user_id).toMatch(/^u\d+$/);
    expect((await v('sum(sum by (service_name) (count_over_time({service_name=~"checkout|billing"}[2h])))')).map((r: any) => r.value[1])).toEqual(['180']);
  });

  test('sort and sort_desc order an instant vector by value; unwrap bytes() and plain numbers, a line without the label skipped', async () => {
    const at = T + 90 * MIN;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body.data.result.map((r: any) => r.value[1]);
    const both = 'sum by (service_name) (count_over_time({service_name=~"checkout|json-svc"}[2h]))';
    expect(await v(`sort(${both})`)).toEqual(['3', '90']);
    expect(await v(`sort_desc(${both})`)).toEqual(['90', '3']);
    expect(await v('max(max_over_time({service_name="stages"} | json | __error__="" | unwrap bytes(size) [2h]))')).toEqual(['2000']);
    expect(await v('min(min_over_time({service_name=~"stages|json-svc"} | json | keep service_name, n | unwrap n [2h]))')).toEqual(['1']);
  });

  test('unwrap: max, min, sum, avg, first and last over the window, durations in seconds; a line without the label is skipped, not the end', async () => {
    const at = T + 90 * MIN;
    // billing took i ms (ok) or i * 10 ms (failed, every tenth); json-svc lines have no took
    const w = (fn: string) => `${fn}({service_name=~"billing|json-svc"} | logfmt | keep service_name, took | unwrap duration(took) [2h])`;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body.data.result.map((r: any) => [r.metric, Number(r.value[1])]);
    const ok = Array.from({ length: 90 }, (_, i) => (i % 10 === 0 ? i * 10 : i) / 1000);
    expect(await v(w('max_over_time'))).toEqual([[{ service_name: 'billing' }, 0.8]]);
    expect(await v(w('min_over_time'))).toEqual([[{ service_name: 'billing' }, 0]]);
    expect(await v(w('first_over_time'))).toEqual([[{ service_name: 'billing' }, 0]]);
    expect(await v(w('last_over_time'))).toEqual([[{ service_name: 'billing' }, 0.089]]);
    const [[, sum]] = await v(w('sum_over_time'));
    expect(sum).toBeCloseTo(
      ok.reduce((a, b) => a + b, 0),
      9,
    );
    const [[, avg]] = await v(w('avg_over_time'));
    expect(avg).toBeCloseTo(ok.reduce((a, b) => a + b, 0) / 90, 9);
  });

  test('absent_over_time is 1, with the equality matchers as labels, only where nothing matched', async () => {
    const edge = (t: number) => get(grafanaInstant('absent_over_time({service_name="checkout"} |= "order=60 " [1m])', t));
    expect((await edge(T + 60 * MIN)).body.data.result).toEqual([]); // the event is exactly at t: in the window
    expect((await edge(T + 61 * MIN)).body.data.result).toHaveLength(1); // exactly at t - range: not
    const at = T + 61 * MIN;
    const v = async (q: string) => (await get(grafanaInstant(q, at))).body.data.result;
    expect(await v('absent_over_time({service_name="nope", env=~".+"}[5m])')).toEqual([{ metric: { service_name: 'nope' }, value: [at / 1000, '1'] }]);
    expect(await v('absent_over_time({service_name="checkout"}[5m])')).toEqual([]);
    const r = await get(grafanaRange('absent_over_time({service_name="checkout"} |= "order=75 " [10m])', T + 70 * MIN, T + 90 * MIN, 10 * MIN));
    expect(r.body.data.result[0].values).toEqual([
      [(T + 70 * MIN) / 1000, '1'],
      [(T + 90 * MIN) / 1000, '1'],
    ]);
  });

  test('vector op vector matches equal label sets, and a step where one side has no sample has none', async () => {
    const all = 'sum by (service_name) (count_over_time({service_name="checkout"}[20m]))';
    const one = 'sum by (service_name) (count_over_time({service_name="checkout"} |= "order=75 " [20m]))';
    const r = await get(grafanaRange(`${all} / ${one}`, T + 30 * MIN, T + 90 * MIN, 30 * MIN));
    expect(r.body.data.result).toEqual([{ metric: { service_name: 'checkout' }, values: [[(T + 90 * MIN) / 1000, '20']] }]);
    const other = await get(
      grafanaRange(`${all} / sum by (service_name) (count_over_time({service_name="billing"}[20m]))`, T + 30 * MIN, T + 90 * MIN, 30 * MIN),
    );
    expect(other.body.data.result).toEqual([]);
  });

  test("the label browser's calls: labels, label values (service_name from the aggregates), series with match[] (Grafana) and match (logcli)", async () => {
    const range = goQuery([
      ['start', ns(T)],
      ['end', ns(Date.now() + MIN)],
    ]);
    expect((await get(`/loki/api/v1/labels?${range}`)).body.data).toEqual(['env', 'k8s_namespace_name', 'level', 'service_name']);
    expect((await get(`/loki/api/v1/label/service_name/values?${range}`)).body.data).toEqual([
      'billing',
      'checkout',
      'json-svc',
      'otel-app',
      'stages',
      'winston-app',
    ]);
    expect((await get(`/loki/api/v1/label/level/values?${range}`)).body.data).toEqual(['error', 'info']);
    const series = await get(
      `/loki/api/v1/series?${goQuery([
        ['match[]', '{env="prod"}'],
        ['start', ns(T)],
        ['end', ns(Date.now() + MIN)],
      ])}`,
    );
    expect(series.body.data.sort((a: any, b: any) => (a.level < b.level ? -1 : 1))).toEqual([
      { service_name: 'winston-app', env: 'prod', level: 'error' },
      { service_name: 'winston-app', env: 'prod', level: 'info' },
    ]);
    const logcli = await get(
      `/loki/api/v1/series?${goQuery([
        ['match', '{service_name="otel-app"}'],
        ['start', ns(T)],
        ['end', ns(Date.now() + MIN)],
      ])}`,
    );
    expect(logcli.body.data).toEqual([{ service_name: 'otel-app', k8s_namespace_name: 'shop' }]);
  });

  test("bad input is a 400 in Loki's error shape naming what is wrong, never a 500", async () => {
    const bad = [
      ['/loki/api/v1/query_range?query=%7Bservice_name%3D%22x%22', /parse error/],
      [grafanaRange('{service_name=~"(?=x)"}', T, T + HOUR, 1000), /lookarounds/],
      [grafanaRange('{service_name=~"(a)\\\\1"}', T, T + HOUR, 1000), /\\1/],
      [grafanaRange('count_over_time({service_name="x"}[1m])', T - 30 * 24 * HOUR, T, 100), /maximum resolution of 11000 points/],
      [grafanaRange('{service_name="x"}', T, T + HOUR, 1000, 5001), /max entries limit/],
      ['/loki/api/v1/query_range?query=%7Bservice_name%3D%22x%22%7D&start=yesterday', /invalid start/],
      [grafanaInstant('{service_name="x"}', T), /not supported as an instant query/],
      [grafanaRange('{service_name="x"} | regexp "x+"', T, T + HOUR, MIN), /named group/],
      [grafanaRange('{service_name="x"} | pattern "<_> x"', T, T + HOUR, MIN), /named capture/],
      [grafanaRange('quantile_over_time(0.9, {service_name="x"} | unwrap took [1m])', T, T + HOUR, MIN), /not supported/],
      [grafanaRange('{service_name="x"} | line_format "{{ .a | upper }}"', T, T + HOUR, MIN), /only \{\{\.label\}\}/],
      ['/loki/api/v1/query_range', /query is required/],
    ] as const;
    // A query too long for a URL comes as a form body (POST): past 16 KB it is refused too.
    const long = await svc.app.request('/loki/api/v1/query', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: goQuery([['query', `{service_name="${'a'.repeat(17_000)}"}`]]),
    });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toMatch(/longer than 16384 characters/);
    for (const [url, why] of bad) {
      const r = await get(url);
      expect({ url, status: r.status, status2: r.body.status, type: r.body.errorType }).toEqual({ url, status: 400, status2: 'error', type: 'bad_data' });
      expect(r.body.error).toMatch(why);
    }
  });
});

describe('a metric query over LOKI_QUERY_MAX_EVENTS raw events [embedded]', () => {
  let target: Target;
  let svc: Svc;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { LOKI_QUERY_MAX_EVENTS: '10' });
    const now = Date.now();
    const events = Array.from({ length: 11 }, (_, i) => ({ service: 'many', message: `m ${i}`, timestamp: new Date(now - (i + 1) * 1000).toISOString() }));
    expect(
      (await svc.app.request('/events/batch?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) }))
        .status,
    ).toBe(201);
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('is a 400 naming the setting; at the limit it is answered', async () => {
    const at = Date.now();
    const q = (sel: string) =>
      svc.app.request(
        `/loki/api/v1/query?${goQuery([
          ['query', `sum(count_over_time(${sel} [1m]))`],
          ['time', ns(at)],
        ])}`,
      );
    const over = await q('{service_name="many"} |= "m"');
    expect(over.status).toBe(400);
    expect(((await over.json()) as { error: string }).error).toContain('LOKI_QUERY_MAX_EVENTS');
    const at10 = await q('{service_name="many"} != "m 10"');
    expect(at10.status).toBe(200);
    expect(((await at10.json()) as any).data.result[0].value[1]).toBe('10');
  });
});

// Chunks past COMPRESS_AFTER_DAYS are in TimescaleDB's columnstore (Community edition), where some
// filters run vectorized: a 30-day volume panel failed there ("failed to evaluate runtime constant in
// vectorized filter", 500) before the events at the edges were joined instead of matched with ANY.
describe.each(engines)('the Loki query API over compressed chunks [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  const DAY = 86_400_000;
  const D = Math.floor(Date.now() / DAY) * DAY - 10 * DAY; // ten days ago, midnight UTC
  const KEY = 'team-c-secret-0123456789';
  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target, { COMPRESS_AFTER_DAYS: '7', RETENTION_DAYS: '30', API_KEYS: `team-c:ingest+query:${KEY}:services=old-*` });
    // an event every 10 minutes for a day, one exactly at midnight (an edge), for two services
    await svc.engine.query(
      `INSERT INTO events (time, id, service, message)
       SELECT $1::text::timestamptz + g * interval '10 minutes', gen_random_uuid(), s, 'old ' || s || ' ' || g
       FROM generate_series(0, 143) g, unnest(ARRAY['old-a', 'old-b']) s`,
      [new Date(D).toISOString()],
    );
    await svc.state.jobs!.runAll();
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('a 30-day volume panel, raw reads with regexes and line filters, and a scoped key read compressed chunks', async () => {
    const compressed = await svc.engine.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'events' AND is_compressed`,
    );
    if (svc.state.database!.compression) expect(compressed[0]!.n).toBeGreaterThan(0);
    const end = Math.floor(Date.now() / HOUR) * HOUR;
    const as = async (url: string) => {
      const res = await svc.app.request(url, { headers: { authorization: `Bearer ${KEY}` } });
      return { status: res.status, body: (await res.json()) as any };
    };
    const vol = await as(grafanaRange('sum by (service_name) (count_over_time({service_name=~"old-.*"}[1d]))', end - 30 * DAY, end, DAY));
    expect(vol.status).toBe(200);
    const totals = Object.fromEntries(
      vol.body.data.result.map((s: any) => [s.metric.service_name, s.values.reduce((n: number, v: string[]) => n + Number(v[1]), 0)]),
    );
    expect(totals).toEqual({ 'old-a': 144, 'old-b': 144 });
    const raw = await as(grafanaRange('{service_name=~"old-(a|b)"} |= "old-a" |~ "1[0-9]$"', D - HOUR, D + DAY, 1000, 1000));
    expect(raw.status).toBe(200);
    expect(raw.body.data.result.flatMap((s: any) => s.values).length).toBe(20); // old-a lines ending in 10..19 and 110..119
  });
});
