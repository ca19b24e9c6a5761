// @ts-check
// Batch ingest: NDJSON bodies of BATCH_EVENTS events (default 500) at RATE requests/s.
//   k6 run -e RATE=40 -e BATCH_EVENTS=500 loadtest/k6/ingest-batch.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, event, headers, ingestThresholds, latency, num, record, runService, verifyStored } from './lib.js';

const BATCH_EVENTS = num('BATCH_EVENTS', 500);
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 429));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    batches: {
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
    'http_req_duration{name:batch}': latency(250, 500),
    'checks{check:every event in the batch accepted}': ['rate>0.99'],
  },
};

export function setup() {
  return { service: runService('batch') };
}

/** @param {{ service: string }} data */
export default function (data) {
  const lines = [];
  for (let i = 0; i < BATCH_EVENTS; i++) lines.push(JSON.stringify(event(data.service)));
  const res = http.post(`${BASE_URL}/events/batch`, lines.join('\n'), {
    headers: headers({ 'Content-Type': 'application/x-ndjson' }),
    tags: { name: 'batch' },
  });
  const ok = res.status === 202;
  check(res, { 'every event in the batch accepted': () => ok && res.json('accepted') === BATCH_EVENTS });
  record(res, ok ? Number(res.json('accepted')) : 0);
}

/** @param {{ service: string }} data */
export function teardown(data) {
  verifyStored(data.service);
}
