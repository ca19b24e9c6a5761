// The Prometheus metrics served at GET /metrics (prom-client, text format). Names follow Prometheus conventions: counters
// end in _total, durations in _seconds, sizes in _bytes. Totals the pipeline already keeps (queue,
// batcher, service state) are read at scrape time rather than counted twice; histograms are
// observed as things happen.
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client';
import type { JobStatus } from '../maintain/scheduler';
import type { MemoryBudget } from '../protect/budget';
import type { Limits } from '../protect/limits';
import type { ServiceState } from '../state';
import type { Batcher } from '../store/batcher';
import type { EventQueue } from '../store/queue';
import type { ReadRouting } from '../store/replica';
import { fromSiblings, type Peers } from './peers';

export interface Metrics {
  registry: Registry;
  /** The text of GET /metrics: this process's, or the whole service's summed with its siblings'. */
  render(peers: Peers | null): Promise<string>;
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  observeBatch(events: number, seconds: number): void;
  stop(): void;
}

/** A counter whose value comes from a running total kept elsewhere (only ever growing). */
function totalCounter(registry: Registry, name: string, help: string, read: () => number) {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > seen) this.inc(now - seen);
      seen = now;
    },
  });
}

/**
 * The request-duration histogram, counted in place. prom-client's Histogram hashes its labels on
 * every observation (0.7-1 us, paid by every request); here one Map lookup finds the row of bucket
 * counts. It is registered in the shape prom-client's registry reads (name, help, type, aggregator,
 * get(): what its own AggregatorRegistry registers), with the values its Histogram would give, so
 * /metrics and the merge across HTTP_PROCESSES treat it as one of theirs.
 */
function requestHistogram(registry: Registry, name: string, help: string, bounds: readonly number[]) {
  type Labels = { route: string; method: string; status: string };
  const rows = new Map<string, { labels: Labels; counts: number[]; sum: number }>();
  const values = () =>
    [...rows.values()].flatMap(({ labels, counts, sum }) => {
      let seen = 0;
      const buckets = bounds.map((le, i) => ({ labels: { le, ...labels }, value: (seen += counts[i]!), metricName: `${name}_bucket` }));
      const count = seen + counts[bounds.length]!;
      return [
        ...buckets,
        { labels: { le: '+Inf', ...labels }, value: count, metricName: `${name}_bucket` },
        { labels, value: sum, metricName: `${name}_sum` },
        { labels, value: count, metricName: `${name}_count` },
      ];
    });
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: async () => ({ name, help, type: 'histogram', aggregator: 'sum', values: values() }),
    reset: () => rows.clear(),
  };
  registry.registerMetric(metric as never);
  return (route: string, method: string, status: number, seconds: number) => {
    const key = `${route} ${method} ${status}`;
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { labels: { route, method, status: String(status) }, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 }));
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    row.counts[i]!++;
    row.sum += seconds;
  };
}

/** What the metrics read their figures from, at scrape time. */
interface Sources {
  queue: EventQueue;
  batcher: Batcher;
  state: ServiceState;
  limits: Limits;
  budgets: Record<'bodies' | 'answers', MemoryBudget>;
  reads: ReadRouting | null;
}

/** The running totals, as counters. */
function counters(registry: Registry, { batcher, state, limits, budgets }: Sources) {
  const fallbackSeen = new Map<string, number>();
  const s = batcher.stats;
  totalCounter(registry, 'aurore_events_received_total', 'Events received in POST bodies, valid or not', () => state.received);
  totalCounter(registry, 'aurore_events_accepted_total', 'Events accepted into the queue (answered 202/201)', () => state.accepted);
  totalCounter(registry, 'aurore_events_invalid_total', 'Events refused at validation (400 or per-item errors)', () => state.invalid);
  totalCounter(
    registry,
    'aurore_events_cut_total',
    'Events from OTLP or Loki push stored with their message or metadata cut to fit the limits',
    () => state.cut,
  );
  totalCounter(registry, 'aurore_events_written_total', 'Events committed to the database', () => s.written);
  totalCounter(registry, 'aurore_events_duplicates_total', 'Events already stored (same id and timestamp)', () => s.duplicates);
  totalCounter(registry, 'aurore_events_rejected_total', 'Events the database refused, kept in events_rejected', () => s.rejected);
  totalCounter(registry, 'aurore_batches_written_total', 'Batches committed', () => s.batches);
  totalCounter(registry, 'aurore_batch_write_failures_total', 'Failed batch write attempts (each is retried)', () => s.failedAttempts);
  totalCounter(registry, 'aurore_batches_retried_total', 'Batches committed after at least one failed attempt', () => s.retriedBatches);
  totalCounter(registry, 'aurore_requests_queue_full_total', 'Requests refused with 429 or 503 because the queue was full', () => state.rejectedQueueFull);
  totalCounter(registry, 'aurore_requests_rate_limited_total', 'Requests refused with 429 by a rate limit', () => limits.refused);
  new Counter({
    name: 'aurore_fallbacks_total',
    help: 'Answers given a less good way after a failure the service recovered from (kind exact_total: an estimated total because the totals from the aggregates failed); each cause is logged once',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const [kind, n] of Object.entries(state.fallbacks?.counts ?? {})) {
        const seen = fallbackSeen.get(kind) ?? 0;
        if (n > seen) this.inc({ kind }, n - seen);
        else this.inc({ kind }, 0);
        fallbackSeen.set(kind, n);
      }
    },
  });
  totalCounter(
    registry,
    'aurore_requests_overloaded_total',
    'Requests refused with 503 overloaded: bodies being read held BODY_BUDGET_BYTES, or answers being sent READ_BUDGET_BYTES',
    () => budgets.bodies.refused + budgets.answers.refused,
  );
}

