// The Hono app as a value (no port, no top-level await): the middleware every request passes, each
// route's guard, and the routes of each stage mounted in one place. service.ts builds it; main.ts
// serves it; tests call app.request() on it.
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { timeout } from 'hono/timeout';
import { ApiError, errorHandler, respondError } from './errors';
import { healthRoutes, type HealthDeps } from './observe/health';
import type { Metrics } from './observe/prometheus';
import { requestContext } from './observe/requests';
import { consoleRoutes } from './console/routes';
import { openApiDocument } from './openapi';
import { guardRoutes, LOKI_GET_PATHS, LOKI_POST_PATHS } from './protect/access';
import type { Limits } from './protect/limits';
import { eventRoutes } from './read/events';
import { serviceHistory } from './read/history';
import { metricsRoutes } from './read/metrics';
import { createAcceptor } from './receive/accept';
import type { BodyReader } from './receive/body';
import type { MemoryBudget } from './protect/budget';
import { eventsReceiver } from './receive/events';
import { lokiErrors, lokiReceiver } from './receive/loki';
import { lokiQueryErrors, lokiQueryRoutes } from './read/loki/routes';
import { otlpErrors, otlpReceiver } from './receive/otlp';

/** What the routes need: the pipeline's parts (as the health routes report them), metrics and limits. */
export interface AppDeps extends HealthDeps {
  metrics: Metrics;
  limits: Limits;
  bodies: BodyReader;
  answers: MemoryBudget;
}

export function createApp(deps: AppDeps) {
  const { config, state, log, metrics, limits } = deps;
  const app = new Hono();

  // One handler; the agents' protocols answer errors in their own shape (OTLP Status, Loki text).
  app.onError(errorHandler(log, [otlpErrors, lokiErrors, lokiQueryErrors]));
  app.use(requestContext(config, log, metrics));
  if (config.corsOrigins.length) {
    app.use(
      cors({
        origin: [...config.corsOrigins],
        allowHeaders: ['Authorization', 'Content-Type', 'Content-Encoding', 'Prefer', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'X-Ingest-Ack', 'Retry-After'],
        maxAge: 600,
      }),
    );
  }
  // Routes that can take long: queries and batches. POST /events bounds its own wait for the commit
  // (receive/accept.ts): a timer, a race and a middleware hop on every single event cost its hot path
  // 6-9%. A Hono pattern '/events/*' also matches '/events', so the routes are named one by one.
  // The only HTTPException(503) in the app: errorHandler answers it as request_timeout.
  const requestTimeout = timeout(
    config.requestTimeoutMs,
    () => new HTTPException(503, { message: `The request took longer than ${config.requestTimeoutMs} ms (REQUEST_TIMEOUT_MS)` }),
  );
  app.on('POST', ['/events/batch', '/v1/logs', '/loki/api/v1/push'], requestTimeout);
  app.on('GET', ['/events', '/events/*', '/metrics/events', '/health/business', '/health/database', '/health/detailed', ...LOKI_GET_PATHS], requestTimeout);
  app.on('POST', [...LOKI_POST_PATHS], requestTimeout);
  app.notFound((c) => respondError(c, new ApiError('not_found', `No route for ${c.req.method} ${c.req.path}`)));
  guardRoutes(app, config, limits);

  // receive
  // Every receiver reads its body through the one budget (bodies) and queues through the one acceptor.
  const receiving = { config, state, accept: createAcceptor(deps), bodies: deps.bodies };
  app.route('/', eventsReceiver(receiving));
  app.route('/', otlpReceiver(receiving));
  app.route('/', lokiReceiver(receiving));
  // read
  // /health/business and /health/detailed share one read of the days before yesterday.
  const history = serviceHistory(deps.reader, config.aggregateRefreshMs, () => state.jobs?.finishedRuns() ?? 0);
  app.route('/', eventRoutes(deps));
  app.route('/', metricsRoutes({ ...deps, history }));
  app.route('/', lokiQueryRoutes(deps));
  // observe
  app.route('/', healthRoutes({ ...deps, history }));
  app.get('/metrics', async (c) => c.body(await metrics.render(deps.peers), 200, { 'Content-Type': metrics.registry.contentType }));
  // the reference, and the console (pages that are clients of the routes above)
  const openapi = JSON.stringify(openApiDocument(config));
  app.get('/openapi.json', (c) => c.body(openapi, 200, { 'Content-Type': 'application/json' }));
  app.route('/', consoleRoutes(config));
  return app;
}
