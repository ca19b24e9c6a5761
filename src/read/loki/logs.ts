// Log queries: the entries of a selector and pipeline over [start, end), newest or oldest first, at
// most `limit`, grouped into streams as Loki answers them. With categorize-labels (what Grafana
// asks for) a stream is its stream labels only and each value carries its structured metadata and
// parsed labels; without, a stream is every label of its entries.
import type { ServiceScope } from '../../config';
import type { Engine } from '../../store/engine';
import type { LogQuery } from './ast';
import { type Entry, entryOf } from './model';
import { compilePipeline, matcherTest } from './pipeline';
import { scan, whereOf } from './sql';

export interface Window {
  startUs: bigint;
  endUs: bigint;
}

/** Entries of `q` in order, each passed through its pipeline; `take` returns false to stop. */
export async function eachEntry(engine: Engine, q: LogQuery, scope: ServiceScope | null, win: Window, order: 'asc' | 'desc', take: (e: Entry) => boolean) {
  const selector = q.selector.map((m) => ({ name: m.name, test: matcherTest(m) }));
  const pipeline = compilePipeline(q.stages);
  await scan(engine, whereOf(q, scope, win.startUs, win.endUs), order, (row) => {
    if (scope && !scope.test(row.service)) return true;
    const e = entryOf(row);
    if (!selector.every((m) => m.test(e.stream[m.name] ?? ''))) return true;
    if (!pipeline(e)) return true;
    return take(e);
  });
}

const sortedKey = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export interface Stream {
  stream: Record<string, string>;
  values: unknown[][];
}

export async function logStreams(
  engine: Engine,
  q: LogQuery,
  scope: ServiceScope | null,
  win: Window,
  opts: { limit: number; direction: 'forward' | 'backward'; categorize: boolean },
): Promise<{ streams: Stream[]; lines: number; bytes: number }> {
  const streams = new Map<string, Stream>();
  let lines = 0;
  let bytes = 0;
  await eachEntry(engine, q, scope, win, opts.direction === 'forward' ? 'asc' : 'desc', (e) => {
    const labels = opts.categorize ? e.stream : { ...e.stream, ...e.meta, ...e.parsed };
    const key = sortedKey(labels);
    let s = streams.get(key);
    if (!s) streams.set(key, (s = { stream: Object.fromEntries(JSON.parse(key) as [string, string][]), values: [] }));
    if (opts.categorize) {
      const extra: Record<string, Record<string, string>> = {};
      if (Object.keys(e.meta).length) extra.structuredMetadata = e.meta;
      if (Object.keys(e.parsed).length) extra.parsed = e.parsed;
      s.values.push(Object.keys(extra).length ? [e.ns, e.line, extra] : [e.ns, e.line]);
    } else s.values.push([e.ns, e.line]);
    lines++;
    bytes += Buffer.byteLength(e.line);
    return lines < opts.limit;
  });
  return { streams: [...streams.values()], lines, bytes };
}
