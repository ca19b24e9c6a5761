// The query stage: GET /events. One statement shape per combination of filters (at most eight), so
// each is prepared once and planned with the filters it really has: a single "$1 IS NULL OR ..."
// shape would get a generic plan that cannot use the (service, time) index.
import type { Engine } from './engine';
import type { ListQuery } from './validate';

interface EventRow {
  id: string;
  time: Date;
  service: string;
  message: string;
  metadata: Record<string, unknown>;
  ingested_at: Date;
}

/** The MVP's event shape: id and eventId are the same value; createdAt is when it was stored. */
export function toApiEvent(r: EventRow) {
  const ingestedAt = new Date(r.ingested_at).toISOString();
  return {
    id: r.id,
    eventId: r.id,
    timestamp: new Date(r.time).toISOString(),
    service: r.service,
    message: r.message,
    metadata: r.metadata,
    ingestedAt,
    createdAt: ingestedAt,
  };
}

export async function listEvents(engine: Engine, q: ListQuery) {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.service) where.push(`service = $${params.push(q.service)}`);
  if (q.from) where.push(`time >= $${params.push(q.from)}::timestamptz`);
  if (q.to) where.push(`time <= $${params.push(q.to)}::timestamptz`);
  const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const limit = q.pageSize;
  const offset = (q.page - 1) * q.pageSize;
  const [rows, [count]] = await Promise.all([
    engine.query<EventRow>(
      `SELECT id, time, service, message, metadata, ingested_at FROM events ${filter}
       ORDER BY time DESC, id DESC LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, limit, offset],
    ),
    engine.query<{ total: number }>(`SELECT count(*)::float8 AS total FROM events ${filter}`, params),
  ]);
  const total = count?.total ?? 0;
  return {
    events: rows.map(toApiEvent),
    pagination: { total, limit, offset, has_more: offset + rows.length < total },
  };
}
