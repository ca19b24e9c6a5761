// The agents' protocols, end to end with the clients people run: the OpenTelemetry JS SDK's OTLP
// exporters (JSON and protobuf) and winston-loki (protobuf + snappy, and JSON), through a real
// socket, on each engine; every record found again through GET /events with its mapped fields. Then
// the mapping field by field, and hostile bodies: 4xx or counted rejections, never a 5xx, nothing
// valid lost.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { OTLPLogExporter as OtlpJsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as OtlpProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import winston from 'winston';
import LokiTransport from 'winston-loki';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { loadConfig } from '../src/config';
import { makeFitter, type Fitted } from '../src/receive/fit';
import { engines, newTarget, startService, until, type Target } from './harness';

setDefaultTimeout(120_000);

type Svc = Awaited<ReturnType<typeof startService>>;
type Stored = { id: string; timestamp: string; service: string; message: string; metadata: Record<string, any> };
const otlpRoot = protobuf.parse(readFileSync(new URL('../src/receive/proto/otlp_logs.proto', import.meta.url), 'utf8')).root;
const lokiRoot = protobuf.parse(readFileSync(new URL('../src/receive/proto/loki_push.proto', import.meta.url), 'utf8')).root;
const OtlpRequest = otlpRoot.lookupType('aurore.otlp.ExportLogsServiceRequest');
const OtlpResponse = otlpRoot.lookupType('aurore.otlp.ExportLogsServiceResponse');
const Status = otlpRoot.lookupType('aurore.otlp.Status');
const PushRequest = lokiRoot.lookupType('aurore.loki.PushRequest');

