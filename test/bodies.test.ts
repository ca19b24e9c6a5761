// Request bodies. Through the real server process (`bun src/main.ts`), where Bun's own limits sit in
// front of the app: every size the README promises arrives, a larger one gets the app's JSON 413
// naming the limit (not Bun's bare 413 and a closed connection). And the bodies held in memory at
// once, by every receiver together, stay within BODY_BUDGET_BYTES, as large answers being sent stay
// within READ_BUDGET_BYTES: past either, 503 overloaded.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newTarget, spawnService, startService, until, type Target } from './harness';

setDefaultTimeout(90_000);

const ndjson = (service: string, n: number, pad: number) =>
  Array.from({ length: n }, (_, i) => JSON.stringify({ service, message: `${'x'.repeat(pad)} ${i}` })).join('\n');

describe('body sizes through the real server [embedded]', () => {
  let dir: string;
  let svc: Awaited<ReturnType<typeof spawnService>>;
  // Small limits keep the bodies small; the proportions are the defaults' (a batch 40x a single event).
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aurore-bodies-'));
    svc = await spawnService({ DATA_DIR: dir, BODY_MAX_BYTES: '4096', BATCH_MAX_BYTES: String(160 * 1024) });
  });
  afterAll(async () => {
    svc?.proc.kill('SIGKILL');
    await svc?.proc.exited;
    rmSync(dir, { recursive: true, force: true });
  });
  const post = (body: string, qs = '') => fetch(`${svc.url}/events/batch${qs}`, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body });

  test('a batch just under BATCH_MAX_BYTES (far above BODY_MAX_BYTES) is stored whole', async () => {
    const body = ndjson('bodies-large', 300, 480); // ~150 KB
    expect(body.length).toBeGreaterThan(140 * 1024);
    expect(body.length).toBeLessThan(160 * 1024);
    const res = await post(body, '?wait=true');
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ accepted: 300, rejected: 0 });
  });

  test('a batch over BATCH_MAX_BYTES is the JSON 413 naming the limit, and the connection serves the next request', async () => {
    const res = await post(ndjson('bodies-over', 400, 480)); // ~200 KB
    expect(res.status).toBe(413);
    expect(((await res.json()) as { message: string }).message).toContain('BATCH_MAX_BYTES');
    const next = await post(ndjson('bodies-next', 2, 10));
    expect(next.status).toBe(202);
  });
});

/**
 * A request body that sends `first` bytes, then waits for `finish()` to send the rest and end;
 * `waiting` is true once the service has read `first` and asked for more.
 */
function heldBody(first: Uint8Array, rest: Uint8Array = new Uint8Array(0)) {
  let finish!: () => void;
  const go = new Promise<void>((r) => (finish = r));
  let sent = false;
  const held = { stream: null as unknown as ReadableStream<Uint8Array>, finish, waiting: false };
  held.stream = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (!sent) {
        sent = true;
        ctl.enqueue(first);
        return;
      }
      held.waiting = true;
      await go;
      if (rest.length) ctl.enqueue(rest);
      ctl.close();
    },
  });
  held.finish = finish;
  return held;
}

