// The Loki push receiver: POST /loki/api/v1/push, as Grafana Alloy, Promtail, Vector, Fluent Bit
// and the pino/winston transports send it: protobuf compressed with snappy (block format; the
// default of most agents), or JSON (optionally gzip). It decodes and maps; limits, queueing and
// acknowledgement are accept.ts's:
//
//   Loki                                           event
//   label service_name, else service, else job,    service (none of them: unknown_service)
//     else app
//   the entry's timestamp (ns)                     timestamp, to the microsecond
//   the line                                       message
//   the stream's other labels                      metadata.labels {...}
//   the entry's structured metadata                metadata.<name>
//
// Answers as Loki does: 204 when stored (or queued), 400 with a plain-text reason, 429 with
// Retry-After when the queue is full. Entries Loki itself would refuse (too old, unreadable) are
// counted and named in the 400; the others of the request are stored.
import { Hono } from 'hono';
import protobuf from 'protobufjs';
import { uncompressSync } from 'snappy';
import { readFileSync } from 'node:fs';
import type { Config } from '../config';
import { ApiError, type WireErrors } from '../errors';
import type { ServiceState } from '../state';
import { acknowledge, type Acceptor } from './accept';
import type { BodyReader } from './body';
import { keyed, makeFitter, scalarText, type Fitted, type Mapped } from './fit';

const root = protobuf.parse(readFileSync(new URL('./proto/loki_push.proto', import.meta.url), 'utf8')).root;
const PushRequest = root.lookupType('aurore.loki.PushRequest');

const PROTOBUF = /^application\/(?:x-)?protobuf\s*(?:;|$)/i;
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;
/** Where the service name comes from, first found wins (docs/agents.md: Loki push). */
export const SERVICE_LABELS = ['service_name', 'service', 'job', 'app'] as const;

class Bad extends Error {}

/** A stream's label set from its text form, {name="value", ...}, with Go's string escapes. */
export function parseLabels(text: string): Record<string, string> {
  const out = keyed<string>();
  const s = text.trim();
  if (!s.startsWith('{') || !s.endsWith('}')) throw new Bad(`labels must be {name="value", ...}, got ${JSON.stringify(s.slice(0, 60))}`);
  let i = 1;
  const skip = () => {
    while (i < s.length - 1 && /[\s,]/.test(s[i]!)) i++;
  };
  for (skip(); i < s.length - 1; skip()) {
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i))?.[0];
    if (!name || s[i + name.length] !== '=' || s[i + name.length + 1] !== '"') throw new Bad(`labels: expected name="value" at character ${i}`);
    i += name.length + 2;
    let value = '';
    for (;;) {
      const ch = s[i++];
      if (ch === undefined) throw new Bad('labels: unterminated value');
      if (ch === '"') break;
      if (ch !== '\\') {
        value += ch;
        continue;
      }
      const e = s[i++];
      if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i, i + 4))) {
        value += String.fromCharCode(parseInt(s.slice(i, i + 4), 16));
        i += 4;
      } else value += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : (e ?? '');
    }
    out[name] = value;
  }
  return out;
}

/**
 * An entry's timestamp in ns: the protobuf decoder's (already a bigint, below), or JSON's "<ns>" text.
 * Only that text: any other JSON value (a number loses digits, an object is not Loki's JSON) is refused.
 */
function entryNs(ts: unknown): bigint {
  if (typeof ts === 'bigint') return ts;
  if (typeof ts === 'string' && /^\d{1,20}$/.test(ts)) return BigInt(ts);
  throw new Bad('the timestamp must be a string of nanoseconds since the epoch');
}

/** A protobuf Timestamp as the decoder gives it (seconds as a decimal string, nanos an int32) in ns. */
function timestampNs(t: { seconds?: string; nanos?: number } | undefined): bigint {
  return BigInt(t?.seconds ?? 0) * 1_000_000_000n + BigInt(t?.nanos ?? 0);
}

