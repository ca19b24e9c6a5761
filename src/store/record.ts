// The queue record: the one layout in which an event travels from a receiver to the database, written
// and read here only. A receiver's validated event becomes
//   {"id":"<uuid>","time":"<ISO-8601>","service":"<name>","message":<JSON string>,"metadata":<JSON object>}
// with JSON.stringify's escapes: JSON text the database reads as it is (json_to_recordset, the
// INSERT path of write.ts), and that copyText turns into COPY's text format by slicing, without
// parsing it. The field names are the events table's columns.

/** The record after its id: `"time":...,"metadata":{...}}`; fit.ts derives stable ids from it. */
export function recordBody(time: string, service: string, messageJson: string, metadataJson: string): string {
  return `"time":"${time}","service":"${service}","message":${messageJson},"metadata":${metadataJson}}`;
}

/** The queue record of an event: its id, then its body (recordBody). */
export function queueRecord(id: string, body: string): string {
  return `{"id":"${id}",${body}`;
}

/** The same record with another id (the benchmark's fresh events from one template). */
export function withId(record: string, id: string): string {
  return queueRecord(id, record.slice(ID_AT + 36 + 2));
}

const ID_AT = '{"id":"'.length;

/** Splits a JSON array text into its element texts without parsing them (exact, big numbers included). */
export function splitArray(json: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 1;
  for (let i = 1; i < json.length - 1; i++) {
    const ch = json.charCodeAt(i);
    if (inString) {
      if (ch === 92)
        i++; // backslash: skip the escaped character
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
