// GET /openapi.json (OpenAPI 3.1) and GET /docs. The request schemas are generated from the same zod
// schemas the handlers validate with (z.toJSONSchema), so the document cannot drift from the checks.
import { z } from 'zod';
import type { Config } from './config';
import { errorStatus } from './errors';
import { eventSchema, listQuerySchema, MAX_SERIES_BUCKETS } from './validate';

const json = (schema: unknown) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string) => ({ description, content: json(ref('Error')) });

export function openApiDocument(config: Config) {
  const toSchema = (s: z.ZodType) => {
    const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    return rest;
  };
  const event = toSchema(eventSchema(config.limits));
  const list = toSchema(listQuerySchema(config.limits)) as { properties: Record<string, Record<string, unknown>> };
  const listParams = Object.entries(list.properties)
    .filter(([name]) => name !== 'metaEq')
    .map(([name, schema]) => ({ name, in: 'query', required: false, schema, ...(name === 'service' ? { style: 'form', explode: true } : {}) }));
  listParams.push({
    name: 'metadata.{key}',
    in: 'query',
    required: false,
    schema: { type: 'string', maxLength: 1000 },
    description: 'Any parameter named metadata.<key> (dots for nested keys, up to 5 levels) keeps events whose metadata at that key equals the value, compared as text.',
  } as never);
  const wait = { name: 'wait', in: 'query', required: false, schema: { type: 'boolean' }, description: 'Answer 201 only once the events are committed (also: Prefer: wait).' };
  const ingestErrors = {
    '400': error('Invalid JSON, or an invalid event (each bad field named)'),
    '401': error('No API key or an unknown one'),
    '403': error('The key lacks the ingest scope'),
    '413': error('Body over the limit (decompressed)'),
    '415': error('Content-Type or Content-Encoding not supported'),
    '429': error('Queue full (Retry-After) or rate limited'),
    '503': error('Shutting down, or the database is unavailable and the queue is full (Retry-After)'),
  };
  const pagination = {
    type: 'object',
    properties: {
      total: { type: ['integer', 'null'] },
      total_is_exact: { type: 'boolean' },
      count: { enum: ['exact', 'estimate', 'none'] },
      limit: { type: 'integer' },
      offset: { type: 'integer' },
      has_more: { type: 'boolean' },
      next_cursor: { type: ['string', 'null'] },
    },
  };
  const health = (summary: string, description = 'OK') => ({ get: { summary, tags: ['health'], security: [], responses: { '200': { description }, '503': error('Not ready or shutting down') } } });
  const admin = (summary: string) => ({ get: { summary, tags: ['health'], responses: { '200': { description: 'OK', content: json({ type: 'object' }) }, '401': error('No API key'), '403': error('Not an admin key') } } });

  return {
    openapi: '3.1.0',
    info: {
      title: 'Aurore Events',
      version: '0.1.0',
      description: 'Event ingestion into TimescaleDB. With API keys configured, send Authorization: Bearer <key>; scopes ingest, query, admin.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Event: event,
        StoredEvent: {
          type: 'object',
          properties: {
            id: { type: 'string', format: 'uuid' },
            eventId: { type: 'string', format: 'uuid' },
            timestamp: { type: 'string', format: 'date-time' },
            service: { type: 'string' },
            message: { type: 'string' },
            metadata: { type: 'object' },
            ingestedAt: { type: 'string', format: 'date-time' },
            createdAt: { type: 'string', format: 'date-time' },
          },
        },
        Error: {
          type: 'object',
          required: ['statusCode', 'error', 'message'],
          properties: {
            statusCode: { type: 'integer' },
            error: { enum: Object.keys(errorStatus) },
            message: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, field: { type: 'string' }, message: { type: 'string' } } } },
            retry_after: { type: 'integer' },
          },
        },
        BatchResult: {
          type: 'object',
          properties: { accepted: { type: 'integer' }, duplicates: { type: 'integer' }, rejected: { type: 'integer' }, errors: { type: 'array', items: { type: 'object' } } },
        },
      },
    },
    security: config.apiKeys.length ? [{ bearer: [] }] : [],
    paths: {
      '/events': {
        post: {
          summary: 'Ingest one event',
          tags: ['ingest'],
          parameters: [wait],
          requestBody: { required: true, content: json(ref('Event')) },
          responses: {
            '202': { description: 'Queued (X-Ingest-Ack: queued)', content: json({ type: 'object', properties: { statusCode: { const: 202 }, message: { type: 'string' }, eventId: { type: 'string' } } }) },
            '201': { description: 'Committed (?wait=true; X-Ingest-Ack: committed)' },
            '422': error('With wait: the database refused the event (kept in events_rejected)'),
            ...ingestErrors,
          },
        },
        get: {
          summary: 'Query events (newest first; offset pages or keyset cursor)',
          tags: ['query'],
          parameters: listParams,
          responses: {
            '200': { description: 'A page of events', content: json({ type: 'object', properties: { events: { type: 'array', items: ref('StoredEvent') }, pagination } }) },
            '400': error('A bad parameter (each named)'),
            '401': error('No API key'),
            '403': error('The key lacks the query scope'),
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
          responses: { '202': { description: 'Queued', content: json(ref('BatchResult')) }, '201': { description: 'Committed (?wait=true)', content: json(ref('BatchResult')) }, ...ingestErrors },
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
      '/metrics/events': {
        get: {
          summary: 'Event counts per bucket per service, from the aggregates (every bucket present, zeros included)',
          tags: ['metrics'],
          parameters: [
            { name: 'service', in: 'query', required: false, style: 'form', explode: true, schema: { type: 'array', items: { type: 'string' }, maxItems: 100 }, description: 'One or more services (repeated or comma-separated); default: every service with events in the range.' },
            { name: 'from', in: 'query', required: false, schema: { type: 'string', format: 'date-time' }, description: 'Start, rounded down to its bucket (UTC). Default: 24 hours before `to`.' },
            { name: 'to', in: 'query', required: false, schema: { type: 'string', format: 'date-time' }, description: 'End (exclusive): buckets that start before it. Default: now.' },
            { name: 'bucket', in: 'query', required: false, schema: { enum: ['1m', '1h', '1d'], default: '1h' }, description: `Bucket width; at most ${MAX_SERIES_BUCKETS} buckets per request.` },
          ],
          responses: {
            '200': {
              description: 'The series',
              content: json({
                type: 'object',
                properties: {
                  bucket: { enum: ['1m', '1h', '1d'] },
                  from: { type: 'string', format: 'date-time' },
                  to: { type: 'string', format: 'date-time' },
                  series: { type: 'array', items: { type: 'object', properties: { service: { type: 'string' }, total: { type: 'integer' }, points: { type: 'array', items: { type: 'object', properties: { time: { type: 'string', format: 'date-time' }, count: { type: 'integer' } } } } } } },
                },
              }),
            },
            '400': error('A bad parameter (each named)'),
            '401': error('No API key'),
            '403': error('The key lacks the query scope'),
          },
        },
      },
      '/health/business': {
        get: {
          summary: "The MVP's business metrics, from the aggregates (correct to the minute)",
          tags: ['metrics'],
          responses: {
            '200': {
              description: 'Totals over the kept history; last hour and last 24 hours to the minute; eventsByHour: the last 24 UTC hours',
              content: json({
                type: 'object',
                properties: {
                  totalEvents: { type: 'integer' },
                  eventsByService: { type: 'object', additionalProperties: { type: 'integer' } },
                  eventsLast24Hours: { type: 'integer' },
                  eventsLastHour: { type: 'integer' },
                  averageEventsPerMinute: { type: 'number' },
                  topServices: { type: 'array', items: { type: 'object', properties: { service: { type: 'string' }, count: { type: 'integer' } } } },
                  eventsByHour: { type: 'array', items: { type: 'object', properties: { hour: { type: 'string', examples: ['2026-11-29 10:00'] }, count: { type: 'integer' } } } },
                  generatedAt: { type: 'string', format: 'date-time' },
                },
              }),
            },
            '401': error('No API key'),
            '403': error('The key lacks the query scope'),
            '503': error('Not ready'),
          },
        },
      },
      '/health/detailed': admin('Everything at once: status (ok, degraded, starting, shutting_down), queue, database with the maintenance jobs, business metrics'),
      '/health': health('Ready: {"message":"SERVER_IS_READY"} once the database is migrated'),
      '/health/live': health('Liveness probe'),
      '/health/ready': health('Readiness probe'),
      '/health/buffer': admin('Queue depth, capacity and counters'),
      '/health/database': admin('Database connectivity, engine, edition, versions, and each maintenance job (last run, next run, last error)'),
      '/metrics': admin('Prometheus metrics (text format)'),
      '/openapi.json': { get: { summary: 'This document', tags: ['docs'], security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
      '/docs': { get: { summary: 'An interactive reference built from this document', tags: ['docs'], security: [], responses: { '200': { description: 'HTML' } } } },
    },
  };
}

// A self-contained reference page (no CDN: it works offline and under a strict CSP): it reads
// /openapi.json, lists each operation with its parameters and schemas, and can send a request.
export const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Aurore Events API</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.4rem}details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}
summary{cursor:pointer}code,pre,textarea,input{font:12px ui-monospace,monospace}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
.m{display:inline-block;width:3.5rem;font-weight:600}.post{color:#0a6}.get{color:#06c}textarea{width:100%;height:6rem}input{width:100%}
</style></head><body>
<h1>Aurore Events API</h1><p id="intro"></p>
<p><label>API key (sent as Bearer) <input id="key" autocomplete="off"></label></p><div id="ops"></div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
fetch('openapi.json').then((r) => r.json()).then((doc) => {
  document.getElementById('intro').textContent = doc.info.description;
  const ops = document.getElementById('ops');
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const d = document.createElement('details');
    const params = (op.parameters || []).map((p) => '<li><code>' + esc(p.name) + '</code> (' + p.in + ') ' + esc(p.description || JSON.stringify(p.schema)) + '</li>').join('');
    const body = op.requestBody ? '<p>Body:</p><pre>' + esc(JSON.stringify(op.requestBody.content, null, 2)) + '</pre>' : '';
    const responses = Object.entries(op.responses).map(([s, r]) => '<li><b>' + s + '</b> ' + esc(r.description) + '</li>').join('');
    d.innerHTML = '<summary><span class="m ' + method + '">' + method.toUpperCase() + '</span><code>' + esc(path) + '</code> ' + esc(op.summary) + '</summary>' +
      (params ? '<ul>' + params + '</ul>' : '') + body + '<ul>' + responses + '</ul>' +
      '<p>Try it: <input class="url" value="' + esc(path.replace(/^\\//, '')) + '">' + (op.requestBody ? '<textarea class="body">{"service":"docs","message":"hello"}</textarea>' : '') +
      '<button>Send</button></p><pre class="out"></pre>';
    d.querySelector('button').onclick = async () => {
      const key = document.getElementById('key').value;
      const init = { method: method.toUpperCase(), headers: key ? { authorization: 'Bearer ' + key } : {} };
      if (op.requestBody) { init.headers['content-type'] = 'application/json'; init.body = d.querySelector('.body').value; }
      const res = await fetch(d.querySelector('.url').value, init);
      d.querySelector('.out').textContent = res.status + ' ' + res.statusText + '\\n' + await res.text();
    };
    ops.appendChild(d);
  }
});
</script></body></html>`;