describe('the body budget shared by every receiver [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  const KB = 1024;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { BODY_MAX_BYTES: String(16 * KB), BATCH_MAX_BYTES: String(96 * KB), BODY_BUDGET_BYTES: String(160 * KB) });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const enc = new TextEncoder();
  // NDJSON in two parts: ~55 KB of whole lines, then a last line. Two held bodies and a third pass
  // the 160 KB budget; a declared 90 KB is past the 4 KB read in one call (counted as it arrives).
  const part = (service: string) => enc.encode(`${ndjson(service, 100, 540)}\n`);
  const tail = (service: string) => enc.encode(JSON.stringify({ service, message: 'last' }));
  const batch = async (body: string | Uint8Array | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
    svc.app.request('/events/batch', { method: 'POST', headers: { 'content-type': 'application/x-ndjson', ...headers }, body });
  const metric = async (name: string) => Number((await (await svc.app.request('/metrics')).text()).match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);

  test('bodies being read hold the budget; past it every receiver answers 503 overloaded with Retry-After; once they end, the budget is free again', async () => {
    const a = heldBody(part('budget-a'), tail('budget-a'));
    const b = heldBody(part('budget-b'), tail('budget-b'));
    const ra = batch(a.stream);
    const rb = batch(b.stream);
    await until(async () => (await metric('aurore_request_body_bytes_held')) > 100 * KB, 5000, 'two bodies to hold ~110 KB');
    // A third fills the budget to 2 KB short of it (blank lines, then one event when it ends).
    const c = heldBody(enc.encode('\n'.repeat(158 * KB - (await metric('aurore_request_body_bytes_held')))), tail('budget-filler'));
    const rc = batch(c.stream);
    await until(async () => (await metric('aurore_request_body_bytes_held')) === 158 * KB, 5000, 'three bodies to hold 158 KB');

    const refused = await batch(part('budget-c'));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    const body = (await refused.json()) as { error: string; message: string };
    expect(body.error).toBe('overloaded');
    expect(body.message).toContain('BODY_BUDGET_BYTES');
    // The agents' receivers read through the same budget (their own error shapes, same status).
    const otlp = await svc.app.request('/v1/logs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array(60 * KB).fill(32) });
    expect(otlp.status).toBe(503);
    expect(otlp.headers.get('retry-after')).toMatch(/^\d+$/);
    const loki = await svc.app.request('/loki/api/v1/push', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Uint8Array(60 * KB).fill(32),
    });
    expect(loki.status).toBe(503);
    // A single event read in one call (Content-Length up to 4 KB) is counted at its length.
    const single = JSON.stringify({ service: 'budget-single', message: 'y'.repeat(3 * KB) });
    const declared = await svc.app.request('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(single.length) },
      body: single,
    });
    expect(declared.status).toBe(503);
    expect(await metric('aurore_requests_overloaded_total')).toBe(4);

    for (const held of [a, b, c]) held.finish();
    expect(((await (await ra).json()) as { accepted: number }).accepted).toBe(101);
    expect(((await (await rb).json()) as { accepted: number }).accepted).toBe(101);
    expect(((await (await rc).json()) as { accepted: number }).accepted).toBe(1);
    expect(await metric('aurore_request_body_bytes_held')).toBe(0);
    const again = await batch(part('budget-c'), {}); // what was refused fits now
    expect(again.status).toBe(202);
  });

  test('a body that declares a large Content-Length holds no budget until its bytes arrive; refused and failed reads give theirs back', async () => {
    const silent = [heldBody(new Uint8Array(0)), heldBody(new Uint8Array(0)), heldBody(new Uint8Array(0))];
    let answered = 0;
    const pending = silent.map((s) => batch(s.stream, { 'content-length': String(90 * KB) }).finally(() => answered++));
    await until(() => silent.every((s) => s.waiting) || answered > 0, 5000, 'the service to be reading the three bodies');
    expect(answered).toBe(0);
    const ok = await batch(part('budget-declared'));
    expect(ok.status).toBe(202);
    for (const s of silent) s.finish();
    await Promise.all(pending);
    // Over BATCH_MAX_BYTES mid-stream (413), and not valid gzip (400): the bytes they held are returned.
    const over = heldBody(part('budget-over'), part('budget-over'));
    const tooLarge = batch(over.stream);
    over.finish();
    expect((await tooLarge).status).toBe(413);
    const badGzip = await batch(new Uint8Array(40 * KB).fill(7), { 'content-encoding': 'gzip' });
    expect(badGzip.status).toBe(400);
    expect(await metric('aurore_request_body_bytes_held')).toBe(0);
  });
});

