// POST /events/batch, compressed bodies, client ids and wait-for-commit, on each engine.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { deflateSync } from 'node:zlib';
import { countRows, engines, newTarget, postEvent, startService, until, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

type Svc = Awaited<ReturnType<typeof startService>>;
interface BatchReply {
  statusCode: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  errors: { index: number; field: string; message: string }[];
}

const ev = (service: string, i: number, extra: Record<string, unknown> = {}) => ({ service, message: `m${i}`, metadata: { i }, ...extra });
const uuid = () => crypto.randomUUID();

describe.each(engines)('batches and acknowledgements [%s]', (kind) => {
  let target: Target;
  let svc: Svc;
  beforeAll(async () => {
    target = await newTarget(kind);
    svc = await startService(target, { BATCH_MAX_EVENTS: '50', BATCH_MAX_BYTES: String(64 * 1024) });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const batch = (body: string | Uint8Array | ReadableStream, headers: Record<string, string> = {}, qs = '') =>
    svc.app.request(`/events/batch${qs}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  test('a partial batch stores the valid events and reports each bad one by index', async () => {
    const items = [ev('partial', 0), { service: 'bad name', message: 'x' }, ev('partial', 2), { message: 'no service' }, ev('partial', 4)];
    const res = await batch(JSON.stringify(items), {}, '?wait=true');
    expect(res.status).toBe(201);
    const body = (await res.json()) as BatchReply;
    expect(body).toMatchObject({ accepted: 3, duplicates: 0, rejected: 2 });
    expect(body.errors.map((e) => [e.index, e.field])).toEqual([
      [1, 'service'],
      [3, 'service'],
    ]);
    expect(await countRows(svc.engine, `service = 'partial'`)).toBe(3);
  });

  test('a batch with nothing valid is 400 with every error', async () => {
    const res = await batch(JSON.stringify([{ service: '' }, 42]));
    expect(res.status).toBe(400);
    const body = (await res.json()) as BatchReply & { error: string };
    expect(body.error).toBe('validation_failed');
    expect(body.accepted).toBe(0);
    expect(new Set(body.errors.map((e) => e.index))).toEqual(new Set([0, 1]));
  });

  test('NDJSON: each line is an event, a malformed line is reported by its index', async () => {
    const lines = `${[JSON.stringify(ev('ndjson', 0)), '{"service": broken', '', JSON.stringify(ev('ndjson', 2))].join('\n')}\n`;
    const res = await batch(lines, { 'content-type': 'application/x-ndjson' }, '?wait=true');
    expect(res.status).toBe(201);
    const body = (await res.json()) as BatchReply;
    expect(body).toMatchObject({ accepted: 2, rejected: 1 });
    expect(body.errors[0]).toMatchObject({ index: 1, field: '(line)' });
    expect(await countRows(svc.engine, `service = 'ndjson'`)).toBe(2);
  });

  test('gzip, deflate and zstd bodies are accepted on both endpoints', async () => {
    const one = JSON.stringify(ev('compressed', 0));
    const many = JSON.stringify([ev('compressed', 1), ev('compressed', 2)]);
    const r1 = await postEvent(svc.app, Bun.gzipSync(Buffer.from(one)), { 'content-encoding': 'gzip' });
    expect(r1.status).toBe(202);
    const r2 = await batch(deflateSync(Buffer.from(many)), { 'content-encoding': 'deflate' });
    expect(r2.status).toBe(202);
    const r3 = await batch(Bun.zstdCompressSync(Buffer.from(many)), { 'content-encoding': 'zstd' });
    expect(r3.status).toBe(202);
    await until(async () => (await countRows(svc.engine, `service = 'compressed'`)) === 5);
  });

  test('an unknown Content-Encoding is 415 and corrupt gzip is 400', async () => {
    const r = await postEvent(svc.app, JSON.stringify(ev('x', 0)), { 'content-encoding': 'br' });
    expect(r.status).toBe(415);
    expect(((await r.json()) as { message: string }).message).toContain('br');
    const corrupt = await postEvent(svc.app, new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5]), { 'content-encoding': 'gzip' });
    expect(corrupt.status).toBe(400);
  });

  test('a gzip bomb is 413 and the service stops reading it', async () => {
    // An endless stream of compressed zeros: if the service read it to the end it would never answer.
    const zeros = new Uint8Array(1024 * 1024);
    let produced = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(ctl) {
        produced++;
        ctl.enqueue(zeros);
      },
      cancel() {
        cancelled = true;
      },
    }).pipeThrough(new CompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>);
    const res = await batch(endless, { 'content-encoding': 'gzip' });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { message: string }).message).toContain('BATCH_MAX_BYTES');
    await until(() => cancelled, 5000, 'the body stream to be cancelled');
    expect(produced).toBeLessThan(1000); // far from "all of it": it has no end
  });

  test('over BATCH_MAX_EVENTS or BATCH_MAX_BYTES is 413 naming the limit', async () => {
    const many = Array.from({ length: 51 }, (_, i) => ev('big', i));
    const r1 = await batch(JSON.stringify(many));
    expect(r1.status).toBe(413);
    expect(((await r1.json()) as { message: string }).message).toContain('BATCH_MAX_EVENTS');
    const r2 = await batch(
      JSON.stringify([
        ev('big', 0, { message: 'x'.repeat(2000), metadata: { p: 'y'.repeat(15000) } }),
        ...Array(4).fill(ev('big', 1, { metadata: { p: 'z'.repeat(15000) } })),
      ]),
    );
    expect(r2.status).toBe(413);
    expect(((await r2.json()) as { message: string }).message).toContain('BATCH_MAX_BYTES');
    expect(await countRows(svc.engine, `service = 'big'`)).toBe(0);
  });

  test('an event resent with the same id and timestamp is stored once, and a waiting resend is told', async () => {
    const id = uuid();
    const e = ev('resend', 0, { id, timestamp: '2024-05-01T12:00:00Z' });
    const first = await postEvent(svc.app, e, { prefer: 'wait' });
    expect(first.status).toBe(201);
    expect(await first.json()).toMatchObject({ eventId: id, duplicate: false });
    const again = await postEvent(svc.app, { ...e, id: undefined, eventId: id.toUpperCase() }, { prefer: 'wait' });
    expect(again.status).toBe(201);
    expect(await again.json()).toMatchObject({ eventId: id, duplicate: true });
    const queued = await postEvent(svc.app, e);
    expect(queued.status).toBe(202);
    await until(() => svc.queue.depth === 0);
    expect(await countRows(svc.engine, `service = 'resend'`)).toBe(1);
    // The same id at another time is another event.
    await postEvent(svc.app, { ...e, timestamp: '2024-05-01T12:00:01Z' }, { prefer: 'wait' });
    expect(await countRows(svc.engine, `service = 'resend'`)).toBe(2);
  });

  test('a batch counts duplicates inside itself and against stored events', async () => {
    const a = ev('dupbatch', 0, { id: uuid(), timestamp: '2024-05-02T00:00:00Z' });
    const b = ev('dupbatch', 1, { id: uuid(), timestamp: '2024-05-02T00:00:00Z' });
    const r1 = await batch(JSON.stringify([a, a, b]), {}, '?wait=true');
    expect(await r1.json()).toMatchObject({ accepted: 2, duplicates: 1, rejected: 0 });
    const r2 = await batch(JSON.stringify([a, b, ev('dupbatch', 2)]), {}, '?wait=true');
    expect(await r2.json()).toMatchObject({ accepted: 1, duplicates: 2, rejected: 0 });
    expect(await countRows(svc.engine, `service = 'dupbatch'`)).toBe(3);
  });

  test('ids must be UUIDs, and id and eventId must agree', async () => {
    const r1 = await postEvent(svc.app, ev('ids', 0, { id: 'evt_abc123' }));
    expect(r1.status).toBe(400);
    const r2 = await postEvent(svc.app, ev('ids', 0, { id: uuid(), eventId: uuid() }));
    expect(((await r2.json()) as { errors: { field: string }[] }).errors[0]!.field).toBe('eventId');
  });

  test('with ?wait=true the event is queryable the moment 201 returns; without, the ack says queued', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await postEvent(svc.app, ev(`visible-${i}`, i), {});
      expect(res.headers.get('x-ingest-ack')).toBe('queued');
      const waited = await svc.app.request('/events?wait=true', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ev(`durable-${i}`, i)),
      });
      expect(waited.status).toBe(201);
      expect(waited.headers.get('x-ingest-ack')).toBe('committed');
      const got = (await (await svc.app.request(`/events?service=durable-${i}`)).json()) as { pagination: { total: number } };
      expect(got.pagination.total).toBe(1);
    }
  });

  test('concurrent waiting clients share batch commits', async () => {
    const before = svc.batcher.stats.batches;
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => postEvent(svc.app, ev('shared-commit', i), { prefer: 'wait' })));
    expect(replies.every((r) => r.status === 201)).toBe(true);
    expect(svc.batcher.stats.batches - before).toBeLessThan(40);
    expect(await countRows(svc.engine, `service = 'shared-commit'`)).toBe(40);
  });

  test('a bad wait value is 400', async () => {
    const res = await svc.app.request('/events?wait=maybe', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ev('w', 0)),
    });
    expect(res.status).toBe(400);
  });
});
