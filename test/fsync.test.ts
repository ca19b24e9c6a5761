// A 201 on the embedded engine survives a power loss (src/store/fsync.ts), proven from the system
// calls the service makes (strace, from Debian; .ci/run installs it): every 201 is sent after the
// WAL write holding its event was synced (fdatasync of that WAL file, in the thread that wrote it),
// and the shutdown checkpoint syncs every data file it wrote. With EMBEDDED_FSYNC=off there is no
// sync at all: the trace is what tells the two apart, not a flag.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnService } from './harness';

setDefaultTimeout(120_000);

const STRACE = Bun.which('strace');
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Call {
  tid: string;
  start: number;
  end: number;
  name: string;
  path: string;
  text: string;
}

/** strace -ff -ttt -T -y lines: `1796700086.857286 sendto(46<socket:[57733]>, "HTTP/1.1 201 ...", ...) = 585 <0.000217>` */
function parseTrace(dir: string): Call[] {
  const calls: Call[] = [];
  for (const f of readdirSync(dir)) {
    const tid = f.split('.').pop()!;
    for (const line of readFileSync(join(dir, f), 'latin1').split('\n')) {
      const m = /^(\d+\.\d+) (\w+)\((\d+)<([^>]*)>(.*) <(\d+\.\d+)>$/.exec(line);
      if (!m) continue;
      const start = Number(m[1]);
      calls.push({ tid, start, end: start + Number(m[6]), name: m[2]!, path: m[4]!, text: m[5]! });
    }
  }
  return calls.sort((a, b) => a.start - b.start);
}

/** Attaches strace to every thread of `pid` (and the threads it starts later); resolves once attached. */
async function traceThreads(pid: number, out: string) {
  const args = ['-f', '-ff', '-o', join(out, 't'), '-ttt', '-T', '-y', '-s', '65536', '-e', 'trace=pwrite64,sendto,fdatasync,fsync', '-p', String(pid)];
  const proc = Bun.spawn([STRACE!, ...args], { stdout: 'ignore', stderr: 'pipe' });
  const reader = proc.stderr.getReader();
  let seen = '';
  while (!/Process \d+ attached/.test(seen)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`strace ended before attaching: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  void reader.cancel().catch(() => {});
  return proc;
}

/** Starts the embedded service, traces it while `clients` send `perClient` events each with ?wait=true, then stops it. */
async function tracedRun(env: Record<string, string>, clients = 4, perClient = 5) {
  const dataDir = mkdtempSync(join(tmpdir(), 'aurore-fsync-'));
  const traceDir = mkdtempSync(join(tmpdir(), 'aurore-strace-'));
  cleanups.push(
    () => rmSync(dataDir, { recursive: true, force: true }),
    () => rmSync(traceDir, { recursive: true, force: true }),
  );
  const svc = await spawnService({ DATA_DIR: dataDir, ...env }, { readyMs: 30_000 });
  cleanups.push(() => svc.proc.kill(9));
  const strace = await traceThreads(svc.proc.pid, traceDir);
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < perClient; i++) {
        const id = crypto.randomUUID();
        ids.push(id);
        const res = await fetch(`${svc.url}/events?wait=true`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, service: 'fsync-check', message: `durable ${id}` }),
        });
        expect(res.status).toBe(201);
      }
    }),
  );
  svc.proc.kill('SIGTERM');
  expect(await svc.proc.exited).toBe(0);
  await strace.exited;
  return { ids, calls: parseTrace(traceDir), dataDir };
}

describe.skipIf(!STRACE && !process.env.CI)('a 201 survives a power loss [embedded]', () => {
  test('every 201 is sent after an fdatasync of the WAL file holding its event, no data page is written before the WAL, and the shutdown checkpoint syncs every data file it wrote', async () => {
    const { ids, calls, dataDir } = await tracedRun({});
    for (const id of ids) {
      const sent = calls.find((c) => c.name === 'sendto' && c.text.includes('HTTP/1.1 201') && c.text.includes(`\\"eventId\\":\\"${id}\\"`));
      const written = calls.find((c) => c.name === 'pwrite64' && c.path.includes('/pg_wal/') && c.text.includes(`durable ${id}`));
      expect({ id, sent: !!sent, written: !!written }).toEqual({ id, sent: true, written: true });
      const synced = calls.find(
        (c) =>
          (c.name === 'fdatasync' || c.name === 'fsync') &&
          c.path === written!.path &&
          c.tid === written!.tid &&
          c.start >= written!.end &&
          c.end <= sent!.start,
      );
      expect({ id, wal: written!.path, syncedBefore201: !!synced }).toEqual({ id, wal: written!.path, syncedBefore201: true });
    }
    // WAL before data, as PostgreSQL flushes it: no data page is written while a WAL write is unsynced.
    const dataFile = (path: string) => /\/(base|global)\/[\d/_a-z]+$/.test(path);
    const early: string[] = [];
    const pending = new Map<string, Set<string>>(); // per thread: WAL files written since their sync
    for (const c of calls) {
      const mine = pending.get(c.tid) ?? new Set<string>();
      pending.set(c.tid, mine);
      if (c.name === 'pwrite64' && c.path.includes('/pg_wal/')) mine.add(c.path);
      else if ((c.name === 'fdatasync' || c.name === 'fsync') && c.path.includes('/pg_wal/')) mine.delete(c.path);
      else if (c.name === 'pwrite64' && dataFile(c.path) && mine.size) early.push(c.path.replace(dataDir, 'DATA_DIR'));
    }
    expect(early).toEqual([]);
    // The checkpoint at shutdown: each relation file written (and still there) is synced after its last write.
    const dataFiles = [...new Set(calls.filter((c) => c.name === 'pwrite64' && dataFile(c.path) && existsSync(c.path)).map((c) => c.path))];
    expect(dataFiles.length).toBeGreaterThan(0);
    const unsynced = dataFiles.filter((path) => {
      const last = calls.filter((c) => c.name === 'pwrite64' && c.path === path).at(-1)!;
      return !calls.some((c) => c.name === 'fsync' && c.path === path && c.start >= last.end);
    });
    expect(unsynced.map((p) => p.replace(dataDir, 'DATA_DIR'))).toEqual([]);
  });

  test('with EMBEDDED_FSYNC=off the same run syncs nothing (what the setting gives up)', async () => {
    const { ids, calls } = await tracedRun({ EMBEDDED_FSYNC: 'off' }, 2, 3);
    expect(calls.filter((c) => c.name === 'sendto' && c.text.includes('HTTP/1.1 201'))).toHaveLength(ids.length);
    expect(calls.filter((c) => c.name === 'pwrite64' && c.path.includes('/pg_wal/')).length).toBeGreaterThan(0);
    expect(calls.filter((c) => c.name === 'fdatasync' || c.name === 'fsync').map((c) => c.path)).toEqual([]);
  });
});

test.if(!STRACE && !!process.env.CI)('strace is installed where CI runs (.ci/run installs it)', () => {
  expect(STRACE).not.toBeNull();
});