describe('the budget of large answers being sent [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  const KB = 1024;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { READ_BUDGET_BYTES: String(380 * KB) });
    // 100 events of ~1.5 KB: a page of them is ~170 KB, past the 64 KB answers sent at once.
    const lines = Array.from({ length: 100 }, (_, i) => JSON.stringify({ service: 'answers', message: `${'w'.repeat(1400)} ${i}` })).join('\n');
    const res = await svc.app.request('/events/batch?wait=true', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });
  const page = (size = 100) => svc.app.request(`/events?service=answers&pageSize=${size}`);
  const held = () =>
    svc.metrics.registry.getSingleMetricAsString('aurore_answer_bytes_held').then((t) => Number(t.match(/^aurore_answer_bytes_held (\S+)$/m)?.[1]));

  test('an answer being sent holds its bytes until it is read or dropped; past the budget a large page is 503 overloaded, a small one is still answered', async () => {
    const unread = await page(); // never pulled: holds nothing (Bun never started sending it)
    expect(unread.status).toBe(200);
    expect(await held()).toBe(0);
    const first = (await page()).body!.getReader();
    const second = (await page()).body!.getReader();
    await first.read();
    await second.read();
    const size = await held();
    expect(size).toBeGreaterThan(2 * 150 * KB);

    const refused = await page();
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    const body = (await refused.json()) as { error: string; message: string };
    expect(body).toMatchObject({ error: 'overloaded' });
    expect(body.message).toContain('READ_BUDGET_BYTES');
    // An answer under 64 KB is sent at once, never refused, even one the budget has no room for.
    const small = Math.floor((62 * KB) / (size / 200)); // events of a page that size
    const smallAnswer = await page(small);
    expect(smallAnswer.status).toBe(200);
    const smallLength = (await smallAnswer.text()).length;
    expect(smallLength).toBeLessThan(64 * KB);
    expect(size + smallLength).toBeGreaterThan(380 * KB); // no room for it

    await first.cancel(); // the client went away
    expect(await held()).toBe(size / 2);
    const third = await page();
    expect(third.status).toBe(200);
    const got = (await third.json()) as { events: unknown[] };
    expect(got.events).toHaveLength(100); // streamed whole
    for (;;) if ((await second.read()).done) break; // read to its end
    expect(await held()).toBe(0);
    await unread.body?.cancel();
  });

  test('/health/business and /health/detailed, whose eventsByService names every service, are such answers too', async () => {
    // 3,000 services: an answer of ~110 KB.
    const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ service: `answers-service-with-a-long-name-${i}`, message: 'm' })).join('\n');
    expect(
      (await svc.app.request('/events/batch?wait=true', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines })).status,
    ).toBe(201);
    const reader = (await svc.app.request('/health/business')).body!.getReader();
    await reader.read();
    const size = await held();
    expect(size).toBeGreaterThan(100 * KB);
    const readers = [reader];
    for (let i = 0; i < 5 && (await held()) + size <= 380 * KB; i++) {
      const r = (await svc.app.request('/health/business')).body!.getReader();
      await r.read();
      readers.push(r);
    }
    const refused = await svc.app.request('/health/business');
    expect({ status: refused.status, error: ((await refused.json()) as { error: string }).error }).toEqual({ status: 503, error: 'overloaded' });
    expect((await svc.app.request('/health/detailed')).status).toBe(503); // it includes the same
    for (const r of readers) await r.cancel();
    expect(await held()).toBe(0);
    const whole = (await (await svc.app.request('/health/business')).json()) as { eventsByService: Record<string, number> };
    expect(Object.keys(whole.eventsByService).length).toBe(3001);
  });
});

describe('decompression bounded while it runs', () => {
  test.each(['gzip', 'deflate', 'zstd'] as const)('a %s bomb is refused after the cap: at most the cap (and one chunk) is ever held', async (encoding) => {
    const { BodyReader } = await import('../src/receive/body');
    const { MemoryBudget } = await import('../src/protect/budget');
    // 256 MiB of zeros, a few hundred KB compressed; the cap is 1 MiB.
    const zeros = new Uint8Array(256 * 1024 * 1024);
    const body =
      encoding === 'gzip' ? Bun.gzipSync(zeros) : encoding === 'deflate' ? (await import('node:zlib')).deflateSync(zeros) : Bun.zstdCompressSync(zeros);
    const header = encoding === 'deflate' ? 'deflate' : encoding;
    const budget = new MemoryBudget(1024 * 1024 * 1024, 'busy', 1);
    let peak = 0;
    const take = budget.take.bind(budget);
    budget.take = (n: number) => {
      take(n);
      peak = Math.max(peak, budget.held);
    };
    const reader = new BodyReader(budget);
    const req = new Request('http://x/', { method: 'POST', headers: { 'content-encoding': header }, body });
    const cap = 1024 * 1024;
    const err = await reader.bytes(req, cap, 'BATCH_MAX_BYTES').then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toBe(`Request body exceeds ${cap} bytes (BATCH_MAX_BYTES) once decompressed`);
    expect(peak).toBeLessThanOrEqual(cap + 1024 * 1024); // the cap plus at most one decompressed chunk
    expect(budget.held).toBe(0); // and all of it given back
  });
});
