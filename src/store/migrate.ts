// Applies sql/NNN_name.sql in order, once each, recorded in aurore_migrations. Each file runs in one
// transaction unless its first line is `-- aurore:no-transaction` (TimescaleDB refuses some DDL, such as
// continuous aggregates, inside transaction blocks); such files must be idempotent on their own.
// Files are never edited after release: a change is a new file.
// A version may come in two editions, NNN_name.community.sql and NNN_name.apache.sql: exactly one is
// applied, the one the database's TimescaleDB license allows (continuous aggregates and policies are
// refused by the Apache-only edition). aurore_migrations records which, and later code reads it back.
import { readdirSync, readFileSync } from 'node:fs';
import type { Engine } from './engine';
import type { Logger } from '../log';

const SQL_DIR = new URL('../../sql/', import.meta.url);
const FILE_RE = /^(\d{3})_[a-z0-9_]+(?:\.(community|apache))?\.sql$/;

export type Edition = 'community' | 'apache';

export interface Migration {
  version: number;
  name: string;
  /** Only for this TimescaleDB edition; undefined = every edition. */
  edition?: Edition;
  sql: string;
}

export function loadMigrations(dir: URL = SQL_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => FILE_RE.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f, edition: FILE_RE.exec(f)![2] as Edition | undefined, sql: readFileSync(new URL(f, dir), 'utf8') }));
}

/** The edition whose files apply: the license TimescaleDB reports (known once 001 created the extension). */
async function licensed(engine: Engine): Promise<Edition> {
  const [r] = await engine.query<{ license: string | null }>(`SELECT current_setting('timescaledb.license', true) AS license`);
  return r?.license === 'apache' ? 'apache' : 'community';
}

/** Which edition's files this database was migrated with (the aggregates are continuous or rollup tables). */
export async function migratedEdition(engine: Engine): Promise<Edition> {
  const rows = await engine.query<{ name: string }>(`SELECT name FROM aurore_migrations WHERE name LIKE '%.apache.sql' LIMIT 1`);
  return rows.length ? 'apache' : 'community';
}

/**
 * `opts.edition` overrides the license for edition-specific files. Only tests and benchmarks set it, to
 * run the Apache path on a Community database and compare the two.
 */
export async function migrate(engine: Engine, log: Logger, migrations = loadMigrations(), opts: { edition?: Edition } = {}): Promise<number> {
  await engine.exec(
    `CREATE TABLE IF NOT EXISTS aurore_migrations (
       version int PRIMARY KEY,
       name text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
  );
  const done = new Set((await engine.query<{ version: number }>('SELECT version FROM aurore_migrations')).map((r) => r.version));
  let applied = 0;
  let edition = opts.edition;
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    if (m.edition) {
      edition ??= await licensed(engine);
      if (m.edition !== edition) continue;
    }
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
