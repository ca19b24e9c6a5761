// Random hostile requests against the real app on the embedded engine: valid bodies of every write
// route with values swapped for odd JSON (objects with toString keys, NUL, lone surrogates, deep
// nesting, huge numbers), protobuf bodies with flipped bytes, and odd query strings on the read
// routes. Every answer must be below 500, and the service must still store and read afterwards.
// Seeded: a failure prints its seed (FUZZ_SEED=<n> replays it); FUZZ_REQUESTS sets the count.
// Found, before it existed: a 500 for each of a Loki timestamp given as an object, a JSON value
// with a toString key where OTLP or Loki wanted text, and NUL in a search filter.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import { readFileSync } from 'node:fs';
import { newTarget, startService, type Target } from './harness';

setDefaultTimeout(180_000);

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 3000);

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, pick };
}

const ODD: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  '',
  'x',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '9'.repeat(30),
  '-9',
  '1e3',
  'NaN',
  ' 1',
  [],
  [[]],
  {},
  { a: 1 },
  { seconds: 'x' },
  { seconds: 1.5 },
  { stringValue: {} },
  { toString: 1 },
  { valueOf: 'x' },
  { toJSON: 1 },
  { constructor: 1 },
  'a'.repeat(70_000),
  [null],
  JSON.parse(`{"a":${'['.repeat(2000)}${']'.repeat(2000)}}`),
];
const KEYS = ['__proto__', 'constructor', 'toJSON', 'toString', 'x', ''];

const root = (file: string) => protobuf.parse(readFileSync(new URL(`../src/receive/proto/${file}`, import.meta.url), 'utf8')).root;
const OtlpRequest = root('otlp_logs.proto').lookupType('aurore.otlp.ExportLogsServiceRequest');
const PushRequest = root('loki_push.proto').lookupType('aurore.loki.PushRequest');

const nowNs = () => `${BigInt(Date.now()) * 1_000_000n}`;
const otlp = () => ({
  resourceLogs: [
    {
      resource: {
        attributes: [
          { key: 'service.name', value: { stringValue: 'fuzz' } },
          {
            key: 'k',
            value: {
              kvlistValue: { values: [{ key: 'a', value: { arrayValue: { values: [{ intValue: '5' }, { doubleValue: 1.5 }, { bytesValue: 'AQ==' }] } } }] },
            },
          },
        ],
      },
      scopeLogs: [
        {
          scope: { name: 's', version: '1' },
          logRecords: [
            {
              timeUnixNano: nowNs(),
              observedTimeUnixNano: nowNs(),
              severityNumber: 9,
              severityText: 'INFO',
              body: { stringValue: 'hello' },
              attributes: [{ key: 'a', value: { boolValue: true } }],
              traceId: '0123456789abcdef0123456789abcdef',
              spanId: '0123456789abcdef',
              flags: 1,
              eventName: 'e',
            },
          ],
        },
      ],
    },
  ],
});
const loki = () => ({
  streams: [
    {
      stream: { service_name: 'fuzz', env: 'p' },
      values: [
        [nowNs(), 'line', { trace_id: 'x' }],
        [nowNs(), 'line2'],
      ],
    },
  ],
});
const event = () => ({ id: crypto.randomUUID(), timestamp: new Date().toISOString(), service: 'fuzz', message: 'm', metadata: { a: 1, b: { c: [1, 2] } } });

const QUERY_KEYS = [
  'service',
  'from',
  'to',
  'order',
  'page',
  'pageSize',
  'cursor',
  'q',
  'metadata',
  'metadata.a',
  'metadata.a.b',
  'metadata.__proto__',
  'count',
  'bucket',
  'x',
];
const QUERY_VALUES = [
  '',
  'x',
  '-1',
  '0',
  '1.5',
  '1e309',
  'NaN',
  '9'.repeat(40),
  'asc',
  'exact',
  'none',
  '1m',
  '1d',
  '2024-01-01T00:00:00Z',
  '0001-01-01T00:00:00Z',
  '2024-02-30T00:00:00Z',
  '{}',
  '{"a":1}',
  '[1]',
  'null',
  '\u0000',
  '{"a":"\\u0000"}',
  '{"a":"\\ud800"}',
  `{"a":${'['.repeat(1500)}${']'.repeat(1500)}}`,
  "'; drop table events; --",
  '%',
  '_',
  'a,,b',
  'AAAA',
  'é',
];
const READ_PATHS = [
  '/events',
  '/metrics/events',
  '/health/business',
  `/events/${crypto.randomUUID()}`,
  '/events/x',
  '/health/detailed',
  '/metrics',
  '/console/..%2fpackage.json',
  '/docs/x',
];

