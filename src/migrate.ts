// Applies sql/NNN_name.sql in order, once each, recorded in aurore_migrations. Each file runs in one
// transaction unless its first line is `-- aurore:no-transaction` (TimescaleDB refuses some DDL, such as
// continuous aggregates, inside transaction blocks); such files must be idempotent on their own.
// Files are never edited after release: a change is a new file.
import { readdirSync, readFileSync } from 'node:fs';
import type { Engine } from './engine';
import type { Logger } from './log';

const SQL_DIR = new URL('../sql/', import.meta.url);
const FILE_RE = /^(\d{3})_[a-z0-9_]+\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir: URL = SQL_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => FILE_RE.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f, sql: readFileSync(new URL(f, dir), 'utf8') }));
}

export async function migrate(engine: Engine, log: Logger, migrations = loadMigrations()): Promise<number> {
  await engine.exec(
    `CREATE TABLE IF NOT EXISTS aurore_migrations (
       version int PRIMARY KEY,
       name text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const done = new Set((await engine.query<{ version: number }>('SELECT version FROM aurore_migrations')).map((r) => r.version));
  let applied = 0;
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    const record = `INSERT INTO aurore_migrations (version, name) VALUES (${m.version}, '${m.name}') ON CONFLICT DO NOTHING;`;
    const transactional = !m.sql.startsWith('-- aurore:no-transaction');
    log.info('applying migration', { migration: m.name });
    try {
      // A transaction-level advisory lock serializes instances migrating the same server at once; the
      // loser re-runs an idempotent script and records nothing new.
      if (transactional) await engine.exec(`SELECT pg_advisory_xact_lock(7262001);\n${m.sql}\n;${record}`);
      else {
        await engine.exec(m.sql, { transaction: false });
        await engine.exec(record);
      }
    } catch (err) {
      throw new Error(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
    }
    applied++;
  }
  return applied;
}
