// @ts-check
// A read mix against stored events at RATE requests/s: newest-first pages of one service, a time
// window, a cursor walk, metadata and message filters, single events by id, and health. Seeds its
// own events first.
//   k6 run -e RATE=200 loadtest/k6/query-mix.js
// Not yet here: /metrics/events and /health/business, which arrive with the metrics issue.
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
    'http_req_duration{name:cursor-walk}': ['p(95)<50'],
    'http_req_duration{name:filter}': ['p(95)<100'],
    'http_req_duration{name:by-id}': ['p(95)<20'],
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
      const kind = i % 3 === 0 ? 'Payment failed' : 'Order placed';
      lines.push(JSON.stringify({ service, message: `${kind} ${i}`, timestamp: new Date(now - i * 1000).toISOString(), metadata: { user: `u${i % 100}` } }));
    }
    const res = http.post(`${BASE_URL}/events/batch?wait=true`, lines.join('\n'), { headers: headers({ 'Content-Type': 'application/x-ndjson' }) });
    check(res, { 'seed batch stored': (r) => r.status === 201 });
  }
  const first = http.get(`${BASE_URL}/events?service=${encodeURIComponent(service)}&pageSize=1&count=none`, { headers: headers() });
  const id = first.status === 200 ? String(first.json('events.0.id')) : '';
  return { service, id, from: new Date(now - 3600 * 1000).toISOString(), to: new Date(now).toISOString() };
}

/** @param {{ service: string, id: string, from: string, to: string }} data */
export default function (data) {
  const s = encodeURIComponent(data.service);
  const pick = Math.random();
  let res;
  if (pick < 0.5) {
    res = http.get(`${BASE_URL}/events?service=${s}&pageSize=50`, { headers: headers(), tags: { name: 'page' } });
  } else if (pick < 0.8) {
    const q = `service=${s}&from=${encodeURIComponent(data.from)}&to=${encodeURIComponent(data.to)}&pageSize=100`;
    res = http.get(`${BASE_URL}/events?${q}`, { headers: headers(), tags: { name: 'window' } });
  } else if (pick < 0.9) {
    // A short cursor walk: five pages of 50, each from the previous page's next_cursor.
    let cursor = '';
    for (let i = 0; i < 5; i++) {
      res = http.get(`${BASE_URL}/events?service=${s}&pageSize=50&count=none${cursor ? `&cursor=${cursor}` : ''}`, { headers: headers(), tags: { name: 'cursor-walk' } });
      if (res.status !== 200) break;
      cursor = String(res.json('pagination.next_cursor') || '');
      if (!cursor) break;
    }
  } else if (pick < 0.95) {
    const filter = Math.random() < 0.5 ? `metadata.user=u${Math.floor(Math.random() * 100)}` : 'q=payment%20failed';
    res = http.get(`${BASE_URL}/events?service=${s}&${filter}&pageSize=50`, { headers: headers(), tags: { name: 'filter' } });
  } else if (pick < 0.98) {
    res = http.get(`${BASE_URL}/events/${data.id}`, { headers: headers(), tags: { name: 'by-id' } });
  } else {
    res = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
  }
  if (res) check(res, { 'answered 200': (r) => r.status === 200 });
}