// LogQL for the Loki query API: pieces put together at random, then some characters changed.
const LOGQL = {
  selectors: [
    '{service_name="fuzz"}',
    '{service_name=~".+"}',
    '{service_name!~"a|b", env="x"}',
    '{k8s_pod_name=~"(?i)x.*"}',
    '{a=~"[[:alpha:]]"}',
    '{a=~"(a)\\1"}',
    '{}',
  ],
  stages: [
    '|= "m"',
    '!= "x" or "y"',
    '|~ "a+b*"',
    '!~ "\\bm\\b"',
    '| json',
    '| logfmt',
    '| regexp "(?P<x>\\w+)"',
    '| pattern "<a> <_>"',
    '| a > 5s',
    '| a >= 1KB',
    '| a = "x" or b != "y"',
    '| line_format "{{.a}}"',
    '| label_format b=a',
    '| drop a',
    '| keep a',
    '| decolorize',
    '| __error__=""',
  ],
  wraps: [
    'count_over_time(%[1m])',
    'count_over_time(%[99y] offset 99y)',
    'sum(count_over_time(%[100000y]))',
    'rate(%[5m])',
    'bytes_rate(%[1h])',
    'sum by (service_name) (count_over_time(%[1m]))',
    'topk(2, rate(%[1m]))',
    'avg_over_time(% | unwrap a [1m])',
    'absent_over_time(%[1m])',
    'sum(rate(%[1m])) > bool 1',
    '%',
    'vector(1) + %',
    '2 ^ 3 * %',
  ],
};
const LOKI_PATHS = [
  '/loki/api/v1/query_range',
  '/loki/api/v1/query',
  '/loki/api/v1/labels',
  '/loki/api/v1/label/service_name/values',
  '/loki/api/v1/series',
  '/loki/api/v1/index/volume',
  '/loki/api/v1/index/stats',
  '/loki/api/v1/detected_fields',
  '/loki/api/v1/format_query',
];
const LOKI_KEYS = ['start', 'end', 'step', 'limit', 'direction', 'time', 'since', 'match[]', 'targetLabels'];

