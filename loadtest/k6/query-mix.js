// @ts-check
// A read mix against stored events at RATE requests/s: newest-first pages of one service, a time
// window, a cursor walk, metadata and message filters, single events by id, the metrics API
// (/metrics/events over the last 24 hours, /health/business) and health. Seeds its own events first.
//   k6 run -e RATE=200 loadtest/k6/query-mix.js
import http from 'k6/http';
import { check, sleep } from 'k6';
import { BASE_URL, headers, latency, num, runService } from './lib.js';

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
    // One ceiling for every read (P95_MS, default 100 ms: k6 and the service on one 2-vCPU machine).
    'http_req_duration{name:page}': latency(100),
    'http_req_duration{name:window}': latency(100),
    'http_req_duration{name:cursor-walk}': latency(100),
    'http_req_duration{name:filter}': latency(100),
    'http_req_duration{name:by-id}': latency(100),
    'http_req_duration{name:series}': latency(100),
    'http_req_duration{name:business}': latency(100),
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
  // The aggregates count the seed within AGGREGATE_REFRESH_SECONDS (at once on the Community
  // edition, whose aggregates are real-time): wait for it, so the series check below is exact.
  const seriesUrl = `${BASE_URL}/metrics/events?bucket=1m&service=${encodeURIComponent(service)}`;
  for (let waited = 0; waited < 180; waited += 2) {
    const r = http.get(seriesUrl, { headers: headers() });
    if (r.status === 200 && Number(r.json('series.0.total')) >= SEED) break;
    sleep(2);
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
  if (pick < 0.4) {
    res = http.get(`${BASE_URL}/events?service=${s}&pageSize=50`, { headers: headers(), tags: { name: 'page' } });
  } else if (pick < 0.65) {
    const q = `service=${s}&from=${encodeURIComponent(data.from)}&to=${encodeURIComponent(data.to)}&pageSize=100`;
    res = http.get(`${BASE_URL}/events?${q}`, { headers: headers(), tags: { name: 'window' } });
  } else if (pick < 0.75) {
    // A short cursor walk: five pages of 50, each from the previous page's next_cursor.
    let cursor = '';
    for (let i = 0; i < 5; i++) {
      res = http.get(`${BASE_URL}/events?service=${s}&pageSize=50&count=none${cursor ? `&cursor=${cursor}` : ''}`, {
        headers: headers(),
        tags: { name: 'cursor-walk' },
      });
      if (res.status !== 200) break;
      cursor = String(res.json('pagination.next_cursor') || '');
      if (!cursor) break;
    }
  } else if (pick < 0.8) {
    const filter = Math.random() < 0.5 ? `metadata.user=u${Math.floor(Math.random() * 100)}` : 'q=payment%20failed';
    res = http.get(`${BASE_URL}/events?service=${s}&${filter}&pageSize=50`, { headers: headers(), tags: { name: 'filter' } });
  } else if (pick < 0.85) {
    res = http.get(`${BASE_URL}/events/${data.id}`, { headers: headers(), tags: { name: 'by-id' } });
  } else if (pick < 0.93) {
    // A dashboard's time series: this service by minute, or every service by hour, last 24 hours.
    const q = Math.random() < 0.5 ? `service=${s}&bucket=1m` : 'bucket=1h';
    res = http.get(`${BASE_URL}/metrics/events?${q}`, { headers: headers(), tags: { name: 'series' } });
    if (res.status === 200 && q.startsWith('service')) {
      // The seeded events are within the last 24 hours (SEED_EVENTS under 86,400): all are counted.
      check(res, { 'series counts every seeded event': (r) => Number(r.json('series.0.total')) >= SEED });
    }
  } else if (pick < 0.98) {
    res = http.get(`${BASE_URL}/health/business`, { headers: headers(), tags: { name: 'business' } });
    if (res.status === 200) check(res, { 'business has 24 hours': (r) => Array.isArray(r.json('eventsByHour')) && Number(r.json('eventsByHour.#')) === 24 });
  } else {
    res = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
  }
  if (res) check(res, { 'answered 200': (r) => r.status === 200 });
}
