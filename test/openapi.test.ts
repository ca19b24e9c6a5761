// The API document: generated from the handlers' own zod schemas, and covering every route.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { z } from 'zod';
import { eventSchema } from '../src/receive/validate';
import { newTarget, startService, type Target } from './harness';

// Creating an embedded database takes about 4 s (initdb), near bun's 5 s default.
setDefaultTimeout(60_000);

describe('OpenAPI [embedded]', () => {
  let target: Target;
  let svc: Awaited<ReturnType<typeof startService>>;
  let doc: { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target);
    const res = await svc.app.request('/openapi.json');
    expect(res.status).toBe(200);
    doc = (await res.json()) as typeof doc;
  });
  afterAll(async () => {
    await svc?.stop();
    await target?.destroy();
  });

  test('is OpenAPI 3.1 and its Event schema is the one POST /events validates with', () => {
    expect(doc.openapi).toBe('3.1.0');
    const { $schema: _s, ...expected } = z.toJSONSchema(eventSchema(svc.config.limits), { io: 'input' }) as Record<string, unknown>;
    expect(doc.components.schemas.Event).toEqual(expected);
  });

  test('every route the app serves is documented, and every documented route is served', async () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const asRegex = (route: string) => new RegExp(`^${route.replace(/:\w+/g, '[^/]+').replace(/\{\w+\}/g, '[^/]+')}$`);
    const served = svc.app.routes.filter((r) => (r.method === 'GET' || r.method === 'POST') && !r.path.includes('*'));
    for (const r of served) {
      const match = documented.some((d) => {
        const [m, p] = d.split(' ');
        return m === r.method && asRegex(r.path).test(p!.replace(/\{\w+\}/g, 'x'));
      });
      expect(`${r.method} ${r.path}: ${match}`).toBe(`${r.method} ${r.path}: true`);
    }
    for (const d of documented) {
      const [method, path] = d.split(' ');
      const concrete = path!.replace('{id}', '00000000-0000-4000-8000-000000000000').replace('{file}', path!.startsWith('/docs') ? 'init.js' : 'main.js');
      const res = await svc.app.request(concrete, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
      expect(`${d} -> ${res.status === 404 && !path!.includes('{id}') ? 'not served' : 'served'}`).toBe(`${d} -> served`);
    }
  });

  test('/docs is Swagger UI served by the service itself: scripts and styles from this origin only, none inline', async () => {
    const res = await svc.app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    const html = await res.text();
    const srcs = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.sort()).toEqual(['/docs/docs.css', '/docs/init.js', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', 'data:,']); // data:, an empty icon: no favicon request
    expect(html).not.toMatch(/<script(?![^>]*src=)[^>]*>/); // no inline script
    for (const s of srcs.filter((x) => x.startsWith('/'))) expect((await svc.app.request(s)).status).toBe(200);
    expect(await (await svc.app.request('/docs/init.js')).text()).toContain('/openapi.json');
  });
});
