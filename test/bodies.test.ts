// Request bodies through the real server process (`bun src/main.ts`), where Bun's own limits sit in
// front of the app: every size the README promises arrives, a larger one gets the app's JSON 413
// naming the limit (not Bun's bare 413 and a closed connection).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService } from './harness';

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
