// The bounded queue between the HTTP handler and the writers: a byte ring in a SharedArrayBuffer.
// The handler appends each event's JSON record; a writer thread reads a batch straight out of the
// shared memory (no per-event postMessage or structured clone). Space is released only after the
// batch is committed, so a batch whose write failed or whose thread died is still here to retry.
//
// Only the main thread moves the positions; writers receive [start, end) of a claimed batch and read
// those bytes. Positions are monotonic byte offsets (doubles are exact to 2^53: 9 PB of events).

const SEP = 0x2c; // ',' ends every record, so a batch is a JSON array once wrapped in [ ]

export interface Batch {
  readonly start: number;
  readonly end: number;
  readonly count: number;
  readonly seq: number; // sequence number of its first record
}

export class EventQueue {
  readonly sab: SharedArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly ends: Float64Array; // end position of each record, as a ring of maxEvents
  private readonly encoder = new TextEncoder();
  private scratch = new Uint8Array(64 * 1024);

  private writePos = 0; // end of the last appended record
  private claimPos = 0; // end of the last record handed to a writer
  private releasePos = 0; // end of the last committed record
  private appended = 0; // records appended, ever
  private claimed = 0;
  private released = 0;

  constructor(
    readonly maxEvents: number,
    readonly maxBytes: number,
  ) {
    this.sab = new SharedArrayBuffer(maxBytes);
    this.bytes = new Uint8Array(this.sab);
    this.ends = new Float64Array(maxEvents);
  }

  /** Sequence number the next appended record gets (records are numbered from 0 in append order). */
  get appendedSeq() {
    return this.appended;
  }
  /** Every record below this sequence number is committed. */
  get releasedSeq() {
    return this.released;
  }
  /** Events waiting or in flight. */
  get depth() {
    return this.appended - this.released;
  }
  /** Events not yet handed to a writer. */
  get pending() {
    return this.appended - this.claimed;
  }
  get usedBytes() {
    return this.writePos - this.releasePos;
  }

  /** Appends one record; false when the queue is full (by events or by bytes). */
  push(record: string): boolean {
    if (this.depth >= this.maxEvents) return false;
    // UTF-8 is at most 3 bytes per UTF-16 unit; grow scratch so encodeInto never truncates.
    if (record.length * 3 + 1 > this.scratch.length) this.scratch = new Uint8Array(record.length * 3 + 1);
    const { written } = this.encoder.encodeInto(record, this.scratch);
    this.scratch[written] = SEP;
    const n = written + 1;
    if (this.usedBytes + n > this.maxBytes) return false;
    const at = this.writePos % this.maxBytes;
    const first = Math.min(n, this.maxBytes - at);
    this.bytes.set(this.scratch.subarray(0, first), at);
    if (first < n) this.bytes.set(this.scratch.subarray(first, n), 0);
    this.writePos += n;
    this.ends[this.appended % this.maxEvents] = this.writePos;
    this.appended++;
    return true;
  }

  /** Every record not yet committed, as a JSON array text (for the shutdown spill). */
  backlog(): string {
    return readBatch(this.bytes, { start: this.releasePos, end: this.writePos });
  }

  /** A point to roll back to: a multi-event request is queued whole or not at all. */
  mark() {
    return { writePos: this.writePos, appended: this.appended };
  }
  /** Removes everything appended since `m` (only valid before any of it was claimed). */
  rollback(m: { writePos: number; appended: number }) {
    if (this.claimed > m.appended) throw new Error('queue: rollback past a claimed record');
    this.writePos = m.writePos;
    this.appended = m.appended;
  }

  /** Claims up to `max` unclaimed records for one writer; null when none wait. */
  claim(max: number): Batch | null {
    const count = Math.min(max, this.pending);
    if (count === 0) return null;
    const start = this.claimPos;
    const seq = this.claimed;
    this.claimed += count;
    this.claimPos = this.ends[(this.claimed - 1) % this.maxEvents]!;
    return { start, end: this.claimPos, count, seq };
  }

  /**
   * Frees the space of the oldest claimed batch. Batches are released in claim order (the caller
   * keeps a FIFO of batches in flight), which keeps the ring contiguous.
   */
  release(b: Batch) {
    if (b.start !== this.releasePos) throw new Error(`queue: release out of order (${b.start} != ${this.releasePos})`);
    this.releasePos = b.end;
    this.released += b.count;
  }
}

/** Reads a batch as a JSON array text: used by the writer threads on their view of the same memory. */
export function readBatch(bytes: Uint8Array, b: { start: number; end: number }): string {
  const cap = bytes.length;
  const at = b.start % cap;
  const n = b.end - b.start;
  const decoder = new TextDecoder();
  let text: string;
  if (at + n <= cap) text = decoder.decode(bytes.subarray(at, at + n));
  else text = decoder.decode(bytes.subarray(at, cap), { stream: true }) + decoder.decode(bytes.subarray(0, n - (cap - at)));
  return `[${text.slice(0, -1)}]`; // drop the trailing separator
}
