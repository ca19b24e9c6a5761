// The OpenTelemetry receiver: POST /v1/logs, OTLP/HTTP (opentelemetry-proto collector/logs/v1) in
// protobuf (application/x-protobuf, most exporters' default) or OTLP/JSON (application/json: ids as
// hex, 64-bit integers as strings or numbers, enums as integers, lowerCamelCase names). It decodes
// and maps; limits, queueing and acknowledgement are accept.ts's, as for POST /events/batch:
//
//   OTLP                                          event
//   resource attribute service.name               service (missing: unknown_service)
//   timeUnixNano, else observedTimeUnixNano,      timestamp, to the microsecond
//     else now
//   body: a string as it is; any other value      message
//     as its JSON (bytes as base64)
//   the record's attributes                       metadata.<key>
//   severityText, severityNumber, traceId         metadata.severity_text, .severity_number, .trace_id,
//     (hex), spanId (hex), flags, eventName         .span_id, .flags, .event_name (when set)
//   scope name and version                        metadata.scope {name, version}
//   the other resource attributes                 metadata.resource {...}
//
// Answers as the specification says: 200 with an ExportLogsServiceResponse in the request's encoding
// (records that cannot be stored counted in partial_success), a google.rpc.Status body with every
// 4xx/5xx, 429/503 with Retry-After (both retryable for exporters).
import { Hono, type Context } from 'hono';
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import type { Config } from '../config';
import { ApiError, type WireErrors } from '../errors';
import type { ServiceState } from '../state';
import { acknowledge, type Acceptor } from './accept';
import type { BodyReader } from './body';
import { keyed, makeFitter, scalarText, type Fitted, type Mapped } from './fit';

const root = protobuf.parse(readFileSync(new URL('./proto/otlp_logs.proto', import.meta.url), 'utf8')).root;
const Request = root.lookupType('aurore.otlp.ExportLogsServiceRequest');
const Response_ = root.lookupType('aurore.otlp.ExportLogsServiceResponse');
const Status = root.lookupType('aurore.otlp.Status');

const PROTOBUF = /^application\/(?:x-)?protobuf\s*(?:;|$)/i;
const JSON_TYPE = /^application\/json\s*(?:;|$)/i;
const MAX_DEPTH = 32; // AnyValue nesting kept; deeper values are shown as a marker
const HEX_ID = /^[0-9a-f]*$/i;

type Obj = Record<string, unknown>;
const GRPC_CODE: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 414: 3, 415: 3, 422: 3, 429: 8, 500: 13, 503: 14 };

/** A record the receiver cannot take (counted in partial_success), or a request it cannot read (400). */
class Bad extends Error {}

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
function list(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Bad(`${path} must be an array`);
  return v;
}
function obj(v: unknown, path: string): Obj {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new Bad(`${path} must be an object`);
  return v;
}

/** Text where OTLP/JSON wants a string (a number or boolean written out); anything else is refused. */
function text(v: unknown, path: string): string {
  const t = scalarText(v);
  if (t === null) throw new Bad(`${path} must be a string`);
  return t;
}
/** A number, or its decimal text; anything else is NaN (never Number() on an object: see scalarText). */
const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN);

/** A 64-bit integer from protobuf (decimal string, toObject's longs: String) or OTLP/JSON (string or number). */
function int64(v: unknown, path: string): bigint | null {
  if (v === undefined || v === null || v === '' || v === 0 || v === '0') return null;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return BigInt(v);
  throw new Bad(`${path} must be an integer (a string or a number)`);
}

/** An AnyValue as plain JSON; 64-bit integers beyond 2^53 stay strings, bytes are base64. */
function anyValue(v: unknown, path: string, depth = 0): unknown {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) throw new Bad(`${path} must be an AnyValue object`);
  if (depth >= MAX_DEPTH) return `[nested deeper than ${MAX_DEPTH} levels]`;
  if ('stringValue' in v) return text(v.stringValue, `${path}.stringValue`);
  if ('boolValue' in v) return Boolean(v.boolValue);
  if ('intValue' in v) {
    const n = int64(v.intValue, `${path}.intValue`) ?? 0n;
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
  }
  if ('doubleValue' in v) {
    const d = num(v.doubleValue);
    return Number.isFinite(d) ? d : text(v.doubleValue, `${path}.doubleValue`); // "NaN", "Infinity" as text
  }
  if ('bytesValue' in v) return text(v.bytesValue, `${path}.bytesValue`);
  if ('arrayValue' in v)
    return list(obj(v.arrayValue, `${path}.arrayValue`).values, `${path}.arrayValue.values`).map((x, i) =>
      anyValue(x, `${path}.arrayValue.values[${i}]`, depth + 1),
    );
  if ('kvlistValue' in v) return attributes(obj(v.kvlistValue, `${path}.kvlistValue`).values, `${path}.kvlistValue.values`, depth + 1);
  return null; // an empty AnyValue
}

