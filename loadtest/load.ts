// A closed-loop HTTP/1.1 load generator for the benchmark: N keep-alive connections over raw sockets
// (Bun.connect), each sending the next request as soon as the previous answer is complete, for a
// fixed time. Raw sockets because fetch() tops out near 25k req/s on these machines, below the
// servers it measures. Unlike wrk it waits for every request in flight at the end, so the count of
// acknowledged events is exact and can be checked against the database.
// Usage: bun loadtest/load.ts ['<json LoadOptions>'] (or the JSON on stdin) -> prints one JSON result line.
export interface LoadOptions {
  url: string; // http://host:port/path?query
  body: string;
  /** Instead of `body`: a file of binary bodies, each a 4-byte big-endian length then the bytes, sent in turn. */
  bodiesFile?: string;
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
  /** 'single': each 2xx acknowledges one event; 'batch': the reply's `accepted` counts; a number: each 2xx acknowledges that many. */
  count: 'single' | 'batch' | number;
}

export interface LoadResult {
  requests: number;
  ok: number;
  events: number;
  statuses: Record<string, number>;
  errors: number;
  seconds: number;
  /** CPU seconds the load generator used meanwhile (it shares the machine with what it measures). */
  cpu_s: number;
  rps: number;
  eps: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Distinct bodies sent (with bodiesFile): more than the file holds means some were sent twice. */
  bodies_used: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const u = new URL(o.url);
  const bodies: Buffer[] = [];
  if (o.bodiesFile) {
    const all = Buffer.from(await Bun.file(o.bodiesFile).arrayBuffer());
    for (let at = 0; at < all.length; ) {
      const n = all.readUInt32BE(at);
      bodies.push(all.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
  } else bodies.push(Buffer.from(o.body));
  const requests = bodies.map((body) => {
    const head = [
      `POST ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      `Content-Length: ${body.length}`,
      'Connection: keep-alive',
      ...Object.entries(o.headers).map(([k, v]) => `${k}: ${v}`),
    ].join('\r\n');
    return Buffer.concat([Buffer.from(`${head}\r\n\r\n`), body]);
  });
  // Bodies are sent in turn, each until it is acknowledged: a refused one (429) is sent again, as a
  // client's retry would be. Distinct bodies let the benchmark count stored events exactly.
  let next = 0;

  const latencies = new Float64Array(8_000_000);
  let n = 0;
  const statuses: Record<string, number> = {};
  let ok = 0;
  let events = 0;
  let errors = 0;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = started + o.durationMs;

  const connection = () =>
    new Promise<void>((done) => {
      let buf = Buffer.alloc(0);
      let sentAt = 0;
      let mine = next++;
      const send = (s: { write(b: Buffer): number; end(): void }) => {
        if (performance.now() >= deadline) {
          s.end();
          return done();
        }
        sentAt = performance.now();
        s.write(requests[mine % requests.length]!);
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
                mine = next++;
                events += typeof o.count === 'number' ? o.count : o.count === 'single' ? 1 : (JSON.parse(text) as { accepted: number }).accepted;
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
  const cpu = process.cpuUsage(cpu0);
  return {
    requests: n,
    ok,
    events,
    statuses,
    errors,
    seconds: round(seconds),
    cpu_s: round((cpu.user + cpu.system) / 1e6),
    rps: Math.round(ok / seconds),
    eps: Math.round(events / seconds),
    p50_ms: round(pct(0.5)),
    p99_ms: round(pct(0.99)),
    max_ms: round(n ? lat[n - 1]! : 0),
    bodies_used: next,
  };
}

if (import.meta.main) {
  const result = await runLoad(JSON.parse(process.argv[2] ?? (await Bun.stdin.text())) as LoadOptions);
  console.log(JSON.stringify(result));
}
