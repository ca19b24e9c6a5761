// How long a read's statements live: as long as its request. When the client goes away or the
// request passes REQUEST_TIMEOUT_MS (its 503 already sent), the statements not yet started are not
// sent and the server engine cancels the one running: a month of message search nobody waits for
// would otherwise hold a connection and a core to its end, and clients retrying would pile them up.
import type { Context } from 'hono';
import { ApiError } from '../errors';
import type { Engine } from '../store/engine';

export function requestEngine(c: Context, engine: Engine, timeoutMs: number): Engine {
  const signal = AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(timeoutMs)]);
  return {
    ...engine,
    async query(text, params, opts) {
      try {
        return await engine.query(text, params, { signal, ...opts });
      } catch (e) {
        // Stopped on purpose: the request's own timeout (the 503 it would get anyway), not a fault.
        if (signal.aborted) throw new ApiError('request_timeout', `The request took longer than ${timeoutMs} ms (REQUEST_TIMEOUT_MS)`, { cause: e });
        throw e;
      }
    },
  };
}
