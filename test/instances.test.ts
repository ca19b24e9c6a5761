// More than one process on one server database, with real processes: HTTP_PROCESSES=2 sharing a port
// (the whole service in /metrics and /health/buffer, every 202 stored once, SIGTERM drains both), and
// two separate instances with one redis-server (shared rate limits, the maintenance jobs run by one
// instance at a time, taken over when it stops, every acknowledged event stored once).
// Server engine only; each instance's spill being its own is in datadir.test.ts.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config';
import { countRows, engines, newTarget, spawnService, startRedis, until, type Target } from './harness';

setDefaultTimeout(120_000);

const body = (i: number, service: string) => JSON.stringify({ service, message: `m${i}` });
async function post(url: string, i: number, service: string, wait = false) {
  const res = await fetch(`${url}/events${wait ? '?wait=true' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body(i, service),
  });
  await res.arrayBuffer();
  return res.status;
}
const json = async <T>(url: string) => (await (await fetch(url)).json()) as T;

describe('HTTP_PROCESSES', () => {
  test('is refused on the embedded engine, naming the setting', () => {
    expect(() => loadConfig({ HTTP_PROCESSES: '2' })).toThrow(/HTTP_PROCESSES=2 needs the server engine \(DATABASE_URL\)/);
    expect(loadConfig({ HTTP_PROCESSES: '1' }).httpProcesses).toBe(1);
  });
});

describe.skipIf(!engines.includes('server'))('HTTP_PROCESSES=2 on one port [server]', () => {
  let target: Target;
  let dataDir: string;
  beforeAll(async () => {
    target = await newTarget('server');
    dataDir = mkdtempSync(join(tmpdir(), 'aurore-procs-'));
  });
  const afterKill: ReturnType<typeof Bun.spawn>[] = [];
  afterAll(async () => {
    for (const p of afterKill) if (p.exitCode === null) p.kill('SIGKILL');
    await target?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('both processes take connections; /metrics and /health/buffer count for both; SIGTERM under load: exit 0 and every 202 stored', async () => {
    const svc = await spawnService({ ...target.env, DATA_DIR: dataDir, HTTP_PROCESSES: '2', RATE_LIMIT_INGEST: '0' });
    // Failing before its SIGTERM (a mutation run), the supervisor is killed; its processes follow it.
    afterKill.push(svc.proc);
    await until(() => svc.lines.filter((l) => l.includes('"msg":"database ready"')).length === 2, 30_000, 'both processes ready');
    let accepted = 0;
    let stop = false;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        try {
          if ((await post(svc.url, i, 'two-procs')) === 202) accepted++;
        } catch {
          await Bun.sleep(5); // refused while stopping
        }
        if (i === 0) await Bun.sleep(c); // spread the connections' start
      }
    };
    const clients = Array.from({ length: 16 }, (_, c) => client(c));
    // A failing step stops the clients too: they would post to a dead port for the rest of the suite.
    try {
      await until(() => accepted > 2000, 30_000);
      // The request log says which process answered: both did.
      const served = new Set(svc.lines.filter((l) => l.includes('"msg":"request"')).map((l) => (JSON.parse(l) as { process: number }).process));
      expect([...served].sort()).toEqual([0, 1]);
      const buffer = await json<{ accepted: number; capacity: number; processes: { configured: number; reporting: number } }>(`${svc.url}/health/buffer`);
      expect(buffer.processes).toEqual({ configured: 2, reporting: 2 });
      expect(buffer.capacity).toBe(200_000); // two queues of 100,000
      const metrics = await (await fetch(`${svc.url}/metrics`)).text();
      const acceptedMetric = Number(/^aurore_events_accepted_total (\d+)/m.exec(metrics)![1]);
      expect(acceptedMetric).toBeGreaterThanOrEqual(buffer.accepted); // both processes, summed
      expect(acceptedMetric).toBeLessThanOrEqual(accepted + 16);
      svc.proc.kill('SIGTERM');
      expect(await svc.proc.exited).toBe(0);
    } finally {
      stop = true;
      if (svc.proc.exitCode === null) svc.proc.kill('SIGKILL'); // its processes follow it
    }
    await Promise.all(clients);
    const engine = await target.open();
    try {
      expect(await countRows(engine, `service = 'two-procs'`)).toBe(accepted);
    } finally {
      await engine.close();
    }
    expect(svc.lines.filter((l) => l.includes('"msg":"stopped"'))).toHaveLength(2);
  });

  test('the supervisor killed outright (SIGKILL): its processes stop on their own, every 202 stored', async () => {
    const svc = await spawnService({ ...target.env, DATA_DIR: dataDir, HTTP_PROCESSES: '2', RATE_LIMIT_INGEST: '0' });
    let pids: number[] = [];
    try {
      await until(() => svc.lines.filter((l) => l.includes('"msg":"database ready"')).length === 2, 30_000, 'both processes ready');
      pids = childrenOf(svc.proc.pid);
      expect(pids).toHaveLength(2);
      let accepted = 0;
      for (let i = 0; i < 200; i++) if ((await post(svc.url, i, 'orphans')) === 202) accepted++;
      expect(accepted).toBe(200);
      svc.proc.kill('SIGKILL');
      await until(() => pids.every((p) => !existsSync(`/proc/${p}`)), 20_000, 'the orphaned processes to exit');
      expect(svc.lines.filter((l) => l.includes('"signal":"supervisor gone"'))).toHaveLength(2);
      const engine = await target.open();
      try {
        expect(await countRows(engine, `service = 'orphans'`)).toBe(200);
      } finally {
        await engine.close();
      }
    } finally {
      // A broken build must not leave them behind, spinning on the CI machine.
      for (const p of pids) if (existsSync(`/proc/${p}`)) process.kill(p, 'SIGKILL');
      if (svc.proc.exitCode === null) svc.proc.kill('SIGKILL');
    }
  });
});

/** Pids of the processes whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe.skipIf(!engines.includes('server'))('two instances, one database, one redis-server [server]', () => {
  let target: Target;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let a: Awaited<ReturnType<typeof spawnService>>;
  let b: Awaited<ReturnType<typeof spawnService>>;
  const dirs: string[] = []; // made in beforeAll: a describe's body also runs when its tests are filtered out
  beforeAll(async () => {
    dirs.push(mkdtempSync(join(tmpdir(), 'aurore-inst-a-')), mkdtempSync(join(tmpdir(), 'aurore-inst-b-')));
    target = await newTarget('server');
    redis = await startRedis();
    const env = { ...target.env, REDIS_URL: redis.url, RATE_LIMIT_QUERY: '10', AGGREGATE_REFRESH_SECONDS: '1' };
    a = await spawnService({ ...env, DATA_DIR: dirs[0]! });
    b = await spawnService({ ...env, DATA_DIR: dirs[1]! });
  });
  afterAll(async () => {
    for (const s of [a, b]) {
      if (s && s.proc.exitCode === null) s.proc.kill('SIGTERM');
      await s?.proc.exited;
    }
    redis?.stop();
    await target?.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  type Db = { maintenance: { here: boolean; holder: string | null }; jobs: { name: string; runs: number }[] };
  // The job that runs every AGGREGATE_REFRESH_SECONDS: the rollup (Apache edition) or late events (Community).
  const refreshRuns = (d: Db) => d.jobs.find((j) => j.name === 'rollup' || j.name === 'late events')?.runs ?? 0;

  test('every event acknowledged by either is stored once', async () => {
    const statuses = await Promise.all(Array.from({ length: 300 }, (_, i) => post(i % 2 ? a.url : b.url, i, 'two-instances', i % 3 === 0)));
    expect(statuses.every((s) => s === 201 || s === 202)).toBe(true);
    await until(
      async () =>
        (await json<{ depth: number }>(`${a.url}/health/buffer`)).depth === 0 && (await json<{ depth: number }>(`${b.url}/health/buffer`)).depth === 0,
    );
    const page = await json<{ pagination: { total: number } }>(`${a.url}/events?service=two-instances&count=exact`);
    expect(page.pagination.total).toBe(300);
  });

  test('one rate budget for both, through Redis', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await fetch(`${i % 2 ? a.url : b.url}/events?pageSize=1&service=none`)).status);
    // 10 a window in all (the earlier test's queries count too): the last two are refused whichever instance takes them
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(statuses.slice(-2)).toEqual([429, 429]);
  });

  test('the maintenance jobs run on one instance at a time, and another takes them over when it stops', async () => {
    const [da, db] = await Promise.all([json<Db>(`${a.url}/health/database`), json<Db>(`${b.url}/health/database`)]);
    expect([da.maintenance.here, db.maintenance.here].filter(Boolean)).toHaveLength(1);
    expect(da.maintenance.holder).toBe(db.maintenance.holder);
    const [runner, other] = da.maintenance.here ? [a, b] : [b, a];
    // The refresh job runs every second on the runner, never on the other.
    await until(async () => refreshRuns(await json<Db>(`${runner.url}/health/database`)) >= 3, 20_000, 'the refresh job to run');
    expect(refreshRuns(await json<Db>(`${other.url}/health/database`))).toBe(0);
    runner.proc.kill('SIGTERM');
    expect(await runner.proc.exited).toBe(0);
    await until(async () => (await json<Db>(`${other.url}/health/database`)).maintenance.here, 20_000, 'the other instance to take the jobs over');
    await until(async () => refreshRuns(await json<Db>(`${other.url}/health/database`)) >= 1, 20_000, 'its refresh job to run');
    expect(other.lines.some((l) => l.includes('this instance runs the maintenance jobs'))).toBe(true);
  });
});
