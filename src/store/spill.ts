// Spill: events accepted (202) that the database could not take before shutdown ended (it was down
// for all of SHUTDOWN_TIMEOUT_MS) are saved to DATA_DIR/spill instead of being dropped, and written at
// the next start, before new events. Replaying is idempotent: the (id, time) key makes a record that
// did reach the database add nothing.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Engine } from './engine';
import type { Logger } from '../log';
import { insertRecords, splitArray, type InsertResult } from './write';

const CHUNK = 5_000; // records per statement on replay, as the writers use

export const spillDir = (dataDir: string) => join(resolve(dataDir), 'spill');

/** Writes a JSON array of queue records durably (fsync) to a new owner-only file; returns its path. */
export function writeSpill(dir: string, json: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `spill-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}.json`);
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, json);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Writes every spill file's events to the database and deletes the file; returns how many events. */
export async function replaySpills(dir: string, engine: Engine, log: Logger): Promise<number> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /^spill-.*\.json$/.test(f)).sort();
  } catch {
    return 0; // no spill directory: nothing was ever spilled
  }
  let total = 0;
  for (const f of files) {
    const path = join(dir, f);
    const records = splitArray(readFileSync(path, 'utf8'));
    const result: InsertResult = { inserted: 0, duplicates: [], rejected: [] };
    for (let i = 0; i < records.length; i += CHUNK) {
      const chunk = records.slice(i, i + CHUNK);
      await insertRecords(engine, `[${chunk.join(',')}]`, chunk.length, i, result);
    }
    unlinkSync(path);
    total += records.length;
    log.info('spilled events written', { file: f, events: records.length, new: result.inserted, alreadyStored: result.duplicates.length, rejected: result.rejected.length });
  }
  return total;
}
