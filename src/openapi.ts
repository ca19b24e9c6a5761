// GET /openapi.json (OpenAPI 3.1) and GET /docs. The request schemas are generated from the same zod
// schemas the handlers validate with (z.toJSONSchema), so the document cannot drift from the checks;
// each operation's security comes from the access table (protect/access.ts).
import { z } from 'zod';
import type { Config } from './config';
import { errorStatus } from './errors';
import { scopeOf } from './protect/access';
import { listQuerySchema, MAX_SERIES_BUCKETS } from './read/params';
import { eventSchema } from './receive/validate';

type Operation = Record<string, unknown>;
type Paths = Record<string, Record<string, Operation>>;

const json = (schema: unknown) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string) => ({ description, content: json(ref('Error')) });
const object = (properties: Record<string, unknown>) => ({ type: 'object', properties });
const int = { type: 'integer' };
const str = { type: 'string' };
const dateTime = { type: 'string', format: 'date-time' };

const toSchema = (s: z.ZodType) => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function components(config: Config) {
  return {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Event: toSchema(eventSchema(config.limits)),
      StoredEvent: object({
        id: { type: 'string', format: 'uuid' },
        eventId: { type: 'string', format: 'uuid' },
        timestamp: dateTime,
        service: str,
        message: str,
        metadata: { type: 'object' },
        ingestedAt: dateTime,
        createdAt: dateTime,
      }),
      Error: {
        type: 'object',
        required: ['statusCode', 'error', 'message'],
        properties: {
          statusCode: int,
          error: { enum: Object.keys(errorStatus) },
          message: str,
          errors: { type: 'array', items: object({ index: int, field: str, message: str }) },
          retry_after: int,
        },
      },
      BatchResult: object({ accepted: int, duplicates: int, rejected: int, errors: { type: 'array', items: { type: 'object' } } }),
    },
  };
}

const wait = {
  name: 'wait',
  in: 'query',
  required: false,
  schema: { type: 'boolean' },
  description: 'Answer 201 only once the events are committed (also: Prefer: wait).',
};
const ingestErrors = {
  '400': error('Invalid JSON, or an invalid event (each bad field named)'),
  '413': error('Body over the limit (decompressed)'),
  '415': error('Content-Type or Content-Encoding not supported'),
  '429': error('Queue full (Retry-After) or rate limited'),
  '503': error(
    'Shutting down, the database is unavailable and the queue is full, or overloaded: too many bodies being read at once (BODY_BUDGET_BYTES) (Retry-After)',
  ),
};

function ingestPaths(config: Config): Paths {
  return {
    '/events': {
      post: {
        summary: 'Ingest one event',
        tags: ['ingest'],
        parameters: [wait],
        requestBody: { required: true, content: json(ref('Event')) },
        responses: {
          '202': { description: 'Queued (X-Ingest-Ack: queued)', content: json(object({ statusCode: { const: 202 }, message: str, eventId: str })) },
          '201': { description: 'Committed (?wait=true; X-Ingest-Ack: committed)' },
          '422': error('With wait: the database refused the event (kept in events_rejected)'),
          ...ingestErrors,
        },
      },
    },
    '/events/batch': {
      post: {
        summary: 'Ingest many events: a JSON array or NDJSON; valid ones are accepted, bad ones reported by index',
        tags: ['ingest'],
        parameters: [wait],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: { type: 'array', items: ref('Event'), maxItems: config.limits.batchMaxEvents } },
            'application/x-ndjson': { schema: { type: 'string', description: 'One event as JSON per line' } },
          },
        },
        responses: {
          '202': { description: 'Queued', content: json(ref('BatchResult')) },
          '201': { description: 'Committed (?wait=true)', content: json(ref('BatchResult')) },
          ...ingestErrors,
        },
      },
    },
  };
}

