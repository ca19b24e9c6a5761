// Request bodies as agents send them, for the benchmark: OTLP protobuf batches (as the OpenTelemetry
// SDK's protobuf exporter sends them) and Loki protobuf pushes (snappy-compressed, as Promtail and
// Alloy send them), 500 records each; and the per-event cost of each stage of the write path on the
// main thread (NDJSON, OTLP and Loki decoding into queue records) and on a writer (COPY text),
// measured in-process on the same bodies.
import protobuf from 'protobufjs';
import { compressSync } from 'snappy';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../src/config';
import { makeFitter } from '../src/receive/fit';
import { readLoki } from '../src/receive/loki';
import { readOtlp } from '../src/receive/otlp';
import { batchItems } from '../src/receive/events';
import { makeEventValidator, type ValidEvent } from '../src/receive/validate';
import { copyText } from '../src/store/record';

const proto = (file: string) => protobuf.parse(readFileSync(new URL(`../src/receive/proto/${file}`, import.meta.url), 'utf8')).root;
const OtlpRequest = proto('otlp_logs.proto').lookupType('aurore.otlp.ExportLogsServiceRequest');
const PushRequest = proto('loki_push.proto').lookupType('aurore.loki.PushRequest');
const MESSAGE = 'Order placed successfully for customer after payment authorization';

/**
 * One OTLP request of `n` records of `service`. Without timestamps of their own (the service's clock
 * applies) the same body can be sent again and again and every record is a new event.
 */
export function otlpBody(service: string, n = 500): Uint8Array {
  const kv = (key: string, v: Record<string, unknown>) => ({ key, value: v });
  const logRecords = Array.from({ length: n }, (_, i) => ({
    severityText: 'INFO',
    severityNumber: 9,
    body: { stringValue: MESSAGE },
    attributes: [
      kv('user_id', { stringValue: String(12345 + i) }),
      kv('order_id', { stringValue: `ord_${98765 + i}` }),
      kv('amount', { doubleValue: 129.99 }),
      kv('items', { intValue: 3 }),
    ],
  }));
  return OtlpRequest.encode(
    OtlpRequest.fromObject({
      resourceLogs: [
        {
          resource: { attributes: [kv('service.name', { stringValue: service }), kv('host.name', { stringValue: 'bench' })] },
          scopeLogs: [{ scope: { name: 'bench', version: '1' }, logRecords }],
        },
      ],
    }),
  ).finish();
}

/** Loki pushes of `n` entries each, every one with its own timestamps (entries carry their time, so each body is sent once). */
export function lokiBodies(service: string, count: number, n = 500): Buffer[] {
  const base = BigInt(Date.now() - 60_000) * 1_000_000n;
  return Array.from({ length: count }, (_, b) => {
    const entries = Array.from({ length: n }, (_, i) => {
      const ns = base + BigInt(b * n + i) * 1000n;
      return {
        timestamp: { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) },
        line: MESSAGE,
        structuredMetadata: [{ name: 'user_id', value: String(12345 + i) }],
      };
    });
    return compressSync(
      Buffer.from(
        PushRequest.encode(PushRequest.fromObject({ streams: [{ labels: `{service_name="${service}", env="bench", region="eu-west-1"}`, entries }] })).finish(),
      ),
    );
  });
}

/** Microseconds of decode + map + fit per record, for each receiver, on 500-record bodies. */
export function decodingCost(rounds = 200) {
  const limits = loadConfig({}).limits;
  const fit = makeFitter(limits);
  const otlp = otlpBody('bench-decode');
  const loki = lokiBodies('bench-decode', 1)[0]!;
  const time = (f: () => number) => {
    for (let i = 0; i < 20; i++) f(); // warm up the JIT
    const t = performance.now();
    let records = 0;
    for (let i = 0; i < rounds; i++) records += f();
    return Math.round(((performance.now() - t) * 1000 * 100) / records) / 100;
  };
  const validate = makeEventValidator(limits);
  const ndjson = Array.from({ length: 500 }, (_, i) =>
    JSON.stringify({ service: 'bench-decode', message: `${MESSAGE} ${i}`, metadata: { user_id: '12345', region: 'eu-west-1', amount: 129.99 } }),
  ).join('\n');
  const records = batchItems(ndjson, true, 10_000).map((it) => (validate(it.value) as ValidEvent).record);
  const queued = `[${records.join(',')}]`;
  return {
    ndjson_us_per_event: time(() => batchItems(ndjson, true, 10_000).map((it) => validate(it.value)).length),
    otlp_protobuf_us_per_record: time(() => readOtlp(otlp, true, fit, 10_000).fitted.length),
    loki_protobuf_us_per_record: time(() => readLoki(loki, true, fit, limits).fitted.length),
    copy_text_us_per_event: time(() => (copyText(queued) === null ? 0 : records.length)),
  };
}

/** Bodies in the form loadtest/load.ts reads (bodiesFile): a 4-byte length before each. */
export function bodiesFile(bodies: Uint8Array[]): Buffer {
  return Buffer.concat(
    bodies.flatMap((b) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return [len, Buffer.from(b)];
    }),
  );
}
