// Decides when the queue becomes a batch and hands batches to the writer threads.
// - Flush on size (BATCH_SIZE waiting) or on linger (BATCH_LINGER_MS after the first waiting event).
//   While every writer is busy, events accumulate, so batch size follows the database's pace. A
//   client waiting for its commit (?wait=true) skips the linger: its batch goes as soon as no other
//   is in flight, and every waiting client that arrived meanwhile shares that commit. Only full
//   batches run side by side on several writers.
// - A batch's queue space is released only after its commit. A failed write, or a writer thread that
//   died, leaves the batch claimed and it is written again after a backoff; the unique (id, time) key
//   makes the rewrite of an already-committed batch add nothing.
// - A circuit breaker opens after repeated failures: writes pause for the cool-down, then one probe.
import type { Batch, EventQueue } from './queue';
import type { Logger } from '../log';
import type { WriterFault, WriterPool } from './writer-protocol';
import type { InsertResult } from './write';

export interface BatcherOptions {
  size: number;
  lingerMs: number;
  maxInFlight: number;
  retryMaxMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
}

/** Test-only hooks, never read from the environment: they make crash and overload tests deterministic. */
export interface Faults {
  /** Awaited before each write attempt: a test holds writes back to fill the queue. */
  beforeWrite?: () => Promise<void>;
  /** The writer thread exits during this write attempt (1-based count of attempts). */
  crashOnAttempt?: { attempt: number; when: Exclude<WriterFault, 'database-down'> };
  /** While this returns true, the writer fails each attempt as a lost database connection would (the embedded engine's outage). */
  databaseDown?: () => boolean;
}

export interface BatcherStats {
  written: number;
  duplicates: number;
  recovered: number; // rows a retry found already committed by the attempt that failed
  rejected: number; // rows the database refused, kept in events_rejected
  batches: number;
  retriedBatches: number;
  failedAttempts: number;
  lastError: string | null;
  lastWriteAt: string | null;
  lastBatchSize: number;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What a waiting client learns when its events are committed. */
export interface CommitOutcome {
  duplicates: number[]; // sequence numbers already stored before
  rejected: { seq: number; message: string }[]; // sequence numbers the database refused
}

interface Waiter {
  from: number;
  to: number; // sequence range [from, to)
  resolve: (o: CommitOutcome) => void;
}

interface Slot {
  batch: Batch;
  done: boolean;
}

export class Batcher {
  readonly stats: BatcherStats = {
    written: 0,
    duplicates: 0,
    recovered: 0,
    rejected: 0,
    batches: 0,
    retriedBatches: 0,
    failedAttempts: 0,
    lastError: null,
    lastWriteAt: null,
    lastBatchSize: 0,
  };
  breaker: BreakerState = 'closed';
  private breakerOpenUntil = 0;
  private consecutiveFailures = 0;
  private probing = false;
  private inFlight: Slot[] = [];
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private stopped = false;
  private flushAll = false;
  private attempts = 0;
  private idleWaiters: (() => void)[] = [];
  private waiters: Waiter[] = []; // in sequence order
  private outcomes: { seq: number; dup: boolean; message?: string }[] = []; // only while someone waits
  private rateTimer: ReturnType<typeof setInterval>;
  private lastWritten = 0;
  /** Events written per second, smoothed over the last several seconds. */
  drainRate = 0;
  /** Called after each committed batch (metrics). */
  onBatch: (events: number, seconds: number) => void = () => {};

  constructor(
    private readonly queue: EventQueue,
    private readonly pool: WriterPool,
    private readonly opts: BatcherOptions,
    private readonly log: Logger,
    private readonly faults: Faults = {},
  ) {
    this.rateTimer = setInterval(() => {
      const now = this.stats.written;
      this.drainRate = this.drainRate * 0.7 + (now - this.lastWritten) * 0.3;
      this.lastWritten = now;
    }, 1000);
    this.rateTimer.unref?.();
  }