/** Queues, budgets and states, as gauges. */
function gauges(registry: Registry, { queue, batcher, state, limits, budgets, reads }: Sources) {
  // With HTTP_PROCESSES > 1 the processes' figures are merged: sums for queues and counters, the
  // worst for states (`aggregator`).
  const gauge = (name: string, help: string, read: () => number, aggregator: Aggregator = 'sum') =>
    new Gauge({
      name,
      help,
      registers: [registry],
      aggregator,
      collect() {
        this.set(read());
      },
    });
  gauge('aurore_queue_depth_events', 'Events queued or being written', () => queue.depth);
  gauge('aurore_queue_capacity_events', 'Queue capacity in events (QUEUE_MAX_EVENTS)', () => queue.maxEvents);
  gauge('aurore_queue_used_bytes', 'Bytes of the queue in use', () => queue.usedBytes);
  gauge('aurore_queue_capacity_bytes', 'Queue capacity in bytes (QUEUE_MAX_BYTES)', () => queue.maxBytes);
  gauge('aurore_request_body_bytes_held', 'Bytes of request bodies being read or decoded (at most BODY_BUDGET_BYTES)', () => budgets.bodies.held);
  gauge('aurore_answer_bytes_held', 'Bytes of large query answers being sent (at most READ_BUDGET_BYTES)', () => budgets.answers.held);
  gauge(
    'aurore_circuit_breaker_open',
    'Circuit breaker: 0 closed, 0.5 half-open, 1 open',
    () => ({ closed: 0, 'half-open': 0.5, open: 1 })[batcher.breaker],
    'max',
  );
  if (limits.storeUp !== null)
    gauge(
      'aurore_rate_limit_store_up',
      '1 while the shared rate-limit store (REDIS_URL) answers; 0: requests go uncounted',
      () => (limits.storeUp ? 1 : 0),
      'min',
    );
  gauge('aurore_ready', '1 once the database is reachable and migrated', () => (state.ready ? 1 : 0), 'min');
  if (reads) {
    gauge(
      'aurore_read_replica_in_use',
      '1 while the read routes use the replica (DATABASE_READ_URL), 0 while they fall back to the primary',
      () => (reads.status().using === 'replica' ? 1 : 0),
      'min',
    );
    gauge(
      'aurore_read_replica_lag_seconds',
      'How far the replica trails the primary (-1: unknown)',
      () => {
        const lag = reads.status().lagMs;
        return lag === null ? -1 : lag / 1000;
      },
      'max',
    );
  }
}

/** Each maintenance job's last success, failure and who runs it. */
function jobGauges(registry: Registry, state: ServiceState) {
  // Maintenance jobs, for alerts such as "no successful rollup for 10 minutes".
  const jobGauge = (name: string, help: string, value: (j: JobStatus) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['job'],
      registers: [registry],
      aggregator: 'max', // the process that runs the jobs has the figures

      async collect() {
        for (const j of (await state.jobs?.status()) ?? []) {
          const v = value(j);
          if (v !== null) this.set({ job: j.name }, v);
        }
      },
    });
  jobGauge('aurore_job_last_success_timestamp_seconds', 'When each maintenance job last succeeded (Unix time)', (j) =>
    j.lastSuccessAt ? Date.parse(j.lastSuccessAt) / 1000 : null,
  );
  jobGauge('aurore_job_failing', '1 when the last run of a maintenance job failed', (j) => (j.lastError ? 1 : 0));
  // A policy the database's scheduler should run, run by the service because the database's own runs
  // failed or stopped (src/maintain/takeover.ts): the database needs a look although the job succeeds.
  jobGauge(
    'aurore_job_taken_over',
    "1 while the service runs a TimescaleDB policy because the database's own scheduler fails or does not run it (server engine)",
    (j) => (state.database?.engine === 'server' && j.reason ? 1 : 0),
  );
}

export function createMetrics(
  queue: EventQueue,
  batcher: Batcher,
  state: ServiceState,
  limits: Limits,
  budgets: Record<'bodies' | 'answers', MemoryBudget>,
  reads: ReadRouting | null = null,
): Metrics {
  const registry = new Registry();
  const sources: Sources = { queue, batcher, state, limits, budgets, reads };
  counters(registry, sources);
  gauges(registry, sources);
  jobGauges(registry, state);

  const batchSize = new Histogram({
    name: 'aurore_batch_size_events',
    help: 'Events per committed batch',
    buckets: [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000],
    registers: [registry],
  });
  const insert = new Histogram({
    name: 'aurore_batch_insert_duration_seconds',
    help: 'Time to commit one batch',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const observeRequest = requestHistogram(
    registry,
    'aurore_http_request_duration_seconds',
    'HTTP request duration by route, method and status',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  );

  // Event-loop lag: how late a 100 ms timer fires. A busy main thread is the first sign of overload.
  const lag = new Gauge({
    name: 'aurore_event_loop_lag_seconds',
    help: 'Event-loop delay of the main thread (last 100 ms tick; the slowest process)',
    registers: [registry],
    aggregator: 'max',
  });
  let expected = performance.now() + 100;
  const timer = setInterval(() => {
    const now = performance.now();
    lag.set(Math.max(0, now - expected) / 1000);
    expected = now + 100;
  }, 100);
  timer.unref?.();

  return {
    registry,
    async render(peers) {
      if (!peers) return registry.metrics();
      const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...(await fromSiblings<object[]>(peers, 'metrics'))]);
      return merged.metrics();
    },
    observeRequest,
    observeBatch: (events, seconds) => {
      batchSize.observe(events);
      insert.observe(seconds);
    },
    stop: () => clearInterval(timer),
  };
}