/** The agents' protocols: their bodies are theirs (opentelemetry-proto, Loki's push.proto). */
function agentPaths(config: Config): Paths {
  const protobuf = (description: string) => ({ schema: { type: 'string', format: 'binary', description } });
  return {
    '/v1/logs': {
      post: {
        summary: 'OpenTelemetry logs (OTLP/HTTP): point an exporter or Collector at this URL',
        tags: ['ingest'],
        parameters: [wait],
        requestBody: {
          required: true,
          content: {
            'application/x-protobuf': protobuf('ExportLogsServiceRequest (opentelemetry-proto collector/logs/v1)'),
            'application/json': { schema: { type: 'object', description: 'OTLP/JSON ExportLogsServiceRequest: {"resourceLogs":[...]}' } },
          },
        },
        responses: {
          '200': {
            description: `ExportLogsServiceResponse in the request's encoding; records not stored are counted in partialSuccess. At most ${config.limits.batchMaxEvents} records a request.`,
          },
          '400': { description: 'google.rpc.Status: the request cannot be read' },
          '413': { description: 'google.rpc.Status: over BATCH_MAX_BYTES or BATCH_MAX_EVENTS' },
          '415': { description: 'google.rpc.Status: neither protobuf nor JSON' },
          '429': { description: 'google.rpc.Status: queue full or rate limited (Retry-After; retryable)' },
          '503': { description: 'google.rpc.Status: shutting down, database unavailable, or overloaded (Retry-After; retryable)' },
        },
      },
    },
    '/loki/api/v1/push': {
      post: {
        summary: "Loki's push API: point Alloy, Promtail, Vector, Fluent Bit or a Loki client at this service",
        tags: ['ingest'],
        parameters: [wait],
        requestBody: {
          required: true,
          content: {
            'application/x-protobuf': protobuf('PushRequest (Loki push.proto), snappy block-compressed'),
            'application/json': {
              schema: { type: 'object', description: '{"streams":[{"stream":{labels},"values":[["<unix ns>","<line>",{structured metadata}]]}]}' },
            },
          },
        },
        responses: {
          '204': { description: 'Stored (or queued)' },
          '400': { description: 'Plain text: what could not be read, or which entries were not stored (the others were)' },
          '413': { description: 'Plain text: over BATCH_MAX_BYTES or BATCH_MAX_EVENTS' },
          '429': { description: 'Plain text: queue full or rate limited (Retry-After)' },
          '503': { description: 'Plain text: shutting down, database unavailable, or overloaded (Retry-After)' },
        },
      },
    },
  };
}

function queryPaths(config: Config): Paths {
  const list = toSchema(listQuerySchema(config.limits)) as { properties: Record<string, Record<string, unknown>> };
  const listParams: Operation[] = Object.entries(list.properties)
    .filter(([name]) => name !== 'metaEq')
    .map(([name, schema]) => ({ name, in: 'query', required: false, schema, ...(name === 'service' ? { style: 'form', explode: true } : {}) }));
  listParams.push({
    name: 'metadata.{key}',
    in: 'query',
    required: false,
    schema: { type: 'string', maxLength: 1000 },
    description:
      'Any parameter named metadata.<key> (dots for nested keys, up to 5 levels) keeps events whose metadata at that key equals the value, compared as text.',
  });
  const pagination = object({
    total: { type: ['integer', 'null'] },
    total_is_exact: { type: 'boolean' },
    count: { enum: ['exact', 'estimate', 'none'] },
    limit: int,
    offset: int,
    has_more: { type: 'boolean' },
    next_cursor: { type: ['string', 'null'] },
  });
  return {
    '/events': {
      get: {
        summary: 'Query events (newest first; offset pages or keyset cursor)',
        tags: ['query'],
        parameters: listParams,
        responses: {
          '200': { description: 'A page of events', content: json(object({ events: { type: 'array', items: ref('StoredEvent') }, pagination })) },
          '400': error('A bad parameter (each named)'),
          '503': error('Not ready, or overloaded: too many large pages being sent at once (READ_BUDGET_BYTES; Retry-After, or ask for a smaller pageSize)'),
        },
      },
    },
    '/events/{id}': {
      get: {
        summary: 'One event by id',
        tags: ['query'],
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
        responses: { '200': { description: 'The event', content: json(ref('StoredEvent')) }, '400': error('Not a UUID'), '404': error('No such event') },
      },
    },
  };
}