  get inFlightBatches() {
    return this.inFlight.length;
  }

  get breakerRemainingMs() {
    return this.breaker === 'open' ? Math.max(0, this.breakerOpenUntil - Date.now()) : 0;
  }

  /** Starts writing (after migrations). Events queued before this wait in the queue. */
  start() {
    this.running = true;
    this.pump();
  }

  /** Called after each append. */
  notify() {
    if (!this.running) return;
    if (this.queue.pending >= this.opts.size) this.pump();
    else if (!this.lingerTimer && this.inFlight.length < this.opts.maxInFlight) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        this.pump(true);
      }, this.opts.lingerMs);
    }
  }

  /** Resolves once every event of sequence range [from, to) is committed (or refused into quarantine). */
  waitFor(from: number, to: number): Promise<CommitOutcome> {
    if (this.queue.releasedSeq >= to) return Promise.resolve({ duplicates: [], rejected: [] });
    const p = new Promise<CommitOutcome>((resolve) => this.waiters.push({ from, to, resolve }));
    if (this.running) this.pump(true); // no linger for a client that waits
    return p;
  }

  /**
   * Writes everything queued now, without lingering, and resolves when the queue is empty (true) or
   * when `timeoutMs` passes first (false). New appends keep being written too.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.flushAll = true;
    this.running = true;
    this.pump(true);
    if (this.queue.depth === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const empty = new Promise<boolean>((res) => this.idleWaiters.push(() => res(true)));
    const late = new Promise<boolean>((res) => (timer = setTimeout(() => res(false), timeoutMs)));
    const ok = await Promise.race([empty, late]);
    clearTimeout(timer);
    return ok;
  }

  /** Stops writing; a batch still retrying gives up and stays in the queue. */
  stop() {
    this.running = false;
    this.stopped = true;
    clearTimeout(this.lingerTimer);
    clearInterval(this.rateTimer);
    this.lingerTimer = undefined;
  }

  private pump(lingered = false) {
    if (!this.running) return;
    while (this.inFlight.length < this.opts.maxInFlight) {
      const waiting = this.queue.pending;
      if (waiting === 0) break;
      // Full batches always go; a partial one after the linger, when draining, or when a client waits.
      if (waiting < this.opts.size && !lingered && !this.flushAll && this.waiters.length === 0) break;
      // A partial batch never takes a second writer: batches are released in claim order, so its
      // waiting clients could not be answered before the busy writer's batch anyway, and one larger
      // commit after it costs the database less than two small ones side by side (BENCHMARKS.md:
      // a gain within the noise, not a cure). More writers are for full batches: a backlog.
      if (waiting < this.opts.size && this.inFlight.length > 0 && !this.flushAll) break;
      const batch = this.queue.claim(this.opts.size)!;
      const slot = { batch, done: false };
      this.inFlight.push(slot);
      void this.write(slot);
    }
    if (this.queue.pending > 0 && !this.lingerTimer && this.inFlight.length < this.opts.maxInFlight) this.notify();
  }

  private async write(slot: Slot) {
    const { batch } = slot;
    let result: InsertResult | undefined;
    for (let retry = 0; ; retry++) {
      try {
        await this.faults.beforeWrite?.();
        await this.breakerGate();
        const attempt = ++this.attempts;
        const crash = this.faults.databaseDown?.()
          ? 'database-down'
          : this.faults.crashOnAttempt?.attempt === attempt
            ? this.faults.crashOnAttempt.when
            : undefined;
        const began = performance.now();
        result = (await this.pool.run({
          op: 'insert',
          start: batch.start,
          end: batch.end,
          count: batch.count,
          fault: crash,
          behind: this.inFlight[0] !== slot,
        })) as InsertResult;
        this.onBatch(batch.count, (performance.now() - began) / 1000);
        this.onSuccess();
        const stored = batch.count - result.rejected.length;
        if (retry === 0) {
          this.stats.written += result.inserted;
          this.stats.duplicates += stored - result.inserted;
        } else {
          // A retried batch may have been committed by the attempt that failed (the thread died after
          // the commit): its rows are there, and they are ours, not duplicates sent by a client.
          this.stats.written += stored;
          this.stats.recovered += stored - result.inserted;
          this.stats.retriedBatches++;
          result.duplicates = [];
        }
        this.stats.rejected += result.rejected.length;
        this.stats.batches++;
        this.stats.lastBatchSize = batch.count;
        this.stats.lastWriteAt = new Date().toISOString();
        for (const r of result.rejected) this.log.error('event refused by the database; kept in events_rejected', { code: r.code, err: r.message });
        break;
      } catch (err) {
        this.stats.failedAttempts++;
        this.stats.lastError = (err as Error).message;
        if (this.stopped) return;
        this.onFailure();
        // Exponential backoff with full jitter, capped: a database that is down is not hammered, and
        // several instances do not retry in lockstep.
        const delay = Math.random() * Math.min(this.opts.retryMaxMs, 50 * 2 ** Math.min(retry, 16));
        this.log.warn('batch write failed; will retry', { events: batch.count, retry: retry + 1, delayMs: Math.round(delay), breaker: this.breaker, err });
        await Bun.sleep(delay);
      }
    }
    slot.done = true;
    this.settle(batch, result!);
    // Full batches and waiting clients go now; a partial batch lingers to grow (fewer, larger
    // statements cost the database less CPU per event than many small ones).
    this.pump();
  }

  /** Releases committed batches in claim order (the ring stays contiguous) and answers waiters. */
  private settle(batch: Batch, result: InsertResult) {
    if (this.waiters.length) {
      for (const i of result.duplicates) this.outcomes.push({ seq: batch.seq + i, dup: true });
      for (const r of result.rejected) this.outcomes.push({ seq: batch.seq + r.index, dup: false, message: r.message });
    }
    while (this.inFlight[0]?.done) this.queue.release(this.inFlight.shift()!.batch);
    const committed = this.queue.releasedSeq;
    while (this.waiters.length && this.waiters[0]!.to <= committed) {
      const w = this.waiters.shift()!;
      const mine = this.outcomes.filter((o) => o.seq >= w.from && o.seq < w.to);
      w.resolve({
        duplicates: mine.filter((o) => o.dup).map((o) => o.seq),
        rejected: mine.filter((o) => !o.dup).map((o) => ({ seq: o.seq, message: o.message! })),
      });
    }
    const oldest = this.waiters[0]?.from ?? Infinity;
    if (this.outcomes.length) this.outcomes = this.outcomes.filter((o) => o.seq >= oldest);
    if (this.queue.depth === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async breakerGate() {
    while (this.breaker !== 'closed') {
      if (this.breaker === 'open') {
        const wait = this.breakerOpenUntil - Date.now();
        if (wait > 0) await Bun.sleep(wait);
        if (this.breaker === 'open') this.breaker = 'half-open';
      }
      if (this.breaker === 'half-open' && !this.probing) {
        this.probing = true; // this attempt is the probe
        return;
      }
      await Bun.sleep(50);
      if (this.stopped) return;
    }
  }

  private onSuccess() {
    this.consecutiveFailures = 0;
    this.probing = false;
    if (this.breaker !== 'closed') this.log.info('circuit breaker closed: database writes succeed again');
    this.breaker = 'closed';
  }

  private onFailure() {
    this.consecutiveFailures++;
    this.probing = false;
    if (this.breaker === 'half-open' || (this.breaker === 'closed' && this.consecutiveFailures >= this.opts.breakerThreshold)) {
      if (this.breaker === 'closed') this.log.error('circuit breaker open: database writes keep failing', { failures: this.consecutiveFailures });
      this.breaker = 'open';
      this.breakerOpenUntil = Date.now() + this.opts.breakerCooldownMs;
    }
  }
}
