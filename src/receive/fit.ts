// Fitting a record decoded from an agent's protocol (OTLP, Loki push) into the one internal event.
// Agents cannot fix what they send, and telemetry must not be dropped for one long line, so where
// the native API answers 400, this cuts, replaces and counts instead:
//   service   characters outside A-Z a-z 0-9 . _ : - become _, cut to SERVICE_NAME_MAX_LENGTH;
//             none at all: 'unknown_service' (OpenTelemetry's own name for it)
//   message   control characters (but tab, newline, CR) shown as their Unicode control pictures
//             (ESC -> U+241B), unpaired surrogates as U+FFFD; over MESSAGE_MAX_LENGTH cut with a marker
//   metadata  the same for every string; over METADATA_MAX_BYTES, keys kept in order while they fit
//             and a `_cut` entry says how many were left out
//   time      nanoseconds since the epoch, kept to the microsecond (what PostgreSQL stores); older
//             than RETENTION_DAYS or outside years 1000-9999: refused (counted by the receiver)
// The id is a UUIDv7 of the event's time whose random bits hash the record (its nanoseconds, its
// place in the request and its content): an exporter that retries a request sends the same ids, and
// the (id, time) key stores each record once, while two identical lines logged in the same
// microsecond stay two events.
import type { Config } from '../config';
import { isoOfMs } from '../event';
import { queueRecord, recordBody } from '../store/record';

type Limits = Config['limits'];

export interface Mapped {
  service: string | undefined;
  /** Unix nanoseconds; null: now. */
  timeNs: bigint | null;
  message: string;
  metadata: Record<string, unknown>;
}

export interface Fitted {
  id: string;
  time: string;
  record: string;
  service: string;
  /** Something was cut to fit (message or metadata). */
  cut: boolean;
}

export const UNKNOWN_SERVICE = 'unknown_service';
const CONTROLS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g;
const NOT_SERVICE = /[^A-Za-z0-9._:-]/g;
const MIN_NS = BigInt(Date.UTC(1000, 0, 1)) * 1_000_000n;
const MAX_NS = BigInt(Date.UTC(10_000, 0, 1)) * 1_000_000n;

/**
 * An object for keys an agent chose: without a prototype, "__proto__" is a key like any other (in a
 * plain object its setter takes the value as the prototype and the key is lost).
 */
export const keyed = <T>(): Record<string, T> => Object.create(null) as Record<string, T>;

/**
 * A JSON scalar as text (numbers and booleans written out), null for anything else. Never String() on
 * an object: a JSON object can carry a toString or valueOf key that is not a function, and it throws.
 */
export function scalarText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : null;
}

/** Text PostgreSQL stores and a person can read: control pictures for controls, U+FFFD for lone surrogates. */
export function cleanText(s: string): string {
  const t = CONTROLS.test(s) ? s.replace(CONTROLS, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0))) : s;
  CONTROLS.lastIndex = 0;
  return t.isWellFormed() ? t : t.toWellFormed();
}

/** Strings in a JSON value cleaned, keys included. */
function cleanValue(v: unknown): unknown {
  if (typeof v === 'string') return cleanText(v);
  if (Array.isArray(v)) return v.map(cleanValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [cleanText(k), cleanValue(x)]));
  return v;
}

const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : (a - b + 1n) / b); // BigInt division truncates
const MAX_EXACT_NS = BigInt(Number.MAX_SAFE_INTEGER) * 1000n; // below it, microseconds fit a double exactly

/** ISO-8601 UTC to the microsecond from Unix nanoseconds, rounded down (before 1970 too). */
export function isoMicros(ns: bigint): string {
  let ms: number;
  let sub: number; // microseconds past the millisecond
  if (ns >= 0n && ns < MAX_EXACT_NS) {
    const us = Number(ns / 1000n);
    ms = Math.floor(us / 1000);
    sub = us - ms * 1000;
  } else {
    const us = floorDiv(ns, 1000n);
    const msBig = floorDiv(us, 1000n);
    ms = Number(msBig);
    sub = Number(us - msBig * 1000n);
  }
  return `${isoOfMs(ms).slice(0, -1)}${sub < 10 ? '00' : sub < 100 ? '0' : ''}${sub}Z`;
}

function cutText(s: string, max: number): { text: string; cut: boolean } {
  if (s.length <= max) return { text: s, cut: false };
  const marker = `…[cut ${s.length - max} characters]`;
  const keep = Math.max(0, max - marker.length);
  return { text: (s.slice(0, keep) + marker.slice(0, max - keep)).toWellFormed(), cut: true };
}

