// The write stage's statements: one INSERT per batch, and the path that isolates a row the database
// refuses. Used by the writer threads (workers/writer.ts), the spill replay and the benchmark.
import type { Engine } from './engine';

export interface InsertResult {
  inserted: number;
  /** Positions in the batch of rows that were already stored (same id and time). */
  duplicates: number[];
  /** Positions in the batch of rows the database refused, now in events_rejected. */
  rejected: { index: number; code: string; message: string }[];
}

const COLUMNS = `id uuid, time timestamptz, service text, message text, metadata jsonb`;

// ON CONFLICT DO NOTHING makes a batch idempotent: written again after a crash between commit and
// acknowledgement, or resent by a client, it adds no second row. Returns how many rows were new and
// the transaction's timestamp, which is every new row's ingested_at (as text: a JS Date would drop
// the microseconds and make every new row look old).
// $1::text::json, not $1::json: postgres.js would JSON-encode a string bound to a json parameter.
export const INSERT_BATCH = `
WITH inserted AS (
  INSERT INTO events (id, time, service, message, metadata)
  SELECT id, time, service, message, metadata FROM json_to_recordset($1::text::json) AS r(${COLUMNS})
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT count(*)::int AS inserted, now()::text AS at FROM (SELECT 1 FROM inserted) i`;

// Only when a batch had conflicts: which of its rows were there before this transaction.
// ::text::timestamptz keeps the microseconds postgres.js would lose by binding a JS Date.
const FIND_DUPLICATES = `
SELECT (r.idx - 1)::int AS idx
FROM ROWS FROM (json_to_recordset($1::text::json) AS (${COLUMNS})) WITH ORDINALITY AS r(id, time, service, message, metadata, idx)
JOIN events e ON e.id = r.id AND e.time = r.time
WHERE e.ingested_at <> $2::text::timestamptz`;

const QUARANTINE = `INSERT INTO events_rejected (error_code, error_message, record) VALUES ($1, $2, $3)`;

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the row, not the database, is at fault. */
function isDataError(e: unknown) {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^2[23]/.test(code);
}

/** Splits a JSON array text into its element texts without parsing them (exact, big numbers included). */
export function splitArray(json: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 1;
  for (let i = 1; i < json.length - 1; i++) {
    const ch = json.charCodeAt(i);
    if (inString) {
      if (ch === 92) i++; // backslash: skip the escaped character
      else if (ch === 34) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 123 || ch === 91) depth++;
    else if (ch === 125 || ch === 93) depth--;
    else if (ch === 44 && depth === 0) {
      out.push(json.slice(start, i));
      start = i + 1;
    }
  }
  if (json.length > 2) out.push(json.slice(start, json.length - 1));
  return out;
}

export async function insertRecords(engine: Engine, json: string, count: number, offset: number, result: InsertResult): Promise<void> {
  try {
    const [row] = await engine.query<{ inserted: number; at: string }>(INSERT_BATCH, [json]);
    const inserted = row?.inserted ?? 0;
    result.inserted += inserted;
    if (inserted < count) {
      const dups = await engine.query<{ idx: number }>(FIND_DUPLICATES, [json, row!.at]);
      for (const d of dups) result.duplicates.push(offset + d.idx);
    }
  } catch (e) {
    if (!isDataError(e)) throw e;
    // A row the database refuses: find it by halving, store the rest, quarantine it with the reason.
    const records = splitArray(json);
    if (records.length === 1) {
      const code = String((e as { code?: string }).code);
      const message = (e as Error).message;
      await engine.query(QUARANTINE, [code, message, records[0]]);
      result.rejected.push({ index: offset, code, message });
      return;
    }
    const half = records.length >> 1;
    await insertRecords(engine, `[${records.slice(0, half).join(',')}]`, half, offset, result);
    await insertRecords(engine, `[${records.slice(half).join(',')}]`, records.length - half, offset + half, result);
  }
}

