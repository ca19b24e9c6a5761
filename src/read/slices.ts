// Scans in time slices, for reads that filter on what no index holds (message search, metadata) on
// the embedded engine. Its one session runs one statement at a time, writes included: one statement
// reading a wide range held it for about a second per million events, and every write waited. Such
// a read runs here as a series of statements over adjacent time slices, newest first (oldest first
// for order=asc), so the writer's batches go between them. The first slice is sized from the events'
// density (the daily aggregate's total over the stored range) to hold about `firstRows` rows, so a
// narrow read stays one statement (a per-minute start made a day's search 8x slower); each next one
// from the last one's duration, to take about `sliceMs`. The request's signal (read/deadline.ts)
// stops the series between slices.
import type { Engine } from '../store/engine';

/** The sizes: a value, so that tests can slice small data finely. */
export const slicing = {
  sliceMs: 100, // a write waits at most about this long behind a read
  firstRows: 100_000, // about 100 ms of reading on PGlite here (0.5-1.2 s a million)
  rangeKeptMs: 60_000, // RangeStats
};
const SECOND = 1000; // widths are whole seconds (edges too, when the range ends on one)

export interface Span {
  order: 'asc' | 'desc';
  from?: string; // the query's own bounds (ISO), if any
  to?: string;
}

export interface Range {
  lo: number; // the oldest and newest event's time, ms
  hi: number;
  perMs: number; // events per millisecond between them
}

/**
 * The events' time range and density, kept a minute: reading them costs a statement that sums the
 * daily aggregate, whose newest part is computed from raw events (~50 ms here, more than a narrow
 * search itself). Only the slices' sizes depend on them, never which events a read finds: the
 * outermost slices are open-ended, so events newer or older than these figures are still read.
 */
export class RangeStats {
  private cached: { at: number; range: Range } | null = null;

  async get(engine: Engine): Promise<Range | null> {
    if (this.cached && performance.now() - this.cached.at < slicing.rangeKeptMs) return this.cached.range;
    const [r] = await engine.query<{ lo: number | null; hi: number | null; n: number | null }>(
      `SELECT (extract(epoch FROM min(time)) * 1000)::float8 AS lo, (extract(epoch FROM max(time)) * 1000)::float8 AS hi,
              (SELECT sum(events)::float8 FROM analytics.events_per_day) AS n
       FROM events`,
    );
    if (r?.lo == null || r.hi == null) return null; // none yet: not kept, the next read asks again
    const range = { lo: r.lo, hi: r.hi, perMs: Math.max(r.n ?? 0, 1) / Math.max(r.hi - r.lo, 1) };
    this.cached = { at: performance.now(), range };
    return range;
  }
}

/** What one slice adds to a statement: a time condition and its parameters, numbered after `taken`. */
export type Visit = (where: string, params: unknown[]) => Promise<'more' | 'done'>;

/**
 * Calls `visit` for each slice of the events' time range within `span`, in the order's direction,
 * until it answers 'done' or the range is covered. Half-open slices at millisecond bounds: an event
 * (stored to the microsecond) falls in exactly one. The outermost slice is open-ended on its far
 * side, so the query's own conditions (to, from, the cursor) bound it.
 */
export async function eachSlice(engine: Engine, span: Span, taken: number, visit: Visit, stats: RangeStats): Promise<void> {
  const r = await stats.get(engine);
  const lo = Math.max(r?.lo ?? Infinity, span.from ? Date.parse(span.from) : -Infinity);
  const hi = Math.min(r?.hi ?? -Infinity, span.to ? Date.parse(span.to) : Infinity);
  // No events known, or none known in the span (the figures may be a minute old): one statement.
  if (!r || lo > hi) {
    await visit('true', []);
    return;
  }
  const perMs = r.perMs;
  const a = `$${taken + 1}::timestamptz`;
  const b = `$${taken + 2}::timestamptz`;
  const iso = (ms: number) => new Date(ms).toISOString();
  const seconds = (ms: number) => Math.max(SECOND, Math.round(ms / SECOND) * SECOND);
  let width = seconds(slicing.firstRows / perMs);
  // desc: slices [edge - width, edge) walking down from `hi`; asc: [edge, edge + width) walking up
  // from `lo`. The first slice is open on its far side, so it holds `hi` (`lo`) itself.
  let edge = Math.floor(span.order === 'desc' ? hi : lo);
  for (let first = true; ; first = false) {
    const started = performance.now();
    let outcome: 'more' | 'done';
    let last: boolean;
    if (span.order === 'desc') {
      const next = edge - width;
      last = next <= lo;
      outcome = last
        ? await visit(first ? 'true' : `time < ${a}`, first ? [] : [iso(edge)])
        : await visit(first ? `time >= ${a}` : `time >= ${a} AND time < ${b}`, first ? [iso(next)] : [iso(next), iso(edge)]);
      edge = next;
    } else {
      const next = edge + width;
      last = next > hi;
      outcome = last
        ? await visit(first ? 'true' : `time >= ${a}`, first ? [] : [iso(edge)])
        : await visit(first ? `time < ${a}` : `time >= ${a} AND time < ${b}`, first ? [iso(next)] : [iso(edge), iso(next)]);
      edge = next;
    }
    if (outcome === 'done' || last) return;
    // Aim the next slice at SLICE_MS from this one's pace; at most 4x either way (gaps grow fast).
    const took = Math.max(1, performance.now() - started);
    width = seconds(width * Math.min(4, Math.max(0.25, slicing.sliceMs / took)));
  }
}