describe('random hostile requests [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { RATE_LIMIT_INGEST: '0', RATE_LIMIT_QUERY: '0' });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test(`every answer is below 500, and the service still stores and reads afterwards (seed ${SEED})`, async () => {
    const { next, pick } = generator(SEED);
    /** A copy of a valid value with some of its parts swapped for odd ones. */
    const mutate = (v: unknown): unknown => {
      if (next() < 0.12) return pick(ODD);
      if (Array.isArray(v)) return v.map(mutate);
      if (v && typeof v === 'object') {
        const o: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) if (next() > 0.05) o[k] = mutate(x);
        if (next() < 0.1) Object.defineProperty(o, pick(KEYS), { value: pick(ODD), enumerable: true });
        return o;
      }
      return v;
    };
    const flip = (b: Uint8Array) => {
      const c = Uint8Array.from(b);
      for (let n = 1 + Math.floor(next() * 4); n > 0; n--) c[Math.floor(next() * c.length)] = Math.floor(next() * 256);
      return c;
    };
    const writes: (() => [string, string, string | Uint8Array])[] = [
      () => ['/v1/logs', 'application/json', JSON.stringify(mutate(otlp()))],
      () => ['/loki/api/v1/push', 'application/json', JSON.stringify(mutate(loki()))],
      () => ['/events', 'application/json', JSON.stringify(mutate(event()))],
      () => ['/events/batch', 'application/json', JSON.stringify(mutate([event(), event()]))],
      () => ['/events/batch', 'application/x-ndjson', [mutate(event()), mutate(event())].map((x) => JSON.stringify(x) ?? '').join('\n')],
      () => [
        '/v1/logs',
        'application/x-protobuf',
        flip(
          OtlpRequest.encode(
            OtlpRequest.fromObject({ ...otlp(), resourceLogs: [{ scopeLogs: [{ logRecords: [{ timeUnixNano: nowNs(), body: { stringValue: 'p' } }] }] }] }),
          ).finish(),
        ),
      ],
      () => [
        '/loki/api/v1/push',
        'application/x-protobuf',
        flip(
          compressSync(
            Buffer.from(
              PushRequest.encode(
                PushRequest.fromObject({
                  streams: [{ labels: '{service_name="fuzz"}', entries: [{ timestamp: { seconds: Math.floor(Date.now() / 1000) }, line: 'p' }] }],
                }),
              ).finish(),
            ),
          ),
        ),
      ],
    ];
    const failures: string[] = [];
    for (let i = 0; i < REQUESTS && failures.length < 5; i++) {
      let res: Response;
      let what: string;
      const logql = () => {
        let q = pick(LOGQL.selectors);
        for (let n = Math.floor(next() * 4); n > 0; n--) q += ` ${pick(LOGQL.stages)}`;
        if (next() < 0.5) q = pick(LOGQL.wraps).replace('%', q);
        for (let n = next() < 0.3 ? 1 + Math.floor(next() * 3) : 0; n > 0; n--) {
          const at = Math.floor(next() * q.length);
          q = q.slice(0, at) + pick(['', '(', ')', '"', '{', '|', '[', '\\', '\u0000', 'é']) + q.slice(at + 1);
        }
        return q;
      };
      const roll = next();
      if (roll < 0.15) {
        const qs = [
          ['query', logql()],
          ...Array.from({ length: Math.floor(next() * 4) }, () => [
            pick(LOKI_KEYS),
            pick([...QUERY_VALUES, '1700000000', '1700000000000000000', '15s', 'forward', '99999']),
          ]),
        ]
          .map(([k, v]) => `${encodeURIComponent(k!)}=${encodeURIComponent(v!.toWellFormed())}`)
          .join('&');
        const url = `${pick(LOKI_PATHS)}?${qs}`;
        res = await svc.app.request(url, { headers: next() < 0.5 ? { 'x-loki-response-encoding-flags': 'categorize-labels' } : {} });
        what = `GET ${url.slice(0, 300)}`;
      } else if (roll < 0.75) {
        const [path, type, body] = pick(writes)();
        const url = path + (next() < 0.2 ? '?wait=true' : '');
        res = await svc.app.request(url, { method: 'POST', headers: { 'content-type': type }, body });
        what = `POST ${url} ${type} ${typeof body === 'string' ? body.slice(0, 300) : Buffer.from(body).toString('hex').slice(0, 300)}`;
      } else {
        const qs = Array.from({ length: Math.floor(next() * 4) }, () => `${pick(QUERY_KEYS)}=${encodeURIComponent(pick(QUERY_VALUES).toWellFormed())}`).join(
          '&',
        );
        const url = `${pick(READ_PATHS)}?${qs}`;
        res = await svc.app.request(url);
        what = `GET ${url.slice(0, 300)}`;
      }
      const text = await res.text();
      if (res.status >= 500) failures.push(`${res.status} ${text.slice(0, 120)} <- ${what}`);
    }
    expect(failures, `FUZZ_SEED=${SEED} replays this run`).toEqual([]);
    const after = await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'fuzz-after', message: 'still here' }),
    });
    expect(after.status).toBe(201);
    const read = (await (await svc.app.request('/events?service=fuzz-after')).json()) as { pagination: { total: number } };
    expect(read.pagination.total).toBe(1);
  });
});