function attributes(v: unknown, path: string, depth = 0): Obj {
  const out = keyed<unknown>();
  list(v, path).forEach((kv, i) => {
    const p = `${path}[${i}]`;
    const o = obj(kv, p);
    if (typeof o.key !== 'string') throw new Bad(`${p}.key must be a string`);
    out[o.key] = anyValue(o.value, `${p}.value`, depth);
  });
  return out;
}

/** A trace or span id as lowercase hex: bytes (protobuf, here base64) or hex text (OTLP/JSON). */
function hexId(v: unknown, bytes: number, path: string, fromProtobuf: boolean): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new Bad(`${path} must be a string`);
  const hex = fromProtobuf ? Buffer.from(v, 'base64').toString('hex') : v.toLowerCase();
  if (!hex) return undefined;
  if (!HEX_ID.test(hex) || hex.length !== bytes * 2) throw new Bad(`${path} must be ${bytes} bytes${fromProtobuf ? '' : ' as hex'}`);
  return hex;
}

/** One log record as an event (mapping table above). */
function mapRecord(r: Obj, path: string, ctx: { service: string | undefined; resource: Obj; scope: Obj | undefined }, fromProtobuf: boolean): Mapped {
  const body = anyValue(r.body, `${path}.body`);
  const md: Obj = attributes(r.attributes, `${path}.attributes`);
  const set = (k: string, v: unknown) => {
    if (v !== undefined && v !== null && v !== '' && v !== 0) md[k] = v;
  };
  set('severity_text', typeof r.severityText === 'string' ? r.severityText : undefined);
  const severity = num(r.severityNumber);
  set('severity_number', Number.isInteger(severity) ? severity : undefined);
  set('trace_id', hexId(r.traceId, 16, `${path}.traceId`, fromProtobuf));
  set('span_id', hexId(r.spanId, 8, `${path}.spanId`, fromProtobuf));
  set('flags', num(r.flags ?? 0) >>> 0);
  set('event_name', typeof r.eventName === 'string' ? r.eventName : undefined);
  if (ctx.scope) md.scope = ctx.scope;
  if (Object.keys(ctx.resource).length) md.resource = ctx.resource;
  return {
    service: ctx.service,
    timeNs: int64(r.timeUnixNano, `${path}.timeUnixNano`) ?? int64(r.observedTimeUnixNano, `${path}.observedTimeUnixNano`),
    message: typeof body === 'string' ? body : body === null ? '' : JSON.stringify(body),
    metadata: md,
  };
}

/** Every record of a request: fitted, or why not (with its path). A request that cannot be read throws Bad. */
function mapRequest(req: Obj, fit: (m: Mapped, place: number) => Fitted | { error: string }, max: number, fromProtobuf: boolean) {
  const fitted: Fitted[] = [];
  const errors: string[] = [];
  let records = 0;
  let cut = 0;
  list(req.resourceLogs, 'resourceLogs').forEach((rl, i) => {
    const rp = `resourceLogs[${i}]`;
    const res = attributes(obj(obj(rl, rp).resource, `${rp}.resource`).attributes, `${rp}.resource.attributes`);
    const service = typeof res['service.name'] === 'string' ? res['service.name'] : undefined;
    delete res['service.name'];
    list(obj(rl, rp).scopeLogs, `${rp}.scopeLogs`).forEach((sl, j) => {
      const sp = `${rp}.scopeLogs[${j}]`;
      const s = obj(obj(sl, sp).scope, `${sp}.scope`);
      const scope =
        s.name || s.version
          ? { name: text(s.name ?? '', `${sp}.scope.name`), ...(s.version ? { version: text(s.version, `${sp}.scope.version`) } : {}) }
          : undefined;
      const logRecords = list(obj(sl, sp).logRecords, `${sp}.logRecords`);
      records += logRecords.length;
      if (records > max) throw new ApiError('payload_too_large', `A request holds at most ${max} log records (BATCH_MAX_EVENTS)`);
      logRecords.forEach((r, k) => {
        const p = `${sp}.logRecords[${k}]`;
        try {
          const f = fit(mapRecord(obj(r, p), p, { service, resource: res, scope }, fromProtobuf), records - logRecords.length + k);
          if ('error' in f) errors.push(`${p}: ${f.error}`);
          else {
            fitted.push(f);
            if (f.cut) cut++;
          }
        } catch (e) {
          if (!(e instanceof Bad)) throw e;
          errors.push(e.message);
        }
      });
    });
  });
  return { fitted, errors, records, cut };
}

