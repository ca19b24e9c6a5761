// @ts-check
// A read mix against stored events: newest-first pages of one service, a time window, deep pages,
// and the health endpoints, at RATE requests/s. Seeds its own events first.
//   k6 run -e RATE=200 loadtest/k6/query-mix.js
// Not yet here: cursor pagination, /metrics/events and /health/business arrive with their issues
// (query API, metrics); this script covers the query surface the service has today.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, headers, num, runService } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    reads: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 100),
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: num('VUS', 20),
      maxVUs: num('MAX_VUS', 200),
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:page}': ['p(95)<50'],
    'http_req_duration{name:window}': ['p(95)<50'],
    'http_req_duration{name:deep-page}': ['p(95)<200'],
    checks: ['rate>0.99'],
  },
};

const SEED = num('SEED_EVENTS', 5000);

export function setup() {
  const service = runService('query');
  const now = Date.now();
  for (let sent = 0; sent < SEED; sent += 1000) {
    const lines = [];
    for (let i = sent; i < Math.min(SEED, sent + 1000); i++) {
      lines.push(JSON.stringify({ service, message: `seed ${i}`, timestamp: new Date(now - i * 1000).toISOString(), metadata: { i } }));
    }
    const res = http.post(`${BASE_URL}/events/batch?wait=true`, lines.join('\n'), { headers: headers({ 'Content-Type': 'application/x-ndjson' }) });
    check(res, { 'seed batch stored': (r) => r.status === 201 });
  }
  return { service, from: new Date(now - 3600 * 1000).toISOString(), to: new Date(now).toISOString() };
}

/** @param {{ service: string, from: string, to: string }} data */
export default function (data) {
  const s = encodeURIComponent(data.service);
  const pick = Math.random();
  let res;
  if (pick < 0.5) {
    res = http.get(`${BASE_URL}/events?service=${s}&pageSize=50`, { headers: headers(), tags: { name: 'page' } });
  } else if (pick < 0.8) {
    const q = `service=${s}&from=${encodeURIComponent(data.from)}&to=${encodeURIComponent(data.to)}&pageSize=100`;
    res = http.get(`${BASE_URL}/events?${q}`, { headers: headers(), tags: { name: 'window' } });
  } else if (pick < 0.95) {
    const page = 1 + Math.floor(Math.random() * Math.max(1, SEED / 100 - 1));
    res = http.get(`${BASE_URL}/events?service=${s}&pageSize=100&page=${page}`, { headers: headers(), tags: { name: 'deep-page' } });
  } else {
    res = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
  }
  check(res, { 'answered 200': (r) => r.status === 200 });
}