/** One stream's entries as events. */
function mapStream(labels: Record<string, string>, entries: { ts: unknown; line: unknown; meta: unknown }[]): (Mapped | Bad)[] {
  const key = SERVICE_LABELS.find((k) => labels[k]);
  const service = key ? labels[key] : undefined;
  const others = { ...labels };
  if (key) delete others[key];
  return entries.map((e) => {
    try {
      if (typeof e.line !== 'string') throw new Bad('the line must be a string');
      const md = keyed<unknown>();
      if (e.meta !== undefined && e.meta !== null) {
        if (typeof e.meta !== 'object' || Array.isArray(e.meta)) throw new Bad('structured metadata must be an object of strings');
        for (const [k, v] of Object.entries(e.meta as Record<string, unknown>)) md[k] = typeof v === 'string' ? v : JSON.stringify(v);
      }
      if (Object.keys(others).length) md.labels = others;
      return { service, timeNs: entryNs(e.ts), message: e.line, metadata: md };
    } catch (err) {
      if (err instanceof Bad) return err;
      throw err;
    }
  });
}

/** A label's value: Loki's are strings (numbers and booleans written out). */
function labelValue(v: unknown, name: string, stream: number): string {
  const t = scalarText(v);
  if (t === null) throw new ApiError('invalid_body', `streams[${stream}].stream: the label ${name} must be a string`);
  return t;
}

/** Streams of a JSON push: {"streams":[{"stream":{...},"values":[["<ns>","<line>",{...}?],...]}]}. */
function fromJson(bytes: Uint8Array) {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ApiError('invalid_body', `the body is not valid JSON: ${(e as Error).message}`);
  }
  const streams = (body as { streams?: unknown })?.streams;
  if (!Array.isArray(streams)) throw new ApiError('invalid_body', 'the body must be {"streams":[...]}');
  return streams.map((s, i) => {
    const st = s as { stream?: unknown; values?: unknown };
    if (!st || typeof st.stream !== 'object' || st.stream === null || !Array.isArray(st.values))
      throw new ApiError('invalid_body', `streams[${i}] must have "stream" (labels) and "values"`);
    const labels = Object.fromEntries(Object.entries(st.stream as Record<string, unknown>).map(([k, v]) => [k, labelValue(v, k, i)]));
    const entries = (st.values as unknown[]).map((v) =>
      Array.isArray(v) ? { ts: v[0], line: v[1], meta: v[2] } : { ts: undefined, line: undefined, meta: undefined },
    );
    return { labels, entries };
  });
}

/** Streams of a protobuf push (snappy block format, the length it declares checked before it is inflated). */
function fromProtobuf(bytes: Uint8Array, max: number) {
  let declared = 0;
  for (let i = 0, shift = 0; i < 5 && i < bytes.length; i++, shift += 7) {
    declared += (bytes[i]! & 0x7f) * 2 ** shift;
    if (!(bytes[i]! & 0x80)) break;
  }
  if (declared > max) throw new ApiError('payload_too_large', `Request body exceeds ${max} bytes (BATCH_MAX_BYTES) once decompressed`);
  let plain: Buffer;
  try {
    plain = uncompressSync(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { asBuffer: true }) as Buffer;
  } catch (e) {
    throw new ApiError('invalid_body', `the body is not valid snappy-compressed data: ${(e as Error).message}`);
  }
  let req: {
    streams?: {
      labels?: string;
      entries?: { timestamp?: { seconds?: string; nanos?: number }; line?: string; structuredMetadata?: { name?: string; value?: string }[] }[];
    }[];
  };
  try {
    req = PushRequest.toObject(PushRequest.decode(plain), { longs: String, defaults: false }) as typeof req;
  } catch (e) {
    throw new ApiError('invalid_body', `the body is not a valid protobuf PushRequest: ${(e as Error).message}`);
  }
  return (req.streams ?? []).map((s, i) => {
    let labels: Record<string, string>;
    try {
      labels = parseLabels(s.labels ?? '{}');
    } catch (e) {
      throw new ApiError('invalid_body', `streams[${i}]: ${(e as Error).message}`);
    }
    const entries = (s.entries ?? []).map((e) => ({
      ts: timestampNs(e.timestamp),
      line: e.line ?? '',
      meta: Object.fromEntries((e.structuredMetadata ?? []).map((p) => [p.name ?? '', p.value ?? ''])),
    }));
    return { labels, entries };
  });
}