async function events(svc: Svc, query: string): Promise<Stored[]> {
  const res = await svc.app.request(`/events?pageSize=1000&${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: Stored[] }).events;
}

/** An OTLP/JSON request of `records` under one resource and scope. */
const otlpJson = (service: string | undefined, records: Record<string, unknown>[], resource: Record<string, unknown> = {}) => ({
  resourceLogs: [
    {
      resource: {
        attributes: [
          ...(service === undefined ? [] : [{ key: 'service.name', value: { stringValue: service } }]),
          ...Object.entries(resource).map(([key, value]) => ({ key, value })),
        ],
      },
      scopeLogs: [{ scope: { name: 'test-scope', version: '0.1' }, logRecords: records }],
    },
  ],
});
const nowNs = () => `${BigInt(Date.now()) * 1_000_000n + 123_456n}`;

describe.each(engines)('agents send with their own clients [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target);
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
  });
  afterAll(async () => {
    server?.stop(true);
    await svc?.stop();
    await target?.destroy();
  });

  test.each([
    ['OTLP/JSON', OtlpJsonExporter],
    ['OTLP protobuf', OtlpProtoExporter],
  ] as const)(
    'the OpenTelemetry SDK exporter (%s): every record stored with service, time to the microsecond, body, attributes, severity, trace context, scope and resource',
    async (name, Exporter) => {
      const service = `otel-${name.includes('JSON') ? 'json' : 'proto'}`;
      const exporter = new Exporter({ url: `http://127.0.0.1:${server.port}/v1/logs` });
      const provider = new LoggerProvider({
        resource: resourceFromAttributes({ 'service.name': service, 'deployment.environment': 'test', 'host.name': 'box-1' }),
        processors: [new BatchLogRecordProcessor({ exporter, scheduledDelayMillis: 20 })],
      });
      const logger = provider.getLogger('checkout', '2.1.0');
      const spanContext = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED };
      const base = Math.floor(Date.now() / 1000) - 60;
      for (let i = 0; i < 50; i++) {
        logger.emit({
          body: `order ${i} placed`,
          severityText: 'INFO',
          severityNumber: 9,
          timestamp: [base, 123_456_789 + i * 1000], // [seconds, nanoseconds]
          attributes: { 'order.id': i, 'user.tier': 'gold', amount: 12.5 },
          context: trace.setSpanContext(ROOT_CONTEXT, spanContext),
        });
      }
      logger.emit({
        body: { kind: 'structured', items: [1, 2] },
        severityText: 'WARN',
        severityNumber: 13,
        timestamp: [base, 999_999_999],
        eventName: 'order.structured',
      });
      await provider.forceFlush();
      await provider.shutdown();
      await until(() => svc.queue.depth === 0);
      const got = await events(svc, `service=${service}&order=asc`);
      expect(got).toHaveLength(51);
      const first = got[0]!;
      expect(first.message).toBe('order 0 placed');
      expect(first.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/); // a UUIDv7
      expect(first.id.replace(/-/g, '').slice(0, 12)).toBe((base * 1000 + 123).toString(16).padStart(12, '0')); // of the event's millisecond
      expect(first.timestamp).toBe(`${new Date(base * 1000).toISOString().slice(0, 19)}.123456Z`); // nanoseconds past the microsecond dropped
      expect(first.metadata).toEqual({
        'order.id': 0,
        'user.tier': 'gold',
        amount: 12.5,
        severity_text: 'INFO',
        severity_number: 9,
        trace_id: spanContext.traceId,
        span_id: spanContext.spanId,
        flags: 1,
        scope: { name: 'checkout', version: '2.1.0' },
        resource: { 'deployment.environment': 'test', 'host.name': 'box-1' },
      });
      expect(got.map((e) => e.message).slice(0, 50)).toEqual(Array.from({ length: 50 }, (_, i) => `order ${i} placed`));
      const structured = got[50]!;
      expect(JSON.parse(structured.message)).toEqual({ kind: 'structured', items: [1, 2] });
      // OTLP's eventName (the SDK's emit({ eventName })) is metadata.event_name; records without one have none.
      expect(structured.metadata).toMatchObject({ severity_text: 'WARN', severity_number: 13, event_name: 'order.structured' });
      expect(first.metadata).not.toHaveProperty('event_name');
    },
  );

  test.each([
    ['protobuf + snappy', false],
    ['JSON', true],
  ] as const)('winston-loki (%s): every line stored under its service label, labels and structured metadata in metadata', async (name, json) => {
    const service = `winston-${json ? 'json' : 'proto'}`;
    const statuses: number[] = [];
    const transport = new LokiTransport({
      host: `http://127.0.0.1:${server.port}`,
      json,
      labels: { service_name: service, env: 'test' },
      batching: true,
      interval: 0.05,
      onConnectionError: (_e: unknown) => statuses.push(-1),
    });
    const logger = winston.createLogger({ transports: [transport] });
    for (let i = 0; i < 30; i++) logger.info(`line ${i}`, { labels: { shard: String(i % 3) } });
    await until(async () => (await events(svc, `service=${service}`)).length === 30, 20_000, `${name}: 30 lines stored`);
    logger.close();
    expect(statuses).toEqual([]);
    const got = await events(svc, `service=${service}&order=asc`);
    expect(got.map((e) => e.message.startsWith('line '))).toEqual(Array(30).fill(true));
    for (const e of got) expect(e.metadata.labels).toMatchObject({ env: 'test', level: 'info', shard: expect.stringMatching(/^[0-2]$/) });
  });

  test('?wait=true on OTLP answers once committed: the records are found at once', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/logs?wait=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(otlpJson('otlp-wait', [{ timeUnixNano: nowNs(), body: { stringValue: 'committed' } }])),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ingest-ack')).toBe('committed');
    expect(await res.json()).toEqual({});
    expect((await events(svc, 'service=otlp-wait')).map((e) => e.message)).toEqual(['committed']);
  });

  test('two identical records in one request (same microsecond, same body) are two events', async () => {
    const t = nowNs();
    const same = { timeUnixNano: t, body: { stringValue: 'twice' }, attributes: [{ key: 'k', value: { stringValue: 'v' } }] };
    expect(
      (
        await svc.app.request('/v1/logs?wait=true', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(otlpJson('otlp-twins', [same, same])),
        })
      ).status,
    ).toBe(200);
    expect(await events(svc, 'service=otlp-twins')).toHaveLength(2);
  });

  test('an exporter that retries a request stores each record once (ids follow the records)', async () => {
    const body = JSON.stringify(
      otlpJson(
        'otlp-retry',
        Array.from({ length: 20 }, (_, i) => ({ timeUnixNano: `${1_764_400_000_000_000_000n + BigInt(i) * 1000n}`, body: { stringValue: `r${i}` } })),
      ),
    );
    for (let i = 0; i < 3; i++)
      expect((await svc.app.request('/v1/logs?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status).toBe(200);
    expect(await events(svc, 'service=otlp-retry')).toHaveLength(20);
  });
});

describe('the mapping, field by field [embedded]', () => {
  let target: Target;
  let svc: Svc;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { MESSAGE_MAX_LENGTH: '100', METADATA_MAX_BYTES: '512', RETENTION_DAYS: '30' });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const otlp = async (body: unknown, type = 'application/json') =>
    svc.app.request('/v1/logs?wait=true', {
      method: 'POST',
      headers: { 'content-type': type },
      body: type.includes('json') ? JSON.stringify(body) : (body as Uint8Array),
    });
  const loki = (body: unknown) =>
    svc.app.request('/loki/api/v1/push?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('OTLP: no service.name is unknown_service; characters outside the service alphabet become _', async () => {
    expect((await otlp(otlpJson(undefined, [{ timeUnixNano: nowNs(), body: { stringValue: 'anonymous' } }]))).status).toBe(200);
    expect((await otlp(otlpJson('my service/v2 é', [{ timeUnixNano: nowNs(), body: { stringValue: 'renamed' } }]))).status).toBe(200);
    expect((await events(svc, 'service=unknown_service')).map((e) => e.message)).toContain('anonymous');
    expect((await events(svc, 'service=my_service_v2__')).map((e) => e.message)).toEqual(['renamed']);
  });

  test('OTLP: timeUnixNano, else observedTimeUnixNano, else now', async () => {
    const secs = Math.floor(Date.now() / 1000) - 3600;
    const t = BigInt(secs) * 1_000_000_000n + 123_456_789n;
    const iso = new Date(secs * 1000).toISOString().slice(0, 19);
    const before = Date.now();
    await otlp(
      otlpJson('otlp-times', [
        { timeUnixNano: `${t}`, body: { stringValue: 'event time' } },
        { observedTimeUnixNano: `${t + 1000n}`, body: { stringValue: 'observed' } },
        { body: { stringValue: 'none' } },
      ]),
    );
    const got = Object.fromEntries((await events(svc, 'service=otlp-times')).map((e) => [e.message, e.timestamp]));
    expect(got['event time']).toBe(`${iso}.123456Z`); // the nanoseconds past the microsecond dropped
    expect(got.observed).toBe(`${iso}.123457Z`);
    expect(Date.parse(got.none!)).toBeGreaterThanOrEqual(before - 1);
  });

  test('OTLP: bodies that are not strings are stored as JSON (64-bit integers as text), bytes as their base64', async () => {
    await otlp(
      otlpJson('otlp-bodies', [
        {
          timeUnixNano: nowNs(),
          body: {
            kvlistValue: {
              values: [
                { key: 'a', value: { intValue: '9007199254740993' } },
                { key: 'b', value: { boolValue: true } },
              ],
            },
          },
        },
        { timeUnixNano: `${BigInt(nowNs()) + 1n * 1000n}`, body: { bytesValue: Buffer.from('raw').toString('base64') } },
        { timeUnixNano: `${BigInt(nowNs()) + 2n * 1000n}`, body: { arrayValue: { values: [{ doubleValue: 1.5 }, { stringValue: 'x' }] } } },
      ]),
    );
    const messages = (await events(svc, 'service=otlp-bodies&order=asc')).map((e) => e.message).sort();
    expect(messages).toEqual(['cmF3', '[1.5,"x"]', '{"a":"9007199254740993","b":true}'].sort());
  });

  test('OTLP: a message over MESSAGE_MAX_LENGTH and metadata over METADATA_MAX_BYTES are cut with a marker and counted, not refused', async () => {
    const cutBefore = svc.state.cut;
    const attrs = Array.from({ length: 40 }, (_, i) => ({ key: `k${String(i).padStart(2, '0')}`, value: { stringValue: 'v'.repeat(30) } }));
    const res = await otlp(otlpJson('otlp-cut', [{ timeUnixNano: nowNs(), body: { stringValue: 'x'.repeat(500) }, attributes: attrs }]));
    expect(await res.json()).toEqual({});
    const [e] = await events(svc, 'service=otlp-cut');
    expect(e!.message).toHaveLength(100);
    expect(e!.message).toEndWith('…[cut 400 characters]');
    expect(Buffer.byteLength(JSON.stringify(e!.metadata))).toBeLessThanOrEqual(512);
    expect(e!.metadata._cut).toMatchObject({ keys: expect.any(Number) });
    expect(e!.metadata.k00).toBe('v'.repeat(30));
    expect(svc.state.cut).toBe(cutBefore + 1);
    expect(await (await svc.app.request('/metrics')).text()).toMatch(/aurore_events_cut_total [1-9]/);
  });

  test('OTLP: a record older than RETENTION_DAYS is counted in partialSuccess, its request-mates are stored', async () => {
    const old = `${BigInt(Date.now() - 40 * 86_400_000) * 1_000_000n}`;
    const res = await otlp(
      otlpJson('otlp-partial', [
        { timeUnixNano: old, body: { stringValue: 'too old' } },
        { timeUnixNano: nowNs(), body: { stringValue: 'fine' } },
      ]),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ partialSuccess: { rejectedLogRecords: '1', errorMessage: expect.stringContaining('older than RETENTION_DAYS') } });
    expect((await events(svc, 'service=otlp-partial')).map((e) => e.message)).toEqual(['fine']);
  });

  test('OTLP protobuf: the answer is an ExportLogsServiceResponse in protobuf, partial success included', async () => {
    const body = OtlpRequest.encode(
      OtlpRequest.fromObject({
        resourceLogs: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'otlp-pb' } }] },
            scopeLogs: [
              {
                logRecords: [
                  { timeUnixNano: 1, body: { stringValue: 'year 1970' } },
                  { timeUnixNano: nowNs(), body: { stringValue: 'now' } },
                ],
              },
            ],
          },
        ],
      }),
    ).finish();
    const res = await otlp(body, 'application/x-protobuf');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    const decoded = OtlpResponse.toObject(OtlpResponse.decode(new Uint8Array(await res.arrayBuffer())), { longs: Number });
    expect(decoded).toMatchObject({
      partialSuccess: { rejectedLogRecords: 1, errorMessage: 'resourceLogs[0].scopeLogs[0].logRecords[0]: timestamp is older than RETENTION_DAYS (30 days)' },
    });
  });

  test('Loki: the service from service_name, else service, else job, else app; other labels under labels; structured metadata in metadata', async () => {
    const ts = () => `${BigInt(Date.now()) * 1_000_000n}`;
    const res = await loki({
      streams: [
        { stream: { service_name: 'loki-a', job: 'ignored', env: 'prod' }, values: [[ts(), 'from service_name', { trace_id: 'abc' }]] },
        { stream: { service: 'loki-b', job: 'ignored' }, values: [[ts(), 'from service']] },
        { stream: { job: 'loki-c', app: 'ignored' }, values: [[ts(), 'from job']] },
        { stream: { app: 'loki-d' }, values: [[ts(), 'from app']] },
        { stream: { env: 'dev' }, values: [[ts(), 'from nothing']] },
      ],
    });
    expect(res.status).toBe(204);
    const [a] = await events(svc, 'service=loki-a');
    expect(a).toMatchObject({ message: 'from service_name', metadata: { trace_id: 'abc', labels: { job: 'ignored', env: 'prod' } } });
    expect((await events(svc, 'service=loki-b'))[0]!.metadata).toEqual({ labels: { job: 'ignored' } });
    expect((await events(svc, 'service=loki-c'))[0]!.message).toBe('from job');
    expect((await events(svc, 'service=loki-d'))[0]!.message).toBe('from app');
    expect((await events(svc, 'service=unknown_service')).map((e) => e.message)).toContain('from nothing');
  });

  test('a key named __proto__ (OTLP attribute or resource attribute, Loki label or structured metadata) is kept like any other, in cut metadata too', async () => {
    // An object literal's setter takes "__proto__" as the prototype: built that way, the key was lost.
    const own = (o: object, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value as unknown;
    const proto = <T>(v: T) => Object.fromEntries([['__proto__', v]]) as Record<string, T>;
    const records = [
      {
        timeUnixNano: nowNs(),
        body: { stringValue: 'whole' },
        attributes: [{ key: '__proto__', value: { kvlistValue: { values: [{ key: 'x', value: { stringValue: '1' } }] } } }],
      },
      {
        timeUnixNano: nowNs(),
        body: { stringValue: 'cut' },
        attributes: [
          { key: '__proto__', value: { stringValue: 'kept' } },
          { key: 'big', value: { stringValue: 'y'.repeat(600) } },
        ],
      },
    ];
    expect((await otlp(otlpJson('proto-otlp', records, proto({ stringValue: 'r' })))).status).toBe(200);
    const stored = await events(svc, 'service=proto-otlp');
    const whole = stored.find((e) => e.message === 'whole')!;
    expect(own(whole.metadata, '__proto__')).toEqual({ x: '1' });
    expect(own(whole.metadata.resource, '__proto__')).toBe('r');
    const cut = stored.find((e) => e.message === 'cut')!;
    expect(own(cut.metadata, '__proto__')).toBe('kept');
    expect(cut.metadata._cut).toBeDefined();
    const ts = `${BigInt(Date.now()) * 1_000_000n}`;
    expect((await loki({ streams: [{ stream: { service_name: 'proto-loki', ...proto('l') }, values: [[ts, 'json', proto('s')]] }] })).status).toBe(204);
    const [j] = await events(svc, 'service=proto-loki');
    expect([own(j!.metadata, '__proto__'), own(j!.metadata.labels, '__proto__')]).toEqual(['s', 'l']);
    const pb = PushRequest.encode(
      PushRequest.fromObject({
        streams: [{ labels: '{service_name="proto-lpb", __proto__="l"}', entries: [{ timestamp: { seconds: Math.floor(Date.now() / 1000) }, line: 'pb' }] }],
      }),
    ).finish();
    expect(
      (
        await svc.app.request('/loki/api/v1/push', {
          method: 'POST',
          headers: { 'content-type': 'application/x-protobuf' },
          body: compressSync(Buffer.from(pb)),
        })
      ).status,
    ).toBe(204);
    await until(() => svc.queue.depth === 0);
    const [b] = await events(svc, 'service=proto-lpb');
    expect(own(b!.metadata.labels, '__proto__')).toBe('l');
  });

  test('Loki protobuf: labels parsed from their text form, escapes included; timestamps to the microsecond', async () => {
    const secs = Math.floor(Date.now() / 1000) - 60;
    const body = PushRequest.encode(
      PushRequest.fromObject({
        streams: [
          {
            labels: '{service_name="loki-pb", path="C:\\\\logs\\\\a \\"b\\""}',
            entries: [{ timestamp: { seconds: secs, nanos: 123_456_789 }, line: 'protobuf line', structuredMetadata: [{ name: 'user', value: 'u1' }] }],
          },
        ],
      }),
    ).finish();
    const res = await svc.app.request('/loki/api/v1/push', {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: compressSync(Buffer.from(body)),
    });
    expect(res.status).toBe(204);
    await until(() => svc.queue.depth === 0);
    const [e] = await events(svc, 'service=loki-pb');
    expect(e).toMatchObject({
      message: 'protobuf line',
      timestamp: `${new Date(secs * 1000).toISOString().slice(0, 19)}.123456Z`,
      metadata: { user: 'u1', labels: { path: 'C:\\logs\\a "b"' } },
    });
  });
});

