// The write stage: how a batch of queue records becomes rows. Optimistic COPY first (the fastest way
// into PostgreSQL); when the database refuses it (a row already stored, a value it rejects), the same
// batch again through one idempotent INSERT ... ON CONFLICT DO NOTHING, which reports duplicates and
// isolates a refused row. Used by the writer threads (workers/writer.ts), the spill replay and the benchmark.
import type { Engine } from './engine';

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

/** The COPY the optimistic path runs; its text comes from copyText (tab-separated, COPY's text format). */
export const COPY_EVENTS = `COPY events (id, time, service, message, metadata) FROM STDIN`;

const ID_AT = '{"id":"'.length;
const TIME = '","time":"';
const SERVICE = '","service":"';
const MESSAGE = '","message":"';
const METADATA = ',"metadata":';

/**
 * The batch's records as COPY text, or null when a record is not in the layout the receivers write
 * (then the INSERT path, which parses JSON in the database, takes the batch).
 *
 * Why this is exact without parsing JSON: the receivers write every record as
 * {"id":"<uuid>","time":"<iso>","service":"<name>","message":<JSON string>,"metadata":<JSON object>}
 * with JSON.stringify's escapes, and COPY's text format reads \" \\ \/ \b \f \n \r \t exactly as JSON
 * does. Only \u escapes differ (validation leaves them for no storable character but, to be safe,
 * such a message is decoded and re-escaped). The metadata goes to jsonb as JSON text, so only its
 * backslashes need doubling; JSON.stringify leaves no raw tab or newline in it.
 */
export function copyText(json: string): string | null {
  const lines: string[] = [];
  let p = 1; // after '['
  const end = json.length - 1;
  while (p < end) {
    if (json.charCodeAt(p) !== 123 || !json.startsWith('{"id":"', p)) return null;
    const id = json.slice(p + ID_AT, p + ID_AT + 36);
    let q = p + ID_AT + 36;
    if (!json.startsWith(TIME, q)) return null;
    const timeEnd = json.indexOf('"', q + TIME.length);
    const time = json.slice(q + TIME.length, timeEnd);
    if (!json.startsWith(SERVICE, timeEnd)) return null;
    q = timeEnd + SERVICE.length;
    const serviceEnd = json.indexOf('"', q);
    const service = json.slice(q, serviceEnd);
    if (!json.startsWith(MESSAGE, serviceEnd)) return null;
    q = serviceEnd + MESSAGE.length;
    const messageEnd = stringEnd(json, q);
    let message = json.slice(q, messageEnd);
    if (message.includes('\\u')) message = escapeCopy(JSON.parse(`"${message}"`) as string);
    if (!json.startsWith(METADATA, messageEnd + 1)) return null;
    q = messageEnd + 1 + METADATA.length;
    const metadataEnd = objectEnd(json, q);
    if (metadataEnd < 0 || json.charCodeAt(metadataEnd) !== 125) return null; // the record's closing brace
    let metadata = json.slice(q, metadataEnd);
    if (metadata.includes('\\')) metadata = metadata.replaceAll('\\', '\\\\');
    lines.push(`${id}\t${time}\t${service}\t${message}\t${metadata}\n`);
    p = metadataEnd + 1;
    if (json.charCodeAt(p) === 44) p++; // ',' between records
  }
  return lines.join('');
}

/** Index of the quote closing the JSON string whose content starts at `i`. */
function stringEnd(json: string, i: number): number {
  for (;;) {
    const q = json.indexOf('"', i);
    if (q < 0) return json.length;
    let backslashes = 0;
    while (json.charCodeAt(q - 1 - backslashes) === 92) backslashes++;
    if (backslashes % 2 === 0) return q;
    i = q + 1;
  }
}

/** Index just past the JSON object starting at `i` ('{'), or -1. */
function objectEnd(json: string, i: number): number {
  if (json.charCodeAt(i) !== 123) return -1;
  let depth = 0;
  for (let k = i; k < json.length; k++) {
    const ch = json.charCodeAt(k);
    if (ch === 34) k = stringEnd(json, k + 1);
    else if (ch === 123 || ch === 91) depth++;
    else if ((ch === 125 || ch === 93) && --depth === 0) return k + 1;
  }
  return -1;
}

/** Text as a COPY text-format field. */
function escapeCopy(s: string): string {
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
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