/** A push's entries, decoded, mapped and fitted (the route, and the benchmark's decoding cost). */
export function readLoki(
  bytes: Uint8Array,
  proto: boolean,
  fit: (m: Mapped, place: number) => Fitted | { error: string },
  limits: { batchMaxEvents: number; batchMaxBytes: number },
) {
  const streams = proto ? fromProtobuf(bytes, limits.batchMaxBytes) : fromJson(bytes);
  const total = streams.reduce((n, s) => n + s.entries.length, 0);
  if (total > limits.batchMaxEvents)
    throw new ApiError('payload_too_large', `A push holds at most ${limits.batchMaxEvents} entries (BATCH_MAX_EVENTS); this one has ${total}`);
  const fitted: Fitted[] = [];
  const problems: string[] = [];
  let cut = 0;
  let place = 0;
  streams.forEach((s, i) => {
    mapStream(s.labels, s.entries).forEach((m, j) => {
      const f = m instanceof Bad ? { error: m.message } : fit(m, place++);
      if ('error' in f) problems.push(`streams[${i}].values[${j}]: ${f.error}`);
      else {
        fitted.push(f);
        if (f.cut) cut++;
      }
    });
  });
  return { fitted, problems, total, cut };
}

export const lokiErrors: WireErrors = {
  prefix: '/loki/api/v1/push',
  render(c, e) {
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    if (e.opts.retryAfter !== undefined) headers['retry-after'] = String(e.opts.retryAfter);
    const detail = e.opts.errors?.length ? `: ${e.opts.errors.map((x) => `${x.field} ${x.message}`).join('; ')}` : '';
    return c.body(`${e.message}${detail}\n`, e.status, headers);
  },
};

export function lokiReceiver({ config, state, accept, bodies }: { config: Config; state: ServiceState; accept: Acceptor; bodies: BodyReader }) {
  const app = new Hono();
  const fit = makeFitter(config.limits, { maxAgeDays: config.retention.rawDays });
  app.post('/loki/api/v1/push', async (c) => {
    const { type, wait, scope } = accept.intake(c, { protobuf: PROTOBUF, json: JSON_TYPE }, 'application/x-protobuf (snappy) or application/json');
    const proto = type === 'protobuf';
    // Snappy is the protobuf body's framing, not a Content-Encoding: some agents name it anyway.
    const raw =
      proto && /snappy/i.test(c.req.header('content-encoding') ?? '')
        ? new Request(c.req.raw, { headers: { 'content-type': c.req.header('content-type')! } })
        : c.req.raw;
    const { fitted, problems, total, cut } = readLoki(await bodies.bytes(raw, config.limits.batchMaxBytes, 'BATCH_MAX_BYTES'), proto, fit, config.limits);
    state.received += total;
    state.invalid += problems.length;
    state.cut += cut;
    const out = await accept.submit(fitted, wait, scope);
    state.invalid += out.forbidden.length;
    problems.push(...out.forbidden);
    acknowledge(c, out.committed);
    problems.push(...out.refused.map((r) => `refused by the database (kept in events_rejected): ${r}`));
    if (problems.length) {
      const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : '';
      throw new ApiError('validation_failed', `${problems.length} of ${total} entries not stored, the others were: ${problems.slice(0, 5).join('; ')}${more}`);
    }
    return c.body(null, 204);
  });
  return app;
}