describe('fitting a decoded record into an event', () => {
  test('timestamps are kept to the microsecond, rounded down, before 1970 as after (RETENTION_DAYS reaches 100 years)', () => {
    const fit = makeFitter(loadConfig({}).limits);
    const time = (ns: bigint) => (fit({ service: 's', timeNs: ns, message: 'm', metadata: {} }, 0) as Fitted).time;
    expect(time(1_732_900_000_123_456_789n)).toBe('2024-11-29T17:06:40.123456Z');
    expect(time(-1_500n)).toBe('1969-12-31T23:59:59.999998Z');
    expect(time(-999n)).toBe('1969-12-31T23:59:59.999999Z');
    expect(time(-14_182_939_999_876_543_211n)).toBe('1520-07-24T14:26:40.123456Z');
    expect(time(253_402_300_799_999_999_999n)).toBe('9999-12-31T23:59:59.999999Z'); // beyond a double's exact range
    expect(time(1_000n)).toBe('1970-01-01T00:00:00.000001Z'); // the same millisecond as before: formatted once, right
  });

  test('a record from before 1970 is stored with its time and a valid id when RETENTION_DAYS reaches back that far [embedded]', async () => {
    const target = await newTarget('embedded');
    const svc = await startService(target, { RETENTION_DAYS: '36500' });
    try {
      const moon = BigInt(Date.UTC(1969, 6, 20, 20, 17, 40)) * 1_000_000n + 123_456_789n;
      const res = await svc.app.request('/v1/logs?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(otlpJson('otlp-1969', [{ timeUnixNano: `${moon}`, body: { stringValue: 'one small step' } }])),
      });
      expect(await res.json()).toEqual({}); // nothing rejected
      const [e] = await events(svc, 'service=otlp-1969&from=1969-01-01T00:00:00Z');
      expect(e).toMatchObject({ message: 'one small step', timestamp: '1969-07-20T20:17:40.123456Z' });
      expect(e!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      await svc.stop();
      await target.destroy();
    }
  });
});

