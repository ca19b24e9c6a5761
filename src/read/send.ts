// Sending a query's answer. Small answers go out at once; a large one (a GET /events page of big
// events: up to ~18 MB; a GET /metrics/events series: up to ~10 MB) is sent as a stream Bun pulls as the socket drains, and its bytes count in
// READ_BUDGET_BYTES until it is sent or the client goes away: 100 clients that asked for 15 MB pages
// and did not read them held 2.9 GB of the process (0.8 GB with the budget). Past it, 503 overloaded.
import type { Context } from 'hono';
import type { MemoryBudget } from '../protect/budget';

const LARGE = 64 * 1024; // under this, the kernel's socket buffers take the whole answer
const CHUNK = 64 * 1024;
const encoder = new TextEncoder();

export function sendJson(c: Context, value: unknown, budget: MemoryBudget): Response {
  const text = JSON.stringify(value);
  if (text.length < LARGE) return c.body(text, 200, { 'content-type': 'application/json' });
  const bytes = encoder.encode(text);
  // Refused here, once the query is answered: the page is dropped at once, and small answers are
  // never refused. Held from the first pull: an answer nobody sends (a timeout answered first) holds nothing.
  budget.assertFits(bytes.length);
  let at = 0;
  let held = 0;
  let started = false;
  const release = () => {
    budget.give(held);
    held = 0;
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(ctl) {
        if (!started) {
          started = true;
          budget.hold((held = bytes.length));
        }
        if (at >= bytes.length) {
          release();
          ctl.close();
          return;
        }
        ctl.enqueue(bytes.subarray(at, (at += CHUNK)));
      },
      cancel: release,
    },
    { highWaterMark: 0 },
  );
  return c.body(stream, 200, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
}
