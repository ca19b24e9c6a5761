// The per-request values the middleware sets on Hono's context and later stages read, typed once for
// every `c.get`/`c.set` (Hono's ContextVariableMap): the request id (observe/requests.ts), the API
// key's name once authenticated (protect/auth.ts), and the rate-limit budget hono-rate-limiter
// counted the request against (protect/limits.ts writes it into the answer's headers), and the
// services the key may read and write (absent or null: every service).
import type { ServiceScope } from './config';

declare module 'hono' {
  interface ContextVariableMap {
    requestId: string;
    keyName: string;
    services: ServiceScope | null;
    rateLimit: { limit: number; remaining: number; resetTime?: Date };
  }
}