describe('hostile bodies on both receivers [embedded]', () => {
  let target: Target;
  let svc: Svc;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { BATCH_MAX_EVENTS: '10000' });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const post = (path: string, type: string, body: string | Uint8Array | Buffer, headers: Record<string, string> = {}) =>
    svc.app.request(path, { method: 'POST', headers: { 'content-type': type, ...headers }, body });
  const status = async (res: Response) => Status.toObject(Status.decode(new Uint8Array(await res.arrayBuffer())));
  const valid = (service: string) =>
    OtlpRequest.encode(
      OtlpRequest.fromObject({
        resourceLogs: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
            scopeLogs: [{ logRecords: [{ timeUnixNano: nowNs(), body: { stringValue: 'ok' } }] }],
          },
        ],
      }),
    ).finish();

  test('truncated protobuf: 400 with a google.rpc.Status (INVALID_ARGUMENT) for OTLP, plain text for Loki', async () => {
    const full = valid('hostile');
    const res = await post('/v1/logs', 'application/x-protobuf', full.slice(0, full.length - 5));
    expect(res.status).toBe(400);
    expect(await status(res)).toMatchObject({ code: 3, message: expect.stringContaining('protobuf') });
    const lokiBody = compressSync(
      Buffer.from(PushRequest.encode(PushRequest.fromObject({ streams: [{ labels: '{job="x"}', entries: [{ line: 'y'.repeat(100) }] }] })).finish()),
    );
    const cut = await post('/loki/api/v1/push', 'application/x-protobuf', lokiBody.subarray(0, lokiBody.length - 10));
    expect(cut.status).toBe(400);
    expect(cut.headers.get('content-type')).toContain('text/plain');
    const notSnappy = await post('/loki/api/v1/push', 'application/x-protobuf', new Uint8Array([1, 2, 3, 4, 5]));
    expect(notSnappy.status).toBe(400);
  });

  test('wrong field types: a request that cannot be read is 400 naming the field; a bad record is counted and its request-mates stored', async () => {
    const bad = await post('/v1/logs', 'application/json', JSON.stringify({ resourceLogs: { not: 'a list' } }));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: 3, message: 'resourceLogs must be an array' });
    const mixed = await post(
      '/v1/logs?wait=true',
      'application/json',
      JSON.stringify(
        otlpJson('hostile-mixed', [
          { timeUnixNano: { x: 1 }, body: { stringValue: 'bad time' } },
          { timeUnixNano: nowNs(), traceId: 'not-hex', body: { stringValue: 'bad id' } },
          { timeUnixNano: nowNs(), body: { stringValue: 'good' } },
        ]),
      ),
    );
    expect(mixed.status).toBe(200);
    const body = (await mixed.json()) as { partialSuccess: { rejectedLogRecords: string; errorMessage: string } };
    expect(body.partialSuccess.rejectedLogRecords).toBe('2');
    expect(body.partialSuccess.errorMessage).toContain('timeUnixNano must be an integer');
    expect(body.partialSuccess.errorMessage).toContain('traceId must be 16 bytes as hex');
    expect(await (await svc.app.request('/events?service=hostile-mixed')).json()).toMatchObject({ pagination: { total: 1 } });
    const lokiBad = await post(
      '/loki/api/v1/push',
      'application/json',
      JSON.stringify({
        streams: [
          {
            stream: { job: 'hostile-loki' },
            values: [
              ['not a time', 'x'],
              [`${BigInt(Date.now()) * 1_000_000n}`, 'fine'],
              ['1', 42],
              [{ seconds: 'abc' }, 'protobuf shape'],
              [{ seconds: 1.5 }, 'x'],
              [[1, 2], 'x'],
              [1.7e18, 'x'],
            ],
          },
        ],
      }),
    );
    expect(lokiBad.status).toBe(400);
    const why = await lokiBad.text();
    expect(why).toMatch(/^6 of 7 entries not stored, the others were: streams\[0\]\.values\[0\]: the timestamp/);
    // The protobuf form of a timestamp ({seconds, nanos}) is not Loki's JSON: refused as a bad timestamp, not a 500.
    for (const i of [3, 4]) expect(why).toContain(`streams[0].values[${i}]: the timestamp must be a string of nanoseconds`);
    await until(() => svc.queue.depth === 0);
    expect(await (await svc.app.request('/events?service=hostile-loki')).json()).toMatchObject({ pagination: { total: 1 } });
  });

  test('JSON objects where text or a number belongs (even with a toString or valueOf key) are 400 or a counted record, never a 5xx', async () => {
    // String() and Number() throw on an object whose toString/valueOf are not functions: JSON can send one.
    const trap = { toString: 1, valueOf: 'x' };
    const records = [
      { timeUnixNano: nowNs(), body: { stringValue: trap } },
      { timeUnixNano: nowNs(), body: { stringValue: { a: 1 } } },
      { timeUnixNano: nowNs(), body: { bytesValue: trap } },
      { timeUnixNano: nowNs(), body: { doubleValue: trap } },
      { timeUnixNano: nowNs(), body: { stringValue: 'kept' }, severityNumber: trap, flags: trap },
    ];
    const res = await post('/v1/logs?wait=true', 'application/json', JSON.stringify(otlpJson('hostile-trap', records)));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { partialSuccess: { rejectedLogRecords: string; errorMessage: string } };
    expect(body.partialSuccess.rejectedLogRecords).toBe('4');
    expect(body.partialSuccess.errorMessage).toContain('logRecords[0].body.stringValue must be a string');
    const [kept] = ((await (await svc.app.request('/events?service=hostile-trap')).json()) as { events: Stored[] }).events;
    expect(kept).toMatchObject({ message: 'kept', metadata: {} }); // the unreadable severity and flags left out
    const scope = otlpJson('hostile-trap', [{ body: { stringValue: 'x' } }]);
    (scope.resourceLogs[0]!.scopeLogs[0] as Record<string, unknown>).scope = { name: trap };
    const badScope = await post('/v1/logs', 'application/json', JSON.stringify(scope));
    expect(badScope.status).toBe(400);
    expect(await badScope.json()).toEqual({ code: 3, message: 'resourceLogs[0].scopeLogs[0].scope.name must be a string' });
    const label = await post(
      '/loki/api/v1/push',
      'application/json',
      JSON.stringify({ streams: [{ stream: { job: 'hostile-trap', env: trap }, values: [[`${BigInt(Date.now()) * 1_000_000n}`, 'x']] }] }),
    );
    expect(label.status).toBe(400);
    expect(await label.text()).toBe('streams[0].stream: the label env must be a string\n');
  });

  test('a snappy bomb and a gzip bomb are 413 before they are inflated', async () => {
    // A snappy block declares its length first: 1 GiB here, in a few bytes.
    const bomb = new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x04, 0x00]);
    const res = await post('/loki/api/v1/push', 'application/x-protobuf', bomb);
    expect(res.status).toBe(413);
    const zip = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
    for (const path of ['/v1/logs', '/loki/api/v1/push']) {
      const g = await post(path, 'application/json', zip, { 'content-encoding': 'gzip' });
      expect(g.status).toBe(413);
    }
  });

  test('100,000 records in one request: 413 naming BATCH_MAX_EVENTS, on both routes', async () => {
    const records = Array.from({ length: 100_000 }, () => ({ body: { stringValue: 'x' } }));
    const res = await post('/v1/logs', 'application/json', JSON.stringify(otlpJson('hostile-many', records)));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ message: expect.stringContaining('BATCH_MAX_EVENTS') });
    const lines = { streams: [{ stream: { job: 'hostile-many' }, values: Array.from({ length: 100_000 }, (_, i) => [`${i + 1}`, 'x']) }] };
    const l = await post('/loki/api/v1/push', 'application/json', JSON.stringify(lines));
    expect(l.status).toBe(413);
    expect(await l.text()).toContain('BATCH_MAX_EVENTS');
    expect(svc.queue.depth).toBe(0);
  });

  test('deeply nested AnyValue: stored with a marker below 32 levels; nesting the decoder cannot follow is 400', async () => {
    let v: Record<string, unknown> = { stringValue: 'bottom' };
    for (let i = 0; i < 40; i++) v = { arrayValue: { values: [v] } };
    const res = await post('/v1/logs?wait=true', 'application/json', JSON.stringify(otlpJson('hostile-deep', [{ timeUnixNano: nowNs(), body: v }])));
    expect(res.status).toBe(200);
    const [e] = ((await (await svc.app.request('/events?service=hostile-deep')).json()) as { events: Stored[] }).events;
    expect(e!.message).toContain('[nested deeper than 32 levels]');
    // 200,000 levels of protobuf nesting in a 1 MB body
    const depth = 200_000;
    const bytes: number[] = [];
    for (let i = 0; i < depth; i++) bytes.push(0x2a, 0x80, 0x80, 0x01); // field 5 (array_value), a length the decoder will find wrong
    const deep = await post('/v1/logs', 'application/x-protobuf', new Uint8Array(bytes));
    expect(deep.status).toBe(400);
  });

  test('invalid UTF-8: 400 in JSON bodies and in protobuf strings (proto3 strings are UTF-8), never a 5xx', async () => {
    const bad = new Uint8Array([
      ...Buffer.from('{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"'),
      0xff,
      0xfe,
      ...Buffer.from('"}}]}]}]}'),
    ]);
    expect((await post('/v1/logs', 'application/json', bad)).status).toBe(400);
    expect((await post('/loki/api/v1/push', 'application/json', bad)).status).toBe(400);
    // A protobuf string field holding bytes that are not UTF-8.
    const text = valid('hostile-utf8');
    const at = Buffer.from(text).indexOf(Buffer.from('ok'));
    const broken = Buffer.from(text);
    broken[at] = 0xff;
    const res = await post('/v1/logs?wait=true', 'application/x-protobuf', broken);
    expect(res.status).toBe(400);
    expect(await status(res)).toMatchObject({ code: 3, message: expect.stringContaining('utf-8') });
    expect((await post('/v1/logs?wait=true', 'application/x-protobuf', text)).status).toBe(200); // the same request, intact
  });

  test('unsupported content types are 415, and the service is healthy after all of the above', async () => {
    expect((await post('/v1/logs', 'text/plain', 'x')).status).toBe(415);
    expect((await post('/loki/api/v1/push', 'text/plain', 'x')).status).toBe(415);
    expect((await svc.app.request('/health')).status).toBe(200);
    expect((await post('/v1/logs?wait=true', 'application/x-protobuf', valid('hostile-after'))).status).toBe(200);
    expect(await (await svc.app.request('/events?service=hostile-after')).json()).toMatchObject({ pagination: { total: 1 } });
  });
});