/** Metadata as JSON within `max` bytes: keys in order while they fit, then `_cut`. */
export function fitMetadata(metadata: Record<string, unknown>, max: number): { json: string; cut: boolean } {
  let md = metadata;
  let json = JSON.stringify(md);
  // JSON.stringify escapes control characters and lone surrogates as \u00XX and \udXXX: only then
  // is there anything to clean (most records have nothing, and cleaning rebuilds every object).
  if (json.includes('\\u00') || json.includes('\\ud') || json.includes('\\b') || json.includes('\\f')) {
    md = cleanValue(md) as Record<string, unknown>;
    json = JSON.stringify(md);
  }
  // At most 3 UTF-8 bytes per UTF-16 unit: most metadata is under the limit without counting.
  if (json.length * 3 <= max) return { json, cut: false };
  const bytes = Buffer.byteLength(json);
  if (bytes <= max) return { json, cut: false };
  const budget = max - 64; // room for the _cut entry
  const out = keyed<unknown>();
  let used = 2;
  let left = 0;
  for (const [k, v] of Object.entries(md)) {
    const size = Buffer.byteLength(JSON.stringify(k)) + 1 + Buffer.byteLength(JSON.stringify(v)) + 1;
    if (used + size <= budget) {
      out[k] = v;
      used += size;
      continue;
    }
    const room = budget - used - Buffer.byteLength(JSON.stringify(k)) - 8;
    if (typeof v === 'string' && room > 32) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit, JSON escapes at most 6: a third of the room is safe
      out[k] = cutText(v, Math.floor(room / 6)).text;
      used = budget;
    } else left++;
  }
  out._cut = { keys: left, bytes };
  const fitted = JSON.stringify(out);
  return { json: Buffer.byteLength(fitted) <= max ? fitted : '{}', cut: true };
}

let lastIdMs = NaN;
let lastIdTime = ''; // the id's 48-bit time in hex, for lastIdMs

/**
 * A UUIDv7 for `ms` whose 74 random bits come from hashing `content` (two seeded 64-bit wyhashes).
 * Its 48-bit time counts milliseconds from 1970, unsigned: a record from before then gets 0 there
 * (the row keeps its real time; the id only has to be unique, and sorts first).
 */
export function stableUuidV7(ms: number, content: string): string {
  ms = Math.max(0, ms);
  const r = Bun.hash.wyhash(content, 7n).toString(16).padStart(16, '0') + Bun.hash.wyhash(content, 11n).toString(16).padStart(16, '0');
  if (ms !== lastIdMs) {
    lastIdMs = ms;
    lastIdTime = ms.toString(16).padStart(12, '0').slice(-12);
  }
  const t = lastIdTime;
  const variant = (8 | (parseInt(r[3]!, 16) & 3)).toString(16);
  return `${t.slice(0, 8)}-${t.slice(8)}-7${r.slice(0, 3)}-${variant}${r.slice(4, 7)}-${r.slice(7, 19)}`;
}

/** Fits mapped records into queue records; returns the record or why it cannot be stored. */
export function makeFitter(limits: Limits, opts: { maxAgeDays?: number } = {}) {
  const maxAgeMs = opts.maxAgeDays ? opts.maxAgeDays * 86_400_000 : 0;
  /** `place`: the record's position in its request (part of its id, see above). */
  return function fit(m: Mapped, place: number, nowMs = Date.now()): Fitted | { error: string } {
    const ns = m.timeNs ?? BigInt(nowMs) * 1_000_000n;
    if (ns < MIN_NS || ns >= MAX_NS) return { error: `timestamp ${ns} ns is outside the years 1000-9999` };
    const ms = Number(ns / 1_000_000n);
    if (maxAgeMs && ms < nowMs - maxAgeMs) return { error: `timestamp is older than RETENTION_DAYS (${opts.maxAgeDays} days)` };
    const time = isoMicros(ns);
    const service = m.service === undefined ? UNKNOWN_SERVICE : m.service.replace(NOT_SERVICE, '_').slice(0, limits.serviceMaxLength) || UNKNOWN_SERVICE;
    const message = cutText(cleanText(m.message), limits.messageMaxLength);
    const metadata = fitMetadata(m.metadata, limits.metadataMaxBytes);
    const body = recordBody(time, service, JSON.stringify(message.text), metadata.json);
    // Without a time of its own a record cannot be recognized when sent again: a fresh id.
    const id = m.timeNs === null ? Bun.randomUUIDv7('hex', ms) : stableUuidV7(ms, `${m.timeNs}:${place}:${body}`);
    return { id, time, service, record: queueRecord(id, body), cut: message.cut || metadata.cut };
  };
}
