// What the person is looking at, kept in the page's URL so a view can be shared and reloaded:
// ?range=1h&service=a,b&q=text&meta=k=v,k2=v2&from=...&to=...&live=1. Relative ranges follow the
// clock; a custom one (typed, or dragged on the chart) is fixed.

export type Range = '15m' | '1h' | '24h' | '7d' | '30d' | 'custom';

export interface Filters {
  range: Range;
  from: string | null; // ISO, custom range only
  to: string | null;
  services: string[];
  q: string;
  meta: [string, string][];
  live: boolean;
}

const SPANS: Record<Exclude<Range, 'custom'>, number> = { '15m': 900_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };

/** "user_id=123, region=eu" as pairs; entries without '=' are ignored. */
export function parseMeta(text: string): [string, string][] {
  return text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.includes('='))
    .map((p) => [p.slice(0, p.indexOf('=')).trim(), p.slice(p.indexOf('=') + 1).trim()] as [string, string])
    .filter(([k]) => k !== '');
}

export const metaText = (meta: [string, string][]) => meta.map(([k, v]) => `${k}=${v}`).join(', ');

export function readUrl(search = location.search): Filters {
  const p = new URLSearchParams(search);
  const range = (p.get('range') ?? '1h') as Range;
  const iso = (v: string | null) => (v && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : null);
  return {
    range: range in SPANS || range === 'custom' ? range : '1h',
    from: iso(p.get('from')),
    to: iso(p.get('to')),
    services: (p.get('service') ?? '').split(',').filter(Boolean),
    q: p.get('q') ?? '',
    meta: parseMeta(p.get('meta') ?? ''),
    live: p.get('live') === '1',
  };
}

export function writeUrl(f: Filters) {
  const p = new URLSearchParams();
  p.set('range', f.range);
  if (f.range === 'custom') {
    if (f.from) p.set('from', f.from);
    if (f.to) p.set('to', f.to);
  }
  if (f.services.length) p.set('service', f.services.join(','));
  if (f.q) p.set('q', f.q);
  if (f.meta.length) p.set('meta', metaText(f.meta));
  if (f.live) p.set('live', '1');
  history.replaceState(null, '', `${location.pathname}?${p}`);
}

/** The time window the filters mean now. */
export function timeWindow(f: Filters, now = Date.now()): { from: number; to: number } {
  if (f.range === 'custom') return { from: f.from ? Date.parse(f.from) : now - SPANS['1h'], to: f.to ? Date.parse(f.to) : now };
  return { from: now - SPANS[f.range], to: now };
}

/** A bucket width that fits the window in a few hundred points at most (and under the API's 10,000). */
export function bucketFor(spanMs: number): '1m' | '1h' | '1d' {
  if (spanMs <= 6 * 3_600_000) return '1m';
  if (spanMs <= 8 * 86_400_000) return '1h';
  return '1d';
}

/** GET /events query for the filters (and extras such as the cursor). */
export function eventsQuery(f: Filters, extra: Record<string, string> = {}, window = timeWindow(f)): string {
  const p = new URLSearchParams();
  if (f.services.length) p.set('service', f.services.join(','));
  p.set('from', new Date(window.from).toISOString());
  p.set('to', new Date(window.to).toISOString());
  if (f.q) p.set('q', f.q);
  for (const [k, v] of f.meta) p.set(`metadata.${k}`, v);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return `/events?${p}`;
}