describe("refusals in each protocol's own shape [embedded]", () => {
  test('queue full: OTLP 429 with Retry-After and a RESOURCE_EXHAUSTED Status; Loki 429 with Retry-After in plain text; no key: 401 UNAUTHENTICATED', async () => {
    const target = await newTarget('embedded');
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const svc = await startService(
      target,
      { QUEUE_MAX_EVENTS: '1', API_KEYS: 'agent:ingest:agent-secret-0123456789' },
      { faults: { beforeWrite: () => gate } },
    );
    try {
      const auth = { authorization: 'Bearer agent-secret-0123456789' };
      const one = JSON.stringify(otlpJson('full', [{ timeUnixNano: nowNs(), body: { stringValue: 'first' } }]));
      expect((await svc.app.request('/v1/logs', { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: one })).status).toBe(200);
      const full = await svc.app.request('/v1/logs', {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf', ...auth },
        body: OtlpRequest.encode(OtlpRequest.fromObject(otlpJson('full', [{ timeUnixNano: nowNs(), body: { stringValue: 'second' } }]))).finish(),
      });
      expect(full.status).toBe(429);
      expect(full.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(Status.toObject(Status.decode(new Uint8Array(await full.arrayBuffer())))).toMatchObject({ code: 8 });
      const lokiFull = await svc.app.request('/loki/api/v1/push', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ streams: [{ stream: { job: 'full' }, values: [[`${BigInt(Date.now()) * 1_000_000n}`, 'x']] }] }),
      });
      expect(lokiFull.status).toBe(429);
      expect(lokiFull.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await lokiFull.text()).toContain('Buffer is full');
      const noKey = await svc.app.request('/v1/logs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: one });
      expect(noKey.status).toBe(401);
      expect(await noKey.json()).toMatchObject({ code: 16 });
    } finally {
      open();
      await svc.stop();
      await target.destroy();
    }
  });
});