function metricsPaths(config: Config): Paths {
  const points = { type: 'array', items: object({ time: dateTime, count: int }) };
  const series = object({
    bucket: { enum: ['1m', '1h', '1d'] },
    from: dateTime,
    to: dateTime,
    series: { type: 'array', items: object({ service: str, total: int, points }) },
  });
  const business = object({
    totalEvents: int,
    eventsByService: { type: 'object', additionalProperties: int },
    eventsLast24Hours: int,
    eventsLastHour: int,
    averageEventsPerMinute: { type: 'number' },
    topServices: { type: 'array', items: object({ service: str, count: int }) },
    eventsByHour: { type: 'array', items: object({ hour: { type: 'string', examples: ['2026-11-29 10:00'] }, count: int }) },
    generatedAt: dateTime,
  });
  return {
    '/metrics/events': {
      get: {
        summary: 'Event counts per bucket per service, from the aggregates (every bucket present, zeros included)',
        tags: ['metrics'],
        parameters: [
          {
            name: 'service',
            in: 'query',
            required: false,
            style: 'form',
            explode: true,
            schema: { type: 'array', items: str, maxItems: 100 },
            description: 'One or more services (repeated or comma-separated); default: every service with events in the range.',
          },
          {
            name: 'from',
            in: 'query',
            required: false,
            schema: dateTime,
            description: 'Start, rounded down to its bucket (UTC). Default: 24 hours before `to`.',
          },
          { name: 'to', in: 'query', required: false, schema: dateTime, description: 'End (exclusive): buckets that start before it. Default: now.' },
          {
            name: 'bucket',
            in: 'query',
            required: false,
            schema: { enum: ['1m', '1h', '1d'], default: '1h' },
            description: `Bucket width; at most ${MAX_SERIES_BUCKETS} buckets per request, and at most ${config.limits.seriesMaxPoints} points (services x buckets) per answer (SERIES_MAX_POINTS).`,
          },
        ],
        responses: {
          '200': { description: 'The series', content: json(series) },
          '400': error('A bad parameter (each named), or an answer of more than SERIES_MAX_POINTS points'),
          '503': error('Not ready, or overloaded: too many large answers being sent at once (READ_BUDGET_BYTES)'),
        },
      },
    },
    '/health/business': {
      get: {
        summary: "The MVP's business metrics, from the aggregates (correct to the minute)",
        tags: ['metrics'],
        responses: {
          '200': {
            description:
              'Totals over the kept history (its days before yesterday read once per AGGREGATE_REFRESH_SECONDS); last hour and last 24 hours to the minute; eventsByHour: the last 24 UTC hours',
            content: json(business),
          },
          '503': error('Not ready'),
        },
      },
    },
  };
}

function healthPaths(): Paths {
  const probe = (summary: string) => ({
    get: { summary, tags: ['health'], responses: { '200': { description: 'OK' }, '503': error('Not ready or shutting down') } },
  });
  const admin = (summary: string) => ({ get: { summary, tags: ['health'], responses: { '200': { description: 'OK', content: json({ type: 'object' }) } } } });
  return {
    '/health/detailed': admin(
      'Everything at once: status (ok, degraded, starting, shutting_down), queue, database with the maintenance jobs, business metrics',
    ),
    '/health': probe('Ready: {"message":"SERVER_IS_READY"} once the database is migrated'),
    '/health/live': probe('Liveness probe'),
    '/health/ready': probe('Readiness probe'),
    '/health/buffer': admin('Queue depth, capacity and counters'),
    '/health/database': admin('Database connectivity, engine, edition, versions, and each maintenance job (last run, next run, last error)'),
    '/metrics': admin('Prometheus metrics (text format)'),
    '/openapi.json': { get: { summary: 'This document', tags: ['docs'], responses: { '200': { description: 'OpenAPI 3.1' } } } },
    '/docs': {
      get: { summary: 'An interactive reference built from this document (Swagger UI)', tags: ['docs'], responses: { '200': { description: 'HTML' } } },
    },
    '/docs/{file}': {
      get: {
        summary: "The reference page's script and styles",
        tags: ['docs'],
        parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { '200': { description: 'JavaScript or CSS' }, '404': { description: 'No such file' } },
      },
    },
    '/': { get: { summary: 'The web console (CONSOLE=false: 404)', tags: ['console'], responses: { '200': { description: 'HTML' } } } },
    '/console/{file}': {
      get: {
        summary: "The console's script and styles",
        tags: ['console'],
        parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { '200': { description: 'JavaScript or CSS' }, '404': { description: 'No such file' } },
      },
    },
  };
}

