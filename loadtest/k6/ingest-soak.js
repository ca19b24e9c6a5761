// @ts-check
// A soak: a moderate constant rate for a long time (default 30 minutes). Latency must not drift,
// nothing may fail, and every acknowledged event must be stored.
//   k6 run -e RATE=1000 -e DURATION=2h loadtest/k6/ingest-soak.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, event, headers, ingestThresholds, num, record, runService, verifyStored } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 500),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30m',
      preAllocatedVUs: num('VUS', 50),
      maxVUs: num('MAX_VUS', 500),
    },
  },
  thresholds: {
    ...ingestThresholds,
    http_req_failed: ['rate<0.001'],
    'http_req_duration{name:ingest}': [`p(99)<${num('P99_MS', 250)}`, `max<${num('MAX_MS', 2000)}`],
  },
};

export function setup() {
  return { service: runService('soak') };
}

/** @param {{ service: string }} data */
export default function (data) {
  const res = http.post(`${BASE_URL}/events`, JSON.stringify(event(data.service)), { headers: headers(), tags: { name: 'ingest' } });
  check(res, { 'accepted (202)': (r) => r.status === 202 });
  record(res, 1);
}

/** @param {{ service: string }} data */
export function teardown(data) {
  verifyStored(data.service);
}
