// Access control: scopes in every direction, 401 vs 403, the open probe subset, secrets kept out of
// errors and logs, and refusing to serve a network address without keys.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { ConfigError, loadConfig, parseApiKeys } from '../src/config';
import { logLines, newTarget, startService, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

const SECRETS = { ingest: 'ingest-secret-0123456789', query: 'query-secret-0123456789', admin: 'admin-secret-0123456789' };
const hashed = createHash('sha256').update(SECRETS.query).digest('hex');
const API_KEYS = `collector:ingest:${SECRETS.ingest},dashboards:query:sha256:${hashed},ops:admin:${SECRETS.admin}`;

describe('API key configuration', () => {
  test('entries give names, scopes and digests; a sha256: secret is taken as the digest', () => {
    const keys = parseApiKeys(API_KEYS, 'API_KEYS');
    expect(keys.map((k) => [k.name, k.scopes.join('+')])).toEqual([['collector', 'ingest'], ['dashboards', 'query'], ['ops', 'admin']]);
    expect(keys[1]!.digest.toString('hex')).toBe(hashed);
  });

  test('malformed entries fail naming the entry, never echoing the secret', () => {
    for (const bad of ['x:ingest:short', 'x:write:a-long-enough-secret-123', ':ingest:a-long-enough-secret-123', 'x:ingest:sha256:nothex']) {
      let msg = '';
      try {
        loadConfig({ API_KEYS: bad });
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        msg = (e as Error).message;
      }
      expect(msg).toContain('API_KEYS entry 1');
      expect(msg).not.toContain('a-long-enough-secret-123');
    }
  });

  test('a non-loopback HOST without keys refuses to start, unless explicitly allowed', () => {
    expect(() => loadConfig({ HOST: '0.0.0.0' })).toThrow(/Refusing to serve HOST=0\.0\.0\.0 without API keys/);
    expect(loadConfig({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'true' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0', API_KEYS }).apiKeys).toHaveLength(3);
    expect(loadConfig({ HOST: '127.0.0.1' }).apiKeys).toHaveLength(0);
  });

  test('the real process exits 2 with that message', async () => {
    const p = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? '', HOST: '0.0.0.0', PORT: '0' },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    expect(await p.exited).toBe(2);
    expect(await new Response(p.stderr).text()).toContain('API_KEYS');
  });
});

describe('scopes [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { API_KEYS });
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  const call = (method: string, path: string, key?: string) =>
    svc.app.request(path, {
      method,
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: method === 'POST' ? JSON.stringify(path.endsWith('batch') ? [{ service: 'auth', message: 'm' }] : { service: 'auth', message: 'm' }) : undefined,
    });

  // route -> the status for: no key, a wrong key, ingest, query, admin
  const matrix: [string, string, number[]][] = [
    ['POST', '/events', [401, 401, 202, 403, 202]],
    ['POST', '/events/batch', [401, 401, 202, 403, 202]],
    ['GET', '/events', [401, 401, 403, 200, 200]],
    ['GET', '/events/00000000-0000-4000-8000-000000000001', [401, 401, 403, 404, 404]],
    ['GET', '/health/buffer', [401, 401, 403, 403, 200]],
    ['GET', '/health/database', [401, 401, 403, 403, 200]],
    ['GET', '/health', [200, 200, 200, 200, 200]],
    ['GET', '/health/live', [200, 200, 200, 200, 200]],
    ['GET', '/health/ready', [200, 200, 200, 200, 200]],
  ];
  test.each(matrix)('%s %s enforces its scope', async (method, path, expected) => {
    const got = [];
    for (const key of [undefined, 'not-a-real-key-at-all', SECRETS.ingest, SECRETS.query, SECRETS.admin]) got.push((await call(method, path, key)).status);
    expect(got).toEqual(expected);
  });

  test('401 says to send a key and carries WWW-Authenticate; 403 names the key and the missing scope', async () => {
    const none = await call('GET', '/events');
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    expect(await none.json()).toMatchObject({ statusCode: 401, error: 'unauthorized' });
    const wrong = await call('GET', '/events', SECRETS.ingest);
    expect(await wrong.json()).toMatchObject({ statusCode: 403, error: 'forbidden', message: "The API key 'collector' lacks the 'query' scope" });
  });

  test('no secret ever appears in a log line', () => {
    const all = logLines.join('\n');
    for (const s of [...Object.values(SECRETS), 'not-a-real-key-at-all']) expect(all).not.toContain(s);
  });
});
