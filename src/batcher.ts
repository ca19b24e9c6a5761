// Decides when the queue becomes a batch and hands batches to the writer threads.
// - Flush on size (BATCH_SIZE waiting) or on linger (BATCH_LINGER_MS after the first waiting event
//   while a writer is idle). While every writer is busy, events accumulate and go out together as
//   soon as one frees up: batch size follows the database's pace without tuning.
// - A batch's queue space is released only after its commit. A failed write, or a writer thread that
//   died, leaves the batch claimed and it is written again after a backoff; the unique (id, time) key
//   makes the rewrite of an already-committed batch add nothing.
import type Piscina from 'piscina';
import type { Batch, EventQueue } from './queue';
import type { Logger } from './log';
import type { WriterTask } from '../workers/writer';

export interface BatcherOptions {
  size: number;
  lingerMs: number;
  maxInFlight: number;
  retryMaxMs: number;
}

/** Test-only hooks, never read from the environment: they make crash and overload tests deterministic. */
export interface Faults {
  /** Awaited before each write attempt: a test holds writes back to fill the queue. */
  beforeWrite?: () => Promise<void>;
  /** The writer thread exits during this write attempt (1-based count of attempts). */
  crashOnAttempt?: { attempt: number; when: 'crash-before-write' | 'crash-after-write' };
}

export interface BatcherStats {
  written: number;
  duplicates: number;
  recovered: number; // rows a retry found already committed by the attempt that failed
  batches: number;
  failedAttempts: number;
  lastError: string | null;
  lastWriteAt: string | null;
}

export class Batcher {
  readonly stats: BatcherStats = { written: 0, duplicates: 0, recovered: 0, batches: 0, failedAttempts: 0, lastError: null, lastWriteAt: null };
  private inFlight: { batch: Batch; done: boolean }[] = [];
  private lingerTimer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private stopped = false;
  private flushAll = false;
  private attempts = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly queue: EventQueue,
    private readonly pool: Piscina<WriterTask, unknown>,
    private readonly opts: BatcherOptions,
    private readonly log: Logger,
    private readonly faults: Faults = {},
  ) {}

  get inFlightBatches() {
    return this.inFlight.length;
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
    this.lingerTimer = undefined;
  }

  private pump(lingered = false) {
    if (!this.running) return;
    while (this.inFlight.length < this.opts.maxInFlight) {
      const waiting = this.queue.pending;
      if (waiting === 0) break;
      // Full batches always go; a partial one after the linger, when draining, or right after a write
      // completes (its events waited for a busy writer at least as long as a linger).
      if (waiting < this.opts.size && !lingered && !this.flushAll) break;
      const batch = this.queue.claim(this.opts.size)!;
      const slot = { batch, done: false };
      this.inFlight.push(slot);
      void this.write(slot);
    }
    if (this.queue.pending > 0 && !this.lingerTimer && this.inFlight.length < this.opts.maxInFlight) this.notify();
  }

  private async write(slot: { batch: Batch; done: boolean }) {
    const { batch } = slot;
    for (let retry = 0; ; retry++) {
      try {
        await this.faults.beforeWrite?.();
        const attempt = ++this.attempts;
        const crash = this.faults.crashOnAttempt?.attempt === attempt ? this.faults.crashOnAttempt.when : undefined;
        const inserted = (await this.pool.run({ op: 'insert', start: batch.start, end: batch.end, count: batch.count, fault: crash })) as number;
        if (retry === 0) {
          this.stats.written += inserted;
          this.stats.duplicates += batch.count - inserted;
        } else {
          // A retried batch may have been committed by the attempt that failed (the thread died after
          // the commit): its rows are there, and they are ours, not duplicates sent by a client.
          this.stats.written += batch.count;
          this.stats.recovered += batch.count - inserted;
        }
        this.stats.batches++;
        this.stats.lastWriteAt = new Date().toISOString();
        break;
      } catch (err) {
        this.stats.failedAttempts++;
        if (this.stopped) return;
        this.stats.lastError = (err as Error).message;
        // Exponential backoff with full jitter, capped: a database that is down is not hammered, and
        // several instances do not retry in lockstep.
        const delay = Math.random() * Math.min(this.opts.retryMaxMs, 50 * 2 ** Math.min(retry, 16));
        this.log.warn('batch write failed; will retry', { events: batch.count, retry: retry + 1, delayMs: Math.round(delay), err });
        await Bun.sleep(delay);
      }
    }
    slot.done = true;
    // Release strictly in claim order so the ring stays contiguous.
    while (this.inFlight[0]?.done) this.queue.release(this.inFlight.shift()!.batch);
    if (this.queue.depth === 0) for (const w of this.idleWaiters.splice(0)) w();
    this.pump(true);
  }
}