/** Each operation's security and 401/403 answers, from the access table. */
/** The Loki query API (docs/grafana.md): Loki 3.x's own reference describes each answer; here, what each route takes. */
function lokiQueryPaths(): Paths {
  const p = (name: string, description: string, required = false) => ({ name, in: 'query', required, schema: str, description });
  const range = [
    p('start', 'ns, s or RFC 3339 (default: end - since)'),
    p('end', 'ns, s or RFC 3339 (default: now)'),
    p('since', 'a duration (default 1h; 6h for lookups)'),
  ];
  const loki = (summary: string, parameters: unknown[], methods: ('get' | 'post')[] = ['get']) => {
    const op = {
      summary,
      tags: ['loki'],
      parameters,
      responses: {
        '200': { description: '{"status":"success","data":...} as Loki 3.x answers' },
        '400': { description: '{"status":"error","errorType":"bad_data","error":"..."}' },
      },
    };
    return Object.fromEntries(methods.map((m) => [m, op]));
  };
  const logql = p('query', 'LogQL (docs/grafana.md: what is supported)', true);
  const selector = p('query', 'a stream selector');
  return {
    '/loki/api/v1/query_range': loki(
      'LogQL over a time range: streams for a log query, a matrix for a metric query',
      [logql, ...range, p('step', 's or a duration'), p('limit', 'entries (default 100, at most 5000)'), p('direction', 'backward (default) or forward')],
      ['get', 'post'],
    ),
    '/loki/api/v1/query': loki('An instant metric query: a vector or a scalar', [logql, p('time', 'ns, s or RFC 3339 (default: now)')], ['get', 'post']),
    '/loki/api/v1/labels': loki('Stream label names', [...range, selector]),
    '/loki/api/v1/label/{name}/values': loki("One label's values", [{ name: 'name', in: 'path', required: true, schema: str }, ...range, selector]),
    '/loki/api/v1/series': loki('Stream label sets of selectors', [p('match[]', 'a stream selector (repeatable)', true), ...range], ['get', 'post']),
    '/loki/api/v1/index/stats': loki('Streams, entries and bytes of a selector', [{ ...selector, required: true }, ...range]),
    '/loki/api/v1/index/volume': loki('Bytes per series of the target labels', [
      { ...selector, required: true },
      ...range,
      p('targetLabels', 'comma-separated'),
      p('limit', 'series'),
    ]),
    '/loki/api/v1/index/volume_range': loki('Bytes per series of the target labels, per step', [
      { ...selector, required: true },
      ...range,
      p('step', 's'),
      p('targetLabels', 'comma-separated'),
    ]),
    '/loki/api/v1/detected_labels': loki('Stream labels with their cardinality', [...range, selector]),
    '/loki/api/v1/detected_fields': loki('Structured metadata and JSON fields of the entries', [{ ...selector, required: true }, ...range]),
    '/loki/api/v1/detected_field/{name}/values': loki("One detected field's values", [
      { name: 'name', in: 'path', required: true, schema: str },
      { ...selector, required: true },
      ...range,
    ]),
    '/loki/api/v1/patterns': loki('Log patterns (none are detected: always empty)', [selector, ...range]),
    '/loki/api/v1/status/buildinfo': loki('The Loki version this API answers as', []),
    '/loki/api/v1/format_query': loki('The query, checked and trimmed', [logql]),
  };
}

function secure(paths: Paths, keys: boolean): Paths {
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const scope = scopeOf(method, path);
      if (scope === undefined) throw new Error(`openapi: ${method.toUpperCase()} ${path} is not in the access table (protect/access.ts)`);
      op.security = scope && keys ? [{ bearer: [] }] : [];
      if (scope) {
        op.description = `Scope: \`${scope}\`${scope === 'admin' ? '' : ' (or admin)'}.`;
        Object.assign(op.responses as object, { '401': error('No API key, or an unknown one'), '403': error(`The key lacks the ${scope} scope`) });
      }
    }
  }
  return paths;
}

/** Merges path maps whose paths may share a URL (GET and POST /events come from two stages). */
function merge(...maps: Paths[]): Paths {
  const out: Paths = {};
  for (const m of maps) for (const [path, ops] of Object.entries(m)) out[path] = { ...out[path], ...ops };
  return out;
}

export function openApiDocument(config: Config) {
  const keys = config.apiKeys.length > 0;
  return {
    openapi: '3.1.0',
    info: {
      title: 'Aurore Events',
      version: '0.1.0',
      description:
        'Event ingestion into TimescaleDB. With API keys configured, send `Authorization: Bearer KEY`; scopes ingest, query, admin. The console at / and this page share the key you give either of them (kept in this browser tab only).',
    },
    components: components(config),
    security: keys ? [{ bearer: [] }] : [],
    paths: secure(merge(ingestPaths(config), agentPaths(config), queryPaths(config), lokiQueryPaths(), metricsPaths(config), healthPaths()), keys),
  };
}
