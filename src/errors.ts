// One closed set of error codes, one map to HTTP status, one handler (app.onError).
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import type { Logger } from './log';

export const errorStatus = {
  invalid_json: 400,
  validation_failed: 400,
  empty_body: 400,
  invalid_body: 400,
  unauthorized: 401,
  forbidden: 403,
  unsupported_media_type: 415,
  payload_too_large: 413,
  uri_too_long: 414,
  not_found: 404,
  queue_full: 429,
  rate_limited: 429,
  shutting_down: 503,
  overloaded: 503,
  not_ready: 503,
  database_unavailable: 503,
  request_timeout: 503,
  rejected_by_database: 422,
  internal: 500,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;

export interface FieldError {
  field: string;
  message: string;
}

/** Field errors from zod issues; `input` tells a missing field ("is required") from a wrong one. */
export function zodErrors(error: z.ZodError, input: unknown, prefix = ''): FieldError[] {
  return error.issues.map((i) => {
    const field = prefix + (i.path.length ? i.path.join('.') : '(body)');
    let value = input;
    for (const k of i.path) value = value && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[k] : undefined;
    const missing = i.code === 'invalid_type' && value === undefined;
    return { field, message: missing ? 'is required' : i.message };
  });
}

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly opts: { errors?: FieldError[]; retryAfter?: number; cause?: unknown; extra?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: opts.cause });
  }
  get status() {
    return errorStatus[this.code];
  }
}

/** The MVP's 429 body, kept byte-for-byte in its fields so existing clients keep working. */
const QUEUE_FULL_MESSAGE = 'Buffer is full. Please retry in a few seconds.';
export const queueFull = (retryAfter: number) => new ApiError('queue_full', QUEUE_FULL_MESSAGE, { retryAfter });

export function errorBody(e: ApiError) {
  const body: Record<string, unknown> = { statusCode: e.status, error: e.code, message: e.message, ...e.opts.extra };
  if (e.opts.errors) body.errors = e.opts.errors;
  if (e.code === 'queue_full') {
    body.status = 'rate_limited';
    body.retry_after = e.opts.retryAfter;
  } else if (e.opts.retryAfter !== undefined) body.retry_after = e.opts.retryAfter;
  return body;
}

export function respondError(c: Context, e: ApiError) {
  if (e.opts.retryAfter !== undefined) c.header('Retry-After', String(e.opts.retryAfter));
  return c.json(errorBody(e), e.status);
}

/**
 * How a receiver whose protocol defines its own error bodies answers them (OTLP: a google.rpc.Status;
 * Loki: plain text), for every error on its route, the guards' included. Same codes, same statuses.
 */
export interface WireErrors {
  prefix: string;
  render(c: Context, e: ApiError): Response;
}

export function errorHandler(log: Logger, wires: readonly WireErrors[] = []) {
  const answer = (c: Context, e: ApiError) => (wires.find((w) => c.req.path.startsWith(w.prefix))?.render ?? respondError)(c, e);
  return (err: Error, c: Context) => {
    if (err instanceof ApiError) return answer(c, err);
    if (err instanceof HTTPException) {
      // Hono's own exceptions (body limit). Map the status into our codes; never leak internals.
      const code: ErrorCode = err.status === 413 ? 'payload_too_large' : err.status === 404 ? 'not_found' : err.status === 503 ? 'request_timeout' : 'internal';
      if (code !== 'internal') return answer(c, new ApiError(code, err.message || code));
    }
    log.error('unhandled error', { requestId: c.get('requestId'), method: c.req.method, path: c.req.path, err });
    return answer(c, new ApiError('internal', 'Internal server error'));
  };
}
