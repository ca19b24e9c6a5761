// @ts-check
// A spike: ramp from RATE to SPIKE_FACTOR x RATE, hold, and back. The service must shed the excess
// with 429 (or 503) and Retry-After, never a 5xx, and store every event it acknowledged.
//   k6 run -e RATE=5000 -e SPIKE_FACTOR=5 loadtest/k6/ingest-spike.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, event, headers, ingestThresholds, num, record, runService, verifyStored } from './lib.js';

const RATE = num('RATE', 2000);
const PEAK = RATE * num('SPIKE_FACTOR', 5);

// 429 is an expected answer here, not a failed request.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 429, 503));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: RATE,
      timeUnit: '1s',
      preAllocatedVUs: num('VUS', 100),
      maxVUs: num('MAX_VUS', 2000),
      stages: [
        { target: RATE, duration: '20s' },
        { target: PEAK, duration: '10s' },
        { target: PEAK, duration: __ENV.PEAK_DURATION || '30s' },
        { target: RATE, duration: '10s' },
        { target: RATE, duration: '20s' },
      ],
    },
  },
  thresholds: {
    ...ingestThresholds,
    // Set EXPECT_429=false when the service has room for the peak (then it never needs to refuse).
    rate_limited: __ENV.EXPECT_429 === 'false' ? ['count>=0'] : ['count>0'],
    'checks{check:refusals carry Retry-After}': ['rate==1'],
    'http_req_duration{name:ingest}': ['p(99)<500'],
  },
};

export function setup() {
  return { service: runService('spike') };
}

/** @param {{ service: string }} data */
export default function (data) {
  const res = http.post(`${BASE_URL}/events`, JSON.stringify(event(data.service)), { headers: headers(), tags: { name: 'ingest' } });
  check(res, { 'accepted or refused with backpressure': (r) => r.status === 202 || r.status === 429 || r.status === 503 });
  record(res, 1);
}

/** @param {{ service: string }} data */
export function teardown(data) {
  verifyStored(data.service);
}
