// The web console's routes: the page at / (CONSOLE=false turns it off), its script and styles, and
// the API reference at /docs (Swagger UI from npm, served by the service). A page is a client of the
// public API like any other: nothing here reads events; the scripts fetch /events, /metrics/events
// and /health/* with the key the person gives them. The client code (client/) is bundled by Bun at
// the first request and kept in memory: no build step, and nothing loaded from outside the service.
import { Hono, type Context } from 'hono';
import type { Config } from '../config';
import { ApiError } from '../errors';
import { CONSOLE_HTML, DOCS_HTML } from './shell';

// The pages' policy: the service's own scripts, styles and API, nothing else (no inline code, no
// CDN, no outside request of any kind; images only as data: URIs, which Swagger UI's styles use).
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

type Assets = Map<string, { body: string; type: string }>;

/** Bundles the client code (once): main.js/main.css for the console, docs.js/docs.css for /docs. */
async function bundle(): Promise<Assets> {
  const dir = new URL('./client/', import.meta.url).pathname;
  const out = await Bun.build({ entrypoints: [`${dir}main.ts`, `${dir}docs.ts`], target: 'browser', minify: true, naming: '[name].[ext]' });
  if (!out.success) throw new Error(`console: bundling failed: ${out.logs.map((l) => l.message).join('; ')}`);
  const assets: Assets = new Map();
  for (const o of out.outputs) {
    const name = o.path.split('/').pop()!;
    const ext = name.split('.').pop()!;
    if (TYPES[ext]) assets.set(name, { body: await o.text(), type: TYPES[ext] });
  }
  return assets;
}

/** Swagger UI's own files, from the npm package swagger-ui-dist. */
const SWAGGER = { 'swagger-ui-bundle.js': TYPES.js!, 'swagger-ui.css': TYPES.css! } as const;

export function consoleRoutes(config: Config) {
  const app = new Hono();
  let assets: Promise<Assets> | undefined;
  const built = () =>
    (assets ??= bundle().catch((e) => {
      assets = undefined; // try again at the next request
      throw e;
    }));
  const page = (c: Context, html: string) => {
    c.header('Content-Security-Policy', PAGE_CSP);
    return c.html(html);
  };
  const asset = async (c: Context, name: string) => {
    const a = (await built()).get(name);
    if (!a) throw new ApiError('not_found', `No route for GET ${c.req.path}`);
    return c.body(a.body, 200, { 'content-type': a.type, 'cache-control': 'no-cache' });
  };

  if (config.console) {
    app.get('/', (c) => page(c, CONSOLE_HTML));
    app.get('/console/:file', (c) => asset(c, c.req.param('file')));
  }
  app.get('/docs', (c) => page(c, DOCS_HTML));
  app.get('/docs/:file', async (c) => {
    const file = c.req.param('file');
    if (file === 'init.js' || file === 'docs.css') return asset(c, file === 'init.js' ? 'docs.js' : 'docs.css');
    const type = SWAGGER[file as keyof typeof SWAGGER];
    if (!type) throw new ApiError('not_found', `No route for GET ${c.req.path}`);
    return c.body(await Bun.file(Bun.resolveSync(`swagger-ui-dist/${file}`, import.meta.dir)).arrayBuffer(), 200, {
      'content-type': type,
      'cache-control': 'public, max-age=86400',
    });
  });
  return app;
}