/** A request's records, decoded, mapped and fitted (the route, and the benchmark's decoding cost). */
export function readOtlp(bytes: Uint8Array, fromProtobuf: boolean, fit: (m: Mapped, place: number) => Fitted | { error: string }, max: number) {
  const req = decode(bytes, fromProtobuf);
  try {
    return mapRequest(req, fit, max, fromProtobuf);
  } catch (e) {
    if (e instanceof Bad) throw new ApiError('invalid_body', e.message);
    throw e;
  }
}

/** The request body as a plain object in OTLP/JSON's shape (protobuf: longs as strings, bytes as base64). */
function decode(bytes: Uint8Array, fromProtobuf: boolean): Obj {
  try {
    if (fromProtobuf) return Request.toObject(Request.decode(bytes), { longs: String, bytes: String, defaults: false });
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    const v = JSON.parse(text) as unknown;
    if (!isObj(v)) throw new Bad('the body must be a JSON object (ExportLogsServiceRequest)');
    return v;
  } catch (e) {
    if (e instanceof Bad) throw new ApiError('invalid_body', e.message);
    if (e instanceof RangeError && /stack/i.test(e.message)) throw new ApiError('invalid_body', 'the request is nested too deeply');
    throw new ApiError(
      'invalid_body',
      `the body is not a valid ${fromProtobuf ? 'protobuf ExportLogsServiceRequest' : 'OTLP/JSON request'}: ${(e as Error).message}`,
    );
  }
}

/** 4xx/5xx answers: a google.rpc.Status in the request's encoding, with Retry-After where it applies. */
export const otlpErrors: WireErrors = {
  prefix: '/v1/logs',
  render(c, e) {
    const status = { code: GRPC_CODE[e.status] ?? 2, message: e.message };
    const headers: Record<string, string> = e.opts.retryAfter !== undefined ? { 'retry-after': String(e.opts.retryAfter) } : {};
    if (JSON_TYPE.test(c.req.header('content-type') ?? '')) return c.json(status, e.status, headers);
    return c.body(Status.encode(status).finish() as Uint8Array<ArrayBuffer>, e.status, { ...headers, 'content-type': 'application/x-protobuf' });
  },
};

function answer(c: Context, fromProtobuf: boolean, rejected: number, errorMessage: string) {
  const partial = rejected ? { partialSuccess: { rejectedLogRecords: String(rejected), errorMessage } } : {};
  if (!fromProtobuf) return c.json(partial, 200);
  const msg = rejected ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage } } : {};
  return c.body(Response_.encode(Response_.fromObject(msg)).finish() as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/x-protobuf' });
}

export function otlpReceiver({ config, state, accept, bodies }: { config: Config; state: ServiceState; accept: Acceptor; bodies: BodyReader }) {
  const app = new Hono();
  const fit = makeFitter(config.limits, { maxAgeDays: config.retention.rawDays });
  app.post('/v1/logs', async (c) => {
    const { type, wait, scope } = accept.intake(c, { protobuf: PROTOBUF, json: JSON_TYPE }, 'application/x-protobuf or application/json (OTLP/HTTP)');
    const fromProtobuf = type === 'protobuf';
    const mapped = readOtlp(await bodies.bytes(c.req.raw, config.limits.batchMaxBytes, 'BATCH_MAX_BYTES'), fromProtobuf, fit, config.limits.batchMaxEvents);
    state.received += mapped.records;
    state.invalid += mapped.errors.length;
    state.cut += mapped.cut;
    const out = await accept.submit(mapped.fitted, wait, scope);
    acknowledge(c, out.committed);
    state.invalid += out.forbidden.length;
    const problems = [...mapped.errors, ...out.forbidden, ...out.refused.map((m) => `refused by the database (kept in events_rejected): ${m}`)];
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    return answer(c, fromProtobuf, problems.length, problems.slice(0, 3).join('; ') + more);
  });
  return app;
}
