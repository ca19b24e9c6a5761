// `bun run bench:keys [--quick]`: what a key limited to some services (API_KEYS `services=`) costs the
// single-event hot path, against a key without that field, in ONE run: one service process, both keys,
// the same 32-connection load in alternation (unscoped, scoped, ...) so drift in the machine falls on
// both. Prints events/s and p99 of each round and the ratio of the medians. A program, not a test.
import { join } from 'node:path';
import type { LoadOptions, LoadResult } from './load';
import { benchTarget, startServiceProcess } from './target';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 2 : 3;
const SECONDS = quick ? 5 : 10;
const ROOT = new URL('..', import.meta.url).pathname;
const progress = (msg: string) => process.stderr.write(`[bench:keys] ${msg}\n`);

const OPEN = 'bench-open-key-0123456789abcdef';
const SCOPED = 'bench-scoped-key-0123456789abcd';
const API_KEYS = `open:ingest+query:${OPEN},team:ingest+query:${SCOPED}:services=checkout-service|billing-*|search`;
const BODY = JSON.stringify({
  service: 'checkout-service',
  message: 'Order placed successfully for customer after payment authorization',
  metadata: { user_id: '12345', order_id: 'ord_98765', amount: 129.99 },
});

function load(o: LoadOptions): Promise<LoadResult> {
  const p = Bun.spawn([process.execPath, join(ROOT, 'loadtest/load.ts')], {
    stdin: new TextEncoder().encode(JSON.stringify(o)),
    stdout: 'pipe',
    stderr: 'inherit',
  });
  return new Response(p.stdout).text().then((t) => JSON.parse(t.trim().split('\n').pop()!) as LoadResult);
}

const target = await benchTarget('keys');
// Rate limits off: 600,000 a minute per key would refuse part of a 30k/s run, and the budget is per key.
const svc = await startServiceProcess(ROOT, { ...target.env, API_KEYS, LOG_REQUESTS: 'errors', RATE_LIMIT_INGEST: '0' });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<'open' | 'scoped', LoadResult[]> = { open: [], scoped: [] };
try {
  const run = (key: string, ms: number) =>
    load({
      url: `${svc.base}/events`,
      body: BODY,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      connections: 32,
      durationMs: ms,
      count: 'single',
    });
  progress('warming up');
  await run(OPEN, 3000);
  await run(SCOPED, 3000);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, key] of [
      ['open', OPEN],
      ['scoped', SCOPED],
    ] as const) {
      const res = await run(key, SECONDS * 1000);
      results[name].push(res);
      progress(`round ${r}, ${name}: ${Math.round(res.eps)} events/s, p99 ${res.p99_ms} ms, statuses ${JSON.stringify(res.statuses)}`);
    }
  }
} finally {
  svc.proc.kill('SIGTERM');
  await svc.proc.exited;
  await target.destroy();
}
const eps = (n: 'open' | 'scoped') => median(results[n].map((r) => r.eps));
const p99 = (n: 'open' | 'scoped') => median(results[n].map((r) => r.p99_ms));
console.log(`| POST /events, 202, 32 conns (median of ${ROUNDS}) | events/s | p99 ms |`);
console.log('| --- | --- | --- |');
console.log(`| a key for every service | ${Math.round(eps('open'))} | ${p99('open')} |`);
console.log(`| a key for checkout-service, billing-*, search | ${Math.round(eps('scoped'))} | ${p99('scoped')} |`);
console.log(`| scoped / unscoped | ${(eps('scoped') / eps('open')).toFixed(3)} | ${(p99('scoped') / p99('open')).toFixed(2)} |`);
