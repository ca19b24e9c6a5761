// @ts-check
// OpenTelemetry logs over OTLP/HTTP in JSON: what an OpenTelemetry SDK or Collector sends to
// POST /v1/logs, RECORDS log records a request at RATE requests/s; every record must be stored.
//   k6 run -e RATE=20 -e RECORDS=200 loadtest/k6/ingest-otlp.js
// Defaults (RATE 20/s of 100 records; p95 < 250 ms, p99 < 500 ms: P95_MS, P99_MS) hold with k6 and
// the service on one 2-vCPU machine.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, headers, ingestThresholds, latency, num, record, runService, verifyStored } from './lib.js';

const RECORDS = num('RECORDS', 100);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    otlp: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 20),
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: num('VUS', 10),
      maxVUs: num('MAX_VUS', 100),
    },
  },
  thresholds: {
    ...ingestThresholds,
    'http_req_duration{name:otlp}': latency(250, 500),
    'checks{check:every record accepted}': ['rate>0.99'],
  },
};

export function setup() {
  return { service: runService('otlp') };
}

/** @param {{ service: string }} data */
export default function (data) {
  const now = Date.now();
  const logRecords = [];
  for (let i = 0; i < RECORDS; i++) {
    logRecords.push({
      // nanoseconds as a string (OTLP/JSON's 64-bit integers); distinct per record
      timeUnixNano: `${now}${String(__VU % 1000).padStart(3, '0')}${String(i % 1000).padStart(3, '0')}`,
      severityText: 'INFO',
      severityNumber: 9,
      body: { stringValue: 'Order placed successfully for customer after payment authorization' },
      attributes: [
        { key: 'user_id', value: { stringValue: String(Math.floor(Math.random() * 1e6)) } },
        { key: 'iteration', value: { intValue: String(__ITER) } },
      ],
    });
  }
  const body = {
    resourceLogs: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: data.service } }] },
        scopeLogs: [{ scope: { name: 'k6', version: '1' }, logRecords }],
      },
    ],
  };
  const res = http.post(`${BASE_URL}/v1/logs`, JSON.stringify(body), { headers: headers(), tags: { name: 'otlp' } });
  // 200 with no partialSuccess: every record of the request was taken.
  const ok = res.status === 200 && !res.json('partialSuccess');
  check(res, { 'every record accepted': () => ok });
  record(res, ok ? RECORDS : 0);
}

/** @param {{ service: string }} data */
export function teardown(data) {
  verifyStored(data.service);
}
