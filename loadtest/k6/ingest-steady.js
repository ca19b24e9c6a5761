// @ts-check
// Steady single-event ingest at a constant arrival rate (RATE events/s for DURATION).
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=2000 -e DURATION=2m loadtest/k6/ingest-steady.js
// Defaults (RATE 500/s; p95 < 100 ms, p99 < 250 ms: P95_MS, P99_MS) hold with k6 and the service on one 2-vCPU machine.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, event, headers, ingestThresholds, latency, num, record, runService, verifyStored } from './lib.js';

const RATE = num('RATE', 500);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: num('VUS', 50),
      maxVUs: num('MAX_VUS', 500),
    },
  },
  thresholds: {
    ...ingestThresholds,
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:ingest}': latency(100, 250),
    dropped_iterations: [`count<${Math.ceil(RATE)}`], // under a second's worth: the rate was really offered
  },
};

export function setup() {
  return { service: runService('steady') };
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
