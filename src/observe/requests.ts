// Per-request context: the request id (the client's X-Request-Id when sane, else a new one, returned
// either way), headers that keep JSON inert in a browser, the rate-limit budget's headers, the
// request's duration in the metrics, and one log line per request.
import type { MiddlewareHandler } from 'hono';
import type { Config } from '../config';
import { ApiError, respondError } from '../errors';
import type { Logger } from '../log';
import { SECURITY_HEADERS } from '../protect/headers';
import { writeRateLimitHeaders } from '../protect/limits';
import type { Metrics } from './prometheus';

const SANE_ID = /^[\w.:@/+=-]{1,128}$/;
const MAX_URL = 8192; // query strings beyond this are abuse, not filters
// Generated ids: a random prefix per process and a counter, unique across instances and restarts,
// and cheaper than a UUID per request.
const BOOT = crypto.randomUUID().slice(0, 8);
let counter = 0;

const SECURITY_ENTRIES = Object.entries(SECURITY_HEADERS);

export function requestContext(config: Config, log: Logger, metrics: Metrics): MiddlewareHandler {
  const logAll = config.logRequests === 'all';
  const logErrors = config.logRequests !== 'none';
  const { windowMs } = config.rateLimit;
  return async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && SANE_ID.test(incoming) ? incoming : `${BOOT}-${(++counter).toString(36)}`;
    c.set('requestId', requestId);
    // Answered here rather than thrown, so the reply still gets the id and headers below.
    if (c.req.url.length > MAX_URL) c.res = respondError(c, new ApiError('uri_too_long', `The URL is longer than ${MAX_URL} characters`));
    else await next();
    const headers = c.res.headers;
    // The hot path (202 to POST /events) builds these into its response at once: skip them there.
    if (!headers.has('x-request-id')) {
      headers.set('x-request-id', requestId);
      for (const [k, v] of SECURITY_ENTRIES) if (!headers.has(k)) headers.set(k, v); // /docs sets its own CSP
      writeRateLimitHeaders(headers, c, windowMs); // a 429 included: the limiter's refusal is answered by then
    }
    const status = c.res.status;
    const seconds = (performance.now() - started) / 1000;
    const route = c.req.routePath; // built anew at each read (Hono maps the matched routes)
    metrics.observeRequest(route, c.req.method, status, seconds);
    if (logAll || (logErrors && status >= 400)) {
      // Every value here is safe inside JSON quotes as it is: the id matches SANE_ID or is generated,
      // the route is one of the app's patterns, the method is a token, the key name is [\w.-]. One
      // template instead of an object and JSON.stringify: this line is written for every request.
      const key = c.get('keyName') as string | undefined;
      log.fields(
        status >= 500 ? 'error' : 'info',
        'request',
        `"requestId":"${requestId}","method":"${c.req.method}","route":${JSON.stringify(route)},"status":${status},"ms":${Math.round(seconds * 100_000) / 100},"key":${key ? `"${key}"` : 'null'}`,
      );
    }
  };
}
