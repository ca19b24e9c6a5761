// The SQL behind the Loki query API, every value a bound parameter: a stream selector and the line
// filters at the head of the pipeline narrow the rows in the database (the service index, the time
// range, strpos and regexes PostgreSQL decides as RE2 would, regex.ts); the key's service scope
// narrows them too. What the SQL narrows is a superset: the whole selector and pipeline still run
// on each row (pipeline.ts), so a translation can only make a read slower, never its answer wrong.
// Times are bound as text (::text::timestamptz): postgres.js would serialize a timestamptz parameter
// through a JS Date and drop its microseconds (an event exactly at a window's end was missed).
// Rows are read in pages on (time, id), each page one statement, so writes go between them on the
// embedded engine and a request's deadline (read/deadline.ts) stops a long read between pages.
import type { ServiceScope } from '../../config';
import type { Engine } from '../../store/engine';
import type { LogQuery, Matcher, Stage } from './ast';
import { type EventRow, resourceKeyOf } from './model';
import { compile } from './regex';

export interface Where {
  sql: string[];
  params: unknown[];
}

const param = (w: Where, v: unknown) => {
  w.params.push(v);
  return `$${w.params.length}`;
};

/** A label's value in SQL: service_name is the column; others are Loki push labels or promoted OTLP resource attributes. */
function labelSql(w: Where, name: string): string {
  if (name === 'service_name') return 'service';
  const res = resourceKeyOf(name);
  const fromLabels = `metadata->'labels'->>${param(w, name)}::text`;
  return res ? `coalesce(${fromLabels}, metadata->'resource'->>${param(w, res)}::text, '')` : `coalesce(${fromLabels}, '')`;
}

function matcherSql(w: Where, m: Matcher) {
  const col = labelSql(w, m.name);
  if (m.op === '=' || m.op === '!=') {
    w.sql.push(`${col} ${m.op === '=' ? '=' : '<>'} ${param(w, m.value)}::text`);
    return;
  }
  const re = compile(m.value, true);
  if (!re.pgExact) return;
  const op = (m.op === '!~' ? '!' : '') + (re.insensitive ? '~*' : '~');
  w.sql.push(`${col} ${op} ${param(w, re.pg)}::text`);
}

/** The line filters before any stage that changes the line or the labels. */
function leadingLineFilters(stages: Stage[]) {
  const out = [];
  for (const s of stages) {
    if (s.kind !== 'line') break;
    out.push(s.filter);
  }
  return out;
}

function lineSql(w: Where, stages: Stage[]) {
  for (const f of leadingLineFilters(stages)) {
    if (f.op === '|=' || f.op === '!=') {
      const parts = f.values.map((v) => `strpos(message, ${param(w, v)}::text) > 0`);
      w.sql.push(f.op === '|=' ? `(${parts.join(' OR ')})` : `NOT (${parts.join(' OR ')})`);
      continue;
    }
    const res = f.values.map((v) => compile(v, false));
    if (res.some((r) => !r.pgExact)) continue;
    const parts = res.map((r) => `message ${r.insensitive ? '~*' : '~'} ${param(w, r.pg)}::text`);
    w.sql.push(f.op === '|~' ? `(${parts.join(' OR ')})` : `NOT (${parts.join(' OR ')})`);
  }
}

/** The key's services (null: all). */
export function scopeSql(w: Where, scope: ServiceScope | null) {
  if (!scope) return;
  w.sql.push(`service LIKE ANY(${param(w, [...scope.like])}::text[])`);
}

/** The conditions of a log query over [fromUs, toUs) microseconds. */
export function whereOf(q: LogQuery, scope: ServiceScope | null, fromUs: bigint, toUs: bigint): Where {
  const w: Where = { sql: [], params: [] };
  w.sql.push(`time >= ${param(w, usIso(fromUs))}::text::timestamptz`, `time < ${param(w, usIso(toUs))}::text::timestamptz`);
  for (const m of q.selector) matcherSql(w, m);
  lineSql(w, q.stages);
  scopeSql(w, scope);
  return w;
}

/** Microseconds since the epoch as an ISO timestamp with all six decimals. */
export function usIso(us: bigint): string {
  const s = us / 1_000_000n;
  const frac = us % 1_000_000n;
  const [sec, f] = frac < 0n ? [s - 1n, frac + 1_000_000n] : [s, frac];
  return `${new Date(Number(sec) * 1000).toISOString().slice(0, 19)}.${f.toString().padStart(6, '0')}Z`;
}

const PAGE_ROWS = 2000;

/**
 * Reads the rows of `w` in time order, page by page (keyset on time and id), handing each to
 * `take`; stops when `take` returns false or the rows run out.
 */
export async function scan(engine: Engine, w: Where, order: 'asc' | 'desc', take: (row: EventRow) => boolean): Promise<void> {
  let after: { us: string; id: string } | null = null;
  const dir = order === 'asc' ? 'ASC' : 'DESC';
  for (;;) {
    const page: Where = { sql: [...w.sql], params: [...w.params] };
    if (after) {
      const t = param(page, usIso(BigInt(after.us)));
      page.sql.push(`(time, id) ${order === 'asc' ? '>' : '<'} (${t}::text::timestamptz, ${param(page, after.id)}::uuid)`);
    }
    const rows = await engine.query<EventRow & { id: string }>(
      `SELECT (extract(epoch FROM time) * 1000000)::int8::text AS us, id::text AS id, service, message, metadata
       FROM events WHERE ${page.sql.join(' AND ')} ORDER BY time ${dir}, id ${dir} LIMIT ${PAGE_ROWS}`,
      page.params,
    );
    for (const r of rows) if (!take(r)) return;
    if (rows.length < PAGE_ROWS) return;
    const last = rows[rows.length - 1]!;
    after = { us: last.us, id: last.id };
  }
}
