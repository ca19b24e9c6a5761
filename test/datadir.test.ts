// One process per embedded DATA_DIR, proved with real processes: a second start is refused before it
// touches the database and leaves the first one unharmed; a lock left by a killed process is taken
// over and every committed (201) event survives; a graceful stop releases the lock. On the server
// engine several instances share a DATA_DIR: each spills to files of its own and a replay claims a
// file, so no file is replayed twice.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { closeSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimFile } from '../src/store/lock';
import { writeSpill } from '../src/store/spill';
import { openEmbedded } from '../src/store/engine';
import { countRows, engines, newTarget, ROOT, spawnService, startService, type Target } from './harness';

setDefaultTimeout(90_000);

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function tempDir(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
function spawned(s: Awaited<ReturnType<typeof spawnService>>) {
  cleanups.push(async () => {
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    await s.proc.exited;
  });
  return s;
}

async function post(url: string, body: unknown, wait = true) {
  const res = await fetch(`${url}/events${wait ? '?wait=true' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}
async function exactTotal(url: string, service: string) {
  const res = await fetch(`${url}/events?service=${service}&count=exact&pageSize=1`);
  return ((await res.json()) as { pagination: { total: number } }).pagination.total;
}

describe('embedded DATA_DIR lock', () => {
  test('a second process on the same DATA_DIR exits non-zero at once, naming the directory and the holder, and the first keeps working', async () => {
    const dir = tempDir('aurore-lock-');
    const first = spawned(await spawnService({ DATA_DIR: dir }));
    for (let i = 0; i < 20; i++) expect(await post(first.url, { service: 'lock-first', message: `m${i}` })).toBe(201);
    const filesBefore = readdirSync(dir).sort();
    const mtimes = filesBefore.map((f) => statSync(join(dir, f)).mtimeMs);

    const started = Date.now();
    const second = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: '0', DATA_DIR: dir },
      stdout: 'pipe',
      stderr: 'pipe',
    });
    const code = await Promise.race([second.exited, Bun.sleep(10_000).then(() => 'still running after 10 s')]);
    if (typeof code === 'string') second.kill('SIGKILL');
    const stderr = await new Response(second.stderr).text();
    expect(code).toBe(2);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(stderr).toContain(`DATA_DIR ${dir} is in use by process ${first.proc.pid} on host`);
    // It touched nothing: the same files, none rewritten.
    expect(readdirSync(dir).sort()).toEqual(filesBefore);
    expect(filesBefore.map((f) => statSync(join(dir, f)).mtimeMs)).toEqual(mtimes);

    for (let i = 20; i < 40; i++) expect(await post(first.url, { service: 'lock-first', message: `m${i}` })).toBe(201);
    expect(await exactTotal(first.url, 'lock-first')).toBe(40);
  });

  test('a lock left by a SIGKILLed process is taken over with a warning, and every 201-acknowledged event is there', async () => {
    const dir = tempDir('aurore-lock-');
    const committed: string[] = [];
    for (let round = 0; round < 3; round++) {
      const svc = spawned(await spawnService({ DATA_DIR: dir }));
      if (round > 0) expect(svc.lines.some((l) => l.includes('DATA_DIR lock taken over') && l.includes('"level":"warn"'))).toBe(true);
      let stop = false;
      const client = async () => {
        while (!stop) {
          const id = crypto.randomUUID();
          try {
            if ((await post(svc.url, { id, service: 'lock-kill', message: `round ${round}` })) === 201) committed.push(id);
          } catch {
            return; // killed mid-request: that one was never acknowledged
          }
        }
      };
      const clients = Array.from({ length: 8 }, client);
      await Bun.sleep(1500);
      svc.proc.kill('SIGKILL');
      await svc.proc.exited;
      stop = true;
      await Promise.all(clients);
    }
    expect(committed.length).toBeGreaterThan(300);
    const last = await spawnService({ DATA_DIR: dir });
    expect(last.lines.some((l) => l.includes('DATA_DIR lock taken over'))).toBe(true);
    last.proc.kill('SIGTERM');
    expect(await last.proc.exited).toBe(0);
    const db = await openEmbedded(dir);
    try {
      expect(await countRows(db, `id = ANY($1::uuid[])`, [committed])).toBe(committed.length);
    } finally {
      await db.close();
    }
  });

  test('a graceful stop releases the lock: the next start takes it without a warning', async () => {
    const dir = tempDir('aurore-lock-');
    const first = await spawnService({ DATA_DIR: dir });
    expect(existsSync(join(dir, 'aurore.lock'))).toBe(true);
    first.proc.kill('SIGTERM');
    expect(await first.proc.exited).toBe(0);
    expect(existsSync(join(dir, 'aurore.lock'))).toBe(false);
    const second = spawned(await spawnService({ DATA_DIR: dir }));
    expect(second.lines.some((l) => l.includes('DATA_DIR lock'))).toBe(false);
    expect(await post(second.url, { service: 'lock-again', message: 'x' })).toBe(201);
  });

  test('opening the database directly while a service in this process holds it is refused too', async () => {
    const target = await newTarget('embedded');
    cleanups.push(() => target.destroy());
    const svc = await startService(target);
    cleanups.push(() => svc.stop());
    await expect(openEmbedded(target.env.DATA_DIR!)).rejects.toThrow(/is in use by process/);
  });
});

describe('spill files on a shared DATA_DIR', () => {
  test('a claimed file cannot be claimed again until released, and a removed one not at all', () => {
    const dir = tempDir('aurore-claim-');
    const path = writeSpill(dir, '[]');
    const fd = claimFile(path)!;
    expect(fd).not.toBeNull();
    expect(claimFile(path)).toBeNull();
    closeSync(fd);
    const again = claimFile(path)!;
    expect(again).not.toBeNull();
    rmSync(path);
    closeSync(again);
    expect(claimFile(path)).toBeNull();
  });

  test.skipIf(!engines.includes('server'))('[server] two instances starting on one DATA_DIR replay each spill file once', async () => {
    const target: Target = await newTarget('server');
    cleanups.push(() => target.destroy());
    const dir = tempDir('aurore-sharedspill-');
    const rec = (i: number) => `{"id":"${Bun.randomUUIDv7()}","time":"${new Date().toISOString()}","service":"shared-spill","message":"m${i}","metadata":{}}`;
    const files = Array.from({ length: 6 }, (_, f) =>
      writeSpill(join(dir, 'spill'), `[${Array.from({ length: 3000 }, (_, i) => rec(f * 3000 + i)).join(',')}]`),
    );
    expect(new Set(files).size).toBe(6);
    const [a, b] = await Promise.all([spawnService({ ...target.env, DATA_DIR: dir }), spawnService({ ...target.env, DATA_DIR: dir })]);
    spawned(a!);
    spawned(b!);
    const replayed = [...a!.lines, ...b!.lines].filter((l) => l.includes('spilled events written')).map((l) => (JSON.parse(l) as { file: string }).file);
    expect(replayed.sort()).toEqual(files.map((f) => f.split('/').pop()!).sort());
    expect(readdirSync(join(dir, 'spill'))).toEqual([]);
    const engine = await target.open();
    cleanups.push(() => engine.close());
    expect(await countRows(engine, `service = 'shared-spill'`)).toBe(18_000);
  });

  test.skipIf(!engines.includes('server'))('[server] a spill file another instance is replaying is left to it, and replayed by the next start', async () => {
    const target: Target = await newTarget('server');
    cleanups.push(() => target.destroy());
    const dir = tempDir('aurore-heldspill-');
    const rec = (i: number) => `{"id":"${Bun.randomUUIDv7()}","time":"${new Date().toISOString()}","service":"held-spill","message":"m${i}","metadata":{}}`;
    const files = Array.from({ length: 3 }, (_, f) => writeSpill(join(dir, 'spill'), `[${Array.from({ length: 100 }, (_, i) => rec(f * 100 + i)).join(',')}]`));
    const held = claimFile(files[1]!)!; // this test process plays the other instance, mid-replay
    expect(held).not.toBeNull();
    const first = await spawnService({ ...target.env, DATA_DIR: dir });
    expect(first.lines.filter((l) => l.includes('spill file skipped: another instance is replaying it'))).toHaveLength(1);
    first.proc.kill('SIGTERM');
    expect(await first.proc.exited).toBe(0);
    expect(readdirSync(join(dir, 'spill'))).toEqual([files[1]!.split('/').pop()!]);
    const engine = await target.open();
    cleanups.push(() => engine.close());
    expect(await countRows(engine, `service = 'held-spill'`)).toBe(200);
    closeSync(held); // the other instance went away without finishing: the file is free again
    const second = spawned(await spawnService({ ...target.env, DATA_DIR: dir }));
    expect(second.lines.filter((l) => l.includes('spilled events written'))).toHaveLength(1);
    expect(await countRows(engine, `service = 'held-spill'`)).toBe(300);
    expect(readdirSync(join(dir, 'spill'))).toEqual([]);
  });

  test('each instance spills to a file of its own, named by host and process', async () => {
    const dir = tempDir('aurore-ownspill-');
    const a = writeSpill(dir, '[]');
    const b = writeSpill(dir, '[]');
    expect(a).not.toBe(b);
    expect(a).toContain(`-${process.pid}-`);
    expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });
});
