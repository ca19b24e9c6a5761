// Exclusive locks between processes: the embedded engine's DATA_DIR (PGlite takes none, and two
// processes on one directory silently lose each other's committed events: electric-sql/pglite#1106),
// and a spill file being replayed (several server-engine instances may share one DATA_DIR).
//
// flock(2), called through bun:ffi: the kernel drops the lock when its process dies (kill -9, OOM,
// power loss), so a lock is never stale and a restart never waits for a timeout or guesses from a
// PID that may have been reused. (fs-native-extensions, the maintained addon for this, crashes Bun
// 1.4 on a contended lock: it calls a libuv function Bun does not implement; proper-lockfile only
// guesses staleness from mtimes, which would keep a killed service from restarting for seconds.)
// The holder's PID, host and start time are written beside the lock for the message a second
// process shows; a file left there means its holder did not stop cleanly.
import { dlopen, FFIType, read } from 'bun:ffi';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = process.platform === 'darwin' ? 35 : 11;
const HOLDER_FILE = 'aurore.lock';

type Libc = { flock(fd: number, op: number): number; errno(): number };

let libc: Libc | null | undefined;
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  const names = process.platform === 'darwin' ? ['libc.dylib', '/usr/lib/libSystem.B.dylib'] : ['libc.so.6', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1'];
  const errnoSymbol = process.platform === 'darwin' ? '__error' : '__errno_location';
  for (const name of names) {
    try {
      const lib = dlopen(name, { flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 }, [errnoSymbol]: { args: [], returns: FFIType.ptr } });
      const errnoAt = lib.symbols[errnoSymbol] as () => number;
      return (libc = { flock: (fd, op) => lib.symbols.flock(fd, op) as number, errno: () => read.i32(errnoAt() as never, 0) });
    } catch {
      // next name
    }
  }
  return (libc = null);
}

/** Takes an exclusive lock on an open fd without waiting: true when granted, false when another holds it. */
export function tryLock(fd: number): boolean {
  const c = loadLibc();
  if (!c) throw new Error(`no flock(2) on ${process.platform}: file locks are not supported here`);
  if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = c.errno();
  if (errno === EWOULDBLOCK) return false;
  throw new Error(`flock failed (errno ${errno}): the file system may not support locks (a network file system without lock support?)`);
}

export function unlock(fd: number) {
  loadLibc()?.flock(fd, LOCK_UN);
}

export interface Holder {
  pid: number;
  host: string;
  startedAt: string;
}

export class DataDirLocked extends Error {
  override name = 'DataDirLocked';
}

export interface DataDirLock {
  /** Whoever held the directory before and did not release it (a crash): taken over now. */
  readonly previous: Holder | null;
  /** Records this process as the holder (once the database files exist: PGlite's initdb wants an empty directory). */
  recordHolder(): void;
  release(): void;
}

function readHolder(dir: string): Holder | null {
  try {
    return JSON.parse(readFileSync(join(dir, HOLDER_FILE), 'utf8')) as Holder;
  } catch {
    return null;
  }
}

/**
 * Locks DATA_DIR for this process (creating it, owner-only, when missing) before anything opens the
 * database in it. Throws DataDirLocked, naming the holder, when another process has it.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The directory itself is locked: nothing is created inside it before the database is.
  const fd = openSync(dir, 'r');
  if (!tryLock(fd)) {
    closeSync(fd);
    const h = readHolder(dir);
    const who = h ? `process ${h.pid} on host ${h.host} (running since ${h.startedAt})` : 'another process (still creating the database)';
    throw new DataDirLocked(
      `DATA_DIR ${dir} is in use by ${who}.\n` +
        '  The embedded database allows one process per directory: stop that process, or give this one another DATA_DIR.\n' +
        '  (More than one process: use the server engine, DATABASE_URL. docs/operations.md: Running more than one.)',
    );
  }
  const previous = readHolder(dir);
  const me: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  let released = false;
  const lock: DataDirLock = {
    previous,
    recordHolder() {
      if (released || !existsSync(join(dir, 'PG_VERSION'))) return;
      writeFileSync(join(dir, HOLDER_FILE), `${JSON.stringify(me)}\n`, { mode: 0o600 });
    },
    release() {
      if (released) return;
      released = true;
      rmSync(join(dir, HOLDER_FILE), { force: true });
      unlock(fd);
      closeSync(fd);
    },
  };
  lock.recordHolder();
  return lock;
}

/**
 * Opens `path` and locks it for this process, or returns null when another process holds it or the
 * file is gone (claimed and removed meanwhile). The caller closes the fd, which unlocks it.
 */
export function claimFile(path: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    // Still the same file once locked? Another process may have replayed and removed it meanwhile.
    if (tryLock(fd) && existsSync(path) && statSync(path).ino === fstatSync(fd).ino) return fd;
  } catch {
    // not lockable: treat as taken
  }
  closeSync(fd);
  return null;
}
