// @ts-check
// Shared by the k6 scripts: settings from the environment, the events they send, and the final
// check that everything the service acknowledged is stored.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

/** Where the service is, and how to authenticate (API_KEY is sent as a Bearer token when set). */
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
export const API_KEY = __ENV.API_KEY || '';

/**
 * A number from the environment, or the default.
 * @param {string} name
 * @param {number} fallback
 */
export function num(name, fallback) {
  const v = __ENV[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

/** @param {Record<string, string>} [extra] */
export function headers(extra) {
  /** @type {Record<string, string>} */
  const h = { 'Content-Type': 'application/json', ...extra };
  if (API_KEY) h.Authorization = `Bearer ${API_KEY}`;
  return h;
}

/**
 * Each run writes under its own service name, so its events can be counted apart from others'.
 * @param {string} script
 */
export function runService(script) {
  return `k6-${script}-${Date.now().toString(36)}`;
}

/**
 * One event, about 250 bytes like the benchmark's.
 * @param {string} service
 */
export function event(service) {
  return {
    service,
    message: 'Order placed successfully for customer after payment authorization',
    metadata: { user_id: String(Math.floor(Math.random() * 1e6)), vu: __VU, iter: __ITER, amount: 129.99, currency: 'EUR' },
  };
}

// Accepted events count up here, and teardown counts the stored ones down: the threshold
// `events_unverified: count==0` holds only when every acknowledged event is in the database.
export const unverified = new Counter('events_unverified');
export const accepted = new Counter('events_accepted');
export const rateLimited = new Counter('rate_limited');
export const serverErrors = new Counter('server_errors');
// A refusal (429/503) without Retry-After. A counter, not a check: a run with no refusal at all has
// no check samples, and k6 fails a rate threshold that has none.
export const refusedWithoutRetryAfter = new Counter('refusals_without_retry_after');

/**
 * Counts an ingest answer; `events` is how many events a 2xx acknowledges.
 * @param {import('k6/http').RefinedResponse<'text'>} res
 * @param {number} events
 */
export function record(res, events) {
  if (res.status >= 200 && res.status < 300) {
    accepted.add(events);
    unverified.add(events);
  } else if (res.status === 429 || res.status === 503) {
    rateLimited.add(1);
    if (!(Number(res.headers['Retry-After']) > 0)) refusedWithoutRetryAfter.add(1);
    sleep(Math.min(Number(res.headers['Retry-After']) || 1, 5) * Math.random()); // back off, with jitter
  }
  if (res.status >= 500 && res.status !== 503) serverErrors.add(1);
}

/**
 * Teardown: waits for the service's queue to drain, then asks the service how many events of this
 * run it stored (count=exact: the default count=auto may answer an estimate past 10,000 matches;
 * one service's rows are counted from its index, about a second per million), and subtracts them
 * from events_unverified.
 * @param {string} service
 */
export function verifyStored(service) {
  for (let i = 0; i < 120; i++) {
    const b = http.get(`${BASE_URL}/health/buffer`, { headers: headers(), tags: { name: 'verify' } });
    if (b.status === 200 && b.json('depth') === 0) break;
    sleep(0.5);
  }
  const res = http.get(`${BASE_URL}/events?service=${encodeURIComponent(service)}&pageSize=1&count=exact`, {
    headers: headers(),
    tags: { name: 'verify' },
    timeout: '120s',
  });
  check(res, { 'stored events can be counted exactly': (r) => r.status === 200 && r.json('pagination.total_is_exact') === true });
  const stored = res.status === 200 ? Number(res.json('pagination.total')) : 0;
  unverified.add(-stored);
  console.log(`verification: ${service}: ${stored} events stored (events_unverified must end at 0)`);
}

/** Thresholds every ingest script shares. */
export const ingestThresholds = {
  events_unverified: ['count==0'],
  server_errors: ['count==0'],
  refusals_without_retry_after: ['count==0'],
  checks: ['rate>0.99'],
};

/**
 * Latency thresholds of a request name, in ms: P95_MS and P99_MS override the script's defaults. The
 * defaults hold on a 2-vCPU machine running k6 beside the service (loadtest/README.md).
 * @param {number} p95
 * @param {number} [p99]
 */
export function latency(p95, p99) {
  const out = [`p(95)<${num('P95_MS', p95)}`];
  if (p99 !== undefined) out.push(`p(99)<${num('P99_MS', p99)}`);
  return out;
}
