// @ts-check
// A spike: ramp from RATE to SPIKE_FACTOR x RATE, hold, and back. The service must shed the excess
// with 429 (or 503) and Retry-After, never a 5xx, and store every event it acknowledged.
//   k6 run -e RATE=5000 -e SPIKE_FACTOR=5 -e EXPECT_429=true loadtest/k6/ingest-spike.js
// Stages: HOLD (20s) at RATE, RAMP (10s) up, PEAK_DURATION (30s) at the peak, RAMP down, HOLD.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, event, headers, ingestThresholds, num, record, runService, verifyStored } from './lib.js';

const RATE = num('RATE', 1000);
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
        { target: RATE, duration: __ENV.HOLD || '20s' },
        { target: PEAK, duration: __ENV.RAMP || '10s' },
        { target: PEAK, duration: __ENV.PEAK_DURATION || '30s' },
        { target: RATE, duration: __ENV.RAMP || '10s' },
        { target: RATE, duration: __ENV.HOLD || '20s' },
      ],
    },
  },
  thresholds: {
    ...ingestThresholds,
    // EXPECT_429=true when the peak is beyond what the service takes (it must then refuse some). The
    // default peak (5,000/s) is what k6 can offer from a 2-vCPU machine, within the service's capacity.
    rate_limited: __ENV.EXPECT_429 === 'true' ? ['count>0'] : ['count>=0'],
    'http_req_duration{name:ingest}': [`p(99)<${num('P99_MS', 500)}`],
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
