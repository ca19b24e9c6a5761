// Spill: events accepted (202) that the database could not take before shutdown ended (it was down
// for all of SHUTDOWN_TIMEOUT_MS) are saved to DATA_DIR/spill instead of being dropped, and written at
// the next start, before new events. Replaying is idempotent: the (id, time) key makes a record that
// did reach the database add nothing. A file whose replay fails stays, for the next start.
// Several server-engine instances may share one DATA_DIR: each writes files of its own (host, pid and
// a random part in the name, made visible by an atomic rename once complete), and a replay claims a
// file with a lock first (lock.ts), so two instances never replay the same file at once.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '../log';
import type { Engine } from './engine';
import { claimFile } from './lock';
import { splitArray } from './record';
import { writeRecords, type InsertResult } from './write';

const CHUNK = 5_000; // records per statement on replay, as the writers use
const SPILL_FILE = /^spill-.*\.json$/;

export const spillDir = (dataDir: string) => join(resolve(dataDir), 'spill');

function fsyncPath(path: string) {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a JSON array of queue records durably (fsync) to a new owner-only file; returns its path. */
export function writeSpill(dir: string, json: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const host = hostname().replace(/[^\w.-]/g, '_');
  const name = `spill-${new Date().toISOString().replace(/[:.]/g, '-')}-${host}-${process.pid}-${crypto.randomUUID().slice(0, 8)}.json`;
  // Written under a name replays ignore, then renamed: another instance never reads half a file.
  const partial = join(dir, `.${name}.partial`);
  const fd = openSync(partial, 'wx', 0o600);
  try {
    writeSync(fd, json);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const path = join(dir, name);
  renameSync(partial, path);
  fsyncPath(dir); // the rename itself survives a power loss
  return path;
}

/** Writes one claimed spill file's events to the database; returns its counts. */
async function replayFile(path: string, engine: Engine) {
  const records = splitArray(readFileSync(path, 'utf8'));
  const result: InsertResult = { inserted: 0, duplicates: [], rejected: [] };
  for (let i = 0; i < records.length; i += CHUNK) {
    const chunk = records.slice(i, i + CHUNK);
    await writeRecords(engine, `[${chunk.join(',')}]`, chunk.length, result, { offset: i });
  }
  return { records: records.length, result };
}

/**
 * Writes every spill file's events to the database and deletes the file; returns how many events.
 * A file another instance is replaying is skipped; a replay that fails throws and keeps the file.
 */
export async function replaySpills(dir: string, engine: Engine, log: Logger): Promise<number> {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => SPILL_FILE.test(f))
      .sort();
  } catch {
    return 0; // no spill directory: nothing was ever spilled
  }
  let total = 0;
  for (const f of files) {
    const path = join(dir, f);
    const fd = claimFile(path);
    if (fd === null) {
      log.info('spill file skipped: another instance is replaying it', { file: f });
      continue;
    }
    try {
      const { records, result } = await replayFile(path, engine);
      unlinkSync(path); // still holding the lock: nobody else can have started on it
      total += records;
      log.info('spilled events written', {
        file: f,
        events: records,
        new: result.inserted,
        alreadyStored: result.duplicates.length,
        rejected: result.rejected.length,
      });
    } finally {
      closeSync(fd);
    }
  }
  return total;
}
