// A closed-loop HTTP/1.1 load generator for the benchmark: N keep-alive connections over raw sockets
// (Bun.connect), each sending the next request as soon as the previous answer is complete, for a
// fixed time. Raw sockets because fetch() tops out near 25k req/s on these machines, below the
// servers it measures. Unlike wrk it waits for every request in flight at the end, so the count of
// acknowledged events is exact and can be checked against the database.
// Usage: bun loadtest/load.ts ['<json LoadOptions>'] (or the JSON on stdin) -> prints one JSON result line.
export interface LoadOptions {
  url: string; // http://host:port/path?query
  body: string;
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
  /** 'single': each 2xx acknowledges one event; 'batch': the reply's `accepted` counts. */
  count: 'single' | 'batch';
}

export interface LoadResult {
  requests: number;
  ok: number;
  events: number;
  statuses: Record<string, number>;
  errors: number;
  seconds: number;
  rps: number;
  eps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const u = new URL(o.url);
  const body = Buffer.from(o.body);
  const head = [`POST ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, `Content-Length: ${body.length}`, 'Connection: keep-alive', ...Object.entries(o.headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  const request = Buffer.concat([Buffer.from(head + '\r\n\r\n'), body]);

  const latencies = new Float64Array(8_000_000);
  let n = 0;
  const statuses: Record<string, number> = {};
  let ok = 0;
  let events = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + o.durationMs;

  const connection = () =>
    new Promise<void>((done) => {
      let buf = Buffer.alloc(0);
      let sentAt = 0;
      const send = (s: { write(b: Buffer): number; end(): void }) => {
        if (performance.now() >= deadline) {
          s.end();
          return done();
        }
        sentAt = performance.now();
        s.write(request);
      };
      void Bun.connect({
        hostname: u.hostname,
        port: Number(u.port || 80),
        socket: {
          open: (s) => send(s),
          data(s, chunk) {
            buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk);
            for (;;) {
              const end = buf.indexOf(CRLF2);
              if (end < 0) return;
              const header = buf.toString('latin1', 0, end);
              const m = /\r\ncontent-length:\s*(\d+)/i.exec(header);
              const len = m ? Number(m[1]) : 0;
              if (buf.length < end + 4 + len) return;
              const status = Number(header.slice(9, 12));
              const text = buf.toString('utf8', end + 4, end + 4 + len);
              buf = buf.subarray(end + 4 + len);
              if (n < latencies.length) latencies[n++] = performance.now() - sentAt;
              statuses[status] = (statuses[status] ?? 0) + 1;
              if (status >= 200 && status < 300) {
                ok++;
                events += o.count === 'single' ? 1 : (JSON.parse(text) as { accepted: number }).accepted;
                send(s);
              } else if (status === 429 || status === 503) {
                // Honour a little of Retry-After so overload does not turn into a busy loop.
                setTimeout(() => send(s), 5);
              } else send(s);
            }
          },
          close: () => done(),
          error: () => {
            errors++;
            done();
          },
          connectError: () => {
            errors++;
            done();
          },
        },
      }).catch(() => {
        errors++;
        done();
      });
    });

  await Promise.all(Array.from({ length: o.connections }, connection));
  const seconds = (performance.now() - started) / 1000;
  const lat = latencies.subarray(0, n).sort();
  const pct = (p: number) => (n ? lat[Math.min(n - 1, Math.floor(n * p))]! : 0);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    requests: n,
    ok,
    events,
    statuses,
    errors,
    seconds: round(seconds),
    rps: Math.round(ok / seconds),
    eps: Math.round(events / seconds),
    p50_ms: round(pct(0.5)),
    p99_ms: round(pct(0.99)),
    max_ms: round(n ? lat[n - 1]! : 0),
  };
}

if (import.meta.main) {
  const result = await runLoad(JSON.parse(process.argv[2] ?? (await Bun.stdin.text())) as LoadOptions);
  console.log(JSON.stringify(result));
}
