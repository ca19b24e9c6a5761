// The write stage: how a batch of queue records becomes rows. Optimistic COPY first (the fastest way
// into PostgreSQL); when the database refuses it (a row already stored, a value it rejects), the same
// batch again through one idempotent INSERT ... ON CONFLICT DO NOTHING, which reports duplicates and
// isolates a refused row. Used by the writer threads (workers/writer.ts), the spill replay and the benchmark.
import type { Engine } from './engine';
import { copyText, COPY_EVENTS, splitArray } from './record';

export interface InsertResult {
  inserted: number;
  /** Positions in the batch of rows that were already stored (same id and time). */
  duplicates: number[];
  /** Positions in the batch of rows the database refused, now in events_rejected. */
  rejected: { index: number; code: string; message: string }[];
  /** Rows written by COPY (the rest went through the INSERT path). */
  copied?: number;
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

/**
 * Below this many rows a batch goes straight to the INSERT: COPY costs one more round trip (the
 * server's CopyInResponse before the data), which small batches do not earn back. Measured on the
 * server engine here, median per batch, COPY / INSERT: 1 row 2.3 / 1.1 ms, 20 rows 1.8 / 1.4 ms,
 * 100 rows 3.6 / 4.6 ms, 500 rows 10 / 15 ms, 5,000 rows 82 / 143 ms.
 */
export const COPY_MIN_ROWS = 64;

export interface WriteOptions {
  /** Position of the batch's first record in what the caller reports (spill files write in chunks). */
  offset?: number;
  copyMinRows?: number;
  /** How the COPY text is handed over (the crash tests cut it in two). */
  chunked?: (text: string) => Iterable<string>;
}

/**
 * Writes a batch: COPY when the database takes it whole, else the exact INSERT path. Anything but
 * the database refusing the data (connection lost, say) is thrown for the batcher to retry.
 */
export async function writeRecords(engine: Engine, json: string, count: number, result: InsertResult, opts: WriteOptions = {}): Promise<void> {
  const { offset = 0, copyMinRows = COPY_MIN_ROWS, chunked = (text: string) => [text] } = opts;
  const text = count >= copyMinRows ? copyText(json) : null;
  if (text !== null) {
    try {
      await engine.copyIn(COPY_EVENTS, chunked(text));
      result.inserted += count;
      result.copied = (result.copied ?? 0) + count;
      return;
    } catch (e) {
      // 23505: a row already stored (a client's retry, a replay after a crash); 22xxx: a value the
      // database refuses. The COPY wrote nothing: the INSERT path sorts the rows out.
      if (!isDataError(e)) throw e;
    }
  }
  await insertRecords(engine, json, count, offset, result);
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
