// Access control: scopes in every direction, 401 vs 403, the open probe subset, secrets kept out of
// errors and logs, and refusing to serve a network address without keys.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { ConfigError, loadConfig, parseApiKeys } from '../src/config';
import { createLogger } from '../src/log';
import { newTarget, startService, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

const SECRETS = { ingest: 'ingest-secret-0123456789', query: 'query-secret-0123456789', admin: 'admin-secret-0123456789' };
const hashed = createHash('sha256').update(SECRETS.query).digest('hex');
const API_KEYS = `collector:ingest:${SECRETS.ingest},dashboards:query:sha256:${hashed},ops:admin:${SECRETS.admin}`;

describe('API key configuration', () => {
  test('entries give names, scopes and digests; a sha256: secret is taken as the digest', () => {
    const keys = parseApiKeys(API_KEYS, 'API_KEYS');
    expect(keys.map((k) => [k.name, k.scopes.join('+')])).toEqual([
      ['collector', 'ingest'],
      ['dashboards', 'query'],
      ['ops', 'admin'],
    ]);
    expect(keys[1]!.digest.toString('hex')).toBe(hashed);
  });

  test('a key with two scopes holds both; services= is parsed from its own field, the secret keeping its colons', () => {
    const [both, scoped, digest] = parseApiKeys(
      `pipeline:ingest+query:${SECRETS.ingest},team:ingest:se:cr:et-0123456789abc:services=ns:checkout|billing-*,hashed:query:sha256:${hashed}:services=a`,
      'API_KEYS',
    );
    expect(both!.scopes).toEqual(['ingest', 'query']);
    expect(both!.services).toBeNull();
    expect(scoped!.digest.equals(createHash('sha256').update('se:cr:et-0123456789abc').digest())).toBe(true);
    expect(scoped!.services!.patterns).toEqual(['ns:checkout', 'billing-*']);
    expect(['ns:checkout', 'billing-eu', 'billing', 'ns:checkoutx'].map((s) => scoped!.services!.test(s))).toEqual([true, true, false, false]);
    expect(digest!.digest.toString('hex')).toBe(hashed);
    expect(() => parseApiKeys(`x:query:${SECRETS.query}:services=a|b c`, 'API_KEYS')).toThrow(
      "services= takes service names or patterns with * (letters, digits, . _ : - *), separated by |; 'b c' is not one",
    );
    // admin keys see every service, whatever their entry says
    expect(parseApiKeys(`root:admin:${SECRETS.admin}:services=a`, 'API_KEYS')[0]!.services).toBeNull();
  });

  test('a secret of exactly 16 characters is enough; # lines and blank lines are not entries', () => {
    const keys = parseApiKeys(`# the collector\n\ncollector:ingest:sixteen-chars-ok\n  # indented comment\nops:admin:${SECRETS.admin}`, 'API_KEYS_FILE');
    expect(keys.map((k) => k.name)).toEqual(['collector', 'ops']);
  });

  test('malformed entries fail naming the entry, never echoing the secret', () => {
    for (const bad of [
      'x:ingest:short',
      'x:ingest:fifteen-chars-1',
      'x:write:a-long-enough-secret-123',
      ':ingest:a-long-enough-secret-123',
      'bad name:ingest:a-long-enough-secret-123',
      'x:ingest:sha256:nothex',
    ]) {
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
  // Request log lines at info level: the harness logger keeps only warnings, which would make the
  // "no secret in a log line" check vacuous.
  const lines: string[] = [];
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, { API_KEYS, LOG_REQUESTS: 'all' }, { log: createLogger('info', (l) => lines.push(l)) });
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

  // Each documented route and the scope it must demand. Written here, not read from the code: a
  // route that loses its scope fails this table, and a new route fails the coverage test below
  // until it is added.
  const REQUIRED: Record<string, 'ingest' | 'query' | 'admin' | 'open'> = {
    'POST /events': 'ingest',
    'POST /events/batch': 'ingest',
    'POST /v1/logs': 'ingest',
    'POST /loki/api/v1/push': 'ingest',
    'GET /events': 'query',
    'GET /events/{id}': 'query',
    'GET /metrics/events': 'query',
    'GET /health/business': 'query',
    'GET /loki/api/v1/query_range': 'query',
    'POST /loki/api/v1/query_range': 'query',
    'GET /loki/api/v1/query': 'query',
    'POST /loki/api/v1/query': 'query',
    'GET /loki/api/v1/labels': 'query',
    'GET /loki/api/v1/label/{name}/values': 'query',
    'GET /loki/api/v1/series': 'query',
    'POST /loki/api/v1/series': 'query',
    'GET /loki/api/v1/index/stats': 'query',
    'GET /loki/api/v1/index/volume': 'query',
    'GET /loki/api/v1/index/volume_range': 'query',
    'GET /loki/api/v1/detected_labels': 'query',
    'GET /loki/api/v1/detected_fields': 'query',
    'GET /loki/api/v1/detected_field/{name}/values': 'query',
    'GET /loki/api/v1/patterns': 'query',
    'GET /loki/api/v1/status/buildinfo': 'query',
    'GET /loki/api/v1/format_query': 'query',
    'GET /health/buffer': 'admin',
    'GET /health/database': 'admin',
    'GET /health/detailed': 'admin',
    'GET /metrics': 'admin',
    'GET /health': 'open',
    'GET /health/live': 'open',
    'GET /health/ready': 'open',
    'GET /openapi.json': 'open',
    'GET /docs': 'open',
    'GET /docs/{file}': 'open',
    'GET /': 'open',
    'GET /console/{file}': 'open',
  };
  const KEYS = [undefined, 'not-a-real-key-at-all', SECRETS.ingest, SECRETS.query, SECRETS.admin] as const;
  const expected = (scope: string) => {
    if (scope === 'open') return ['ok', 'ok', 'ok', 'ok', 'ok'];
    return [401, 401, scope === 'ingest' ? 'ok' : 403, scope === 'query' ? 'ok' : 403, 'ok'];
  };

  test('every route in the OpenAPI document has an entry in this table, and every entry is documented', async () => {
    const doc = (await (await svc.app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
    expect(documented.sort()).toEqual(Object.keys(REQUIRED).sort());
  });

  test.each(Object.entries(REQUIRED))('%s demands %s', async (route, scope) => {
    const [method, path] = route.split(' ') as [string, string];
    const got = [];
    for (const key of KEYS) {
      const status = (await call(method, path.replace('{id}', '00000000-0000-4000-8000-000000000001'), key)).status;
      // 'ok': the route answered for itself (200, 202, or 404 for an unknown event), not for access
      got.push(status === 401 || status === 403 ? status : 'ok');
    }
    expect(got).toEqual(expected(scope));
  });

  test('401 says to send a key and carries WWW-Authenticate; 403 names the key and the missing scope', async () => {
    const none = await call('GET', '/events');
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    expect(await none.json()).toMatchObject({ statusCode: 401, error: 'unauthorized' });
    const wrong = await call('GET', '/events', SECRETS.ingest);
    expect(await wrong.json()).toMatchObject({ statusCode: 403, error: 'forbidden', message: "The API key 'collector' lacks the 'query' scope" });
    const notAdmin = await call('GET', '/metrics', SECRETS.query);
    expect(await notAdmin.json()).toMatchObject({ statusCode: 403, error: 'forbidden', message: "The API key 'dashboards' lacks the 'admin' scope" });
  });

  // Grafana's data sources and logcli send a password as basic auth: the key is the password.
  test('a key sent as the basic-auth password (any user name) is the key; a wrong one is 401', async () => {
    const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
    const labels = (h: Record<string, string>) => svc.app.request('/loki/api/v1/labels', { headers: h });
    expect((await labels(basic('grafana', SECRETS.query))).status).toBe(200);
    expect((await labels(basic('', SECRETS.query))).status).toBe(200);
    expect((await labels(basic('grafana', SECRETS.ingest))).status).toBe(403);
    expect((await labels(basic('grafana', 'not-a-real-key-at-all'))).status).toBe(401);
    expect((await labels(basic(SECRETS.query, ''))).status).toBe(401); // the key as the user name is not the password
  });

  test('no secret ever appears in a log line, though every request is logged with its key name', async () => {
    for (const key of KEYS) await call('GET', '/events', key);
    await Bun.sleep(20); // log lines are flushed once per event-loop turn
    const requests = lines.filter((l) => l.includes('"msg":"request"'));
    expect(requests.length).toBeGreaterThanOrEqual(KEYS.length);
    expect(requests.some((l) => l.includes('"key":"dashboards"'))).toBe(true);
    const all = lines.join('\n');
    for (const s of [...Object.values(SECRETS), 'not-a-real-key-at-all', hashed]) expect(all).not.toContain(s);
  });
});
