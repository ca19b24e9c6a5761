// Where a benchmark keeps its events: a fresh temporary DATA_DIR (embedded engine), or a scratch
// database created on the server in DATABASE_URL and dropped afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { openEmbedded, openServer, type Engine, type EngineKind } from '../src/store/engine';

export interface BenchTarget {
  kind: EngineKind;
  env: Record<string, string>; // for the service's environment
  open(): Promise<Engine>;
  destroy(): Promise<void>;
}

export async function benchTarget(prefix: string, opts: { trigram?: boolean } = {}): Promise<BenchTarget> {
  const serverUrl = process.env.DATABASE_URL || undefined;
  if (!serverUrl) {
    const dir = mkdtempSync(join(tmpdir(), `aurore-${prefix}-`));
    return {
      kind: 'embedded',
      env: { DATA_DIR: dir },
      // The same durability as the service it measures beside (EMBEDDED_FSYNC, inherited by it).
      open: () => openEmbedded(dir, { ...opts, fsync: process.env.EMBEDDED_FSYNC !== 'off' }),
      destroy: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `aurore_${prefix}_${Date.now().toString(36)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } catch (e) {
    console.error(`cannot create a scratch database on DATABASE_URL (${(e as Error).message}); the user needs CREATEDB`);
    process.exit(2);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    kind: 'server',
    env: { DATABASE_URL: url.toString() },
    open: async () => openServer(url.toString(), 2),
    destroy: async () => {
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Starts `bun src/main.ts` on the target; resolves with its base URL once the database is ready. */
export async function startServiceProcess(root: string, env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, join(root, 'src/main.ts')], {
    cwd: root,
    env: { ...process.env, ...env, PORT: '0', LOG_LEVEL: 'info' },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let base = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the service exited before it was ready');
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    let ready = false;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const l = JSON.parse(line) as { msg?: string; url?: string };
        if (l.msg === 'listening') base = l.url!;
        if (l.msg === 'database ready') ready = true;
      } catch {
        /* not a log line */
      }
    }
    if (ready) break;
  }
  void (async () => {
    for (;;) if ((await reader.read()).done) return; // keep the pipe drained
  })();
  return { proc, base };
}
