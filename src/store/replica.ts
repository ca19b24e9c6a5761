// Reads from a streaming replica (DATABASE_READ_URL): GET /events, /events/:id, /metrics/events and
// /health/business go there while it answers and trails the primary by at most READ_MAX_LAG_MS;
// otherwise to the primary, said in the log and in /health/database. Writes, migrations and
// maintenance always use the primary. The lag is measured on the replica once a second: zero when
// it has replayed everything it received, else the age of the last transaction it replayed.
import { redactUrl, type Logger } from '../log';
import { openServer, type Engine } from './engine';

const CHECK_EVERY_MS = 1000;

export interface ReadStatus {
  target: string; // host:port/db of the replica, never its password
  using: 'replica' | 'primary';
  lagMs: number | null;
  maxLagMs: number;
  /** Why reads are on the primary, when they are. */
  reason: string | null;
  since: string;
}

export interface ReadRouting {
  /** The engine the read routes use. */
  readonly engine: Engine;
  status(): ReadStatus;
  close(): Promise<void>;
}

export function readRouting(primary: Engine, url: string, opts: { maxLagMs: number; poolMax: number; log: Logger }): ReadRouting {
  const replica = openServer(url, opts.poolMax);
  const state: ReadStatus = {
    target: redactUrl(url),
    using: 'primary',
    lagMs: null,
    maxLagMs: opts.maxLagMs,
    reason: 'not checked yet',
    since: new Date().toISOString(),
  };
  const use = (using: ReadStatus['using'], reason: string | null) => {
    if (state.using !== using) {
      if (using === 'primary') opts.log.warn('reads fall back to the primary', { replica: state.target, reason });
      else opts.log.info('reads go to the replica again', { replica: state.target, lagMs: state.lagMs });
      state.since = new Date().toISOString();
    }
    state.using = using;
    state.reason = reason;
  };

  async function check() {
    try {
      const [r] = await replica.query<{ lag_ms: number | null }>(
        `SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                     ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000 END::float8 AS lag_ms`,
      );
      state.lagMs = r?.lag_ms === null || r?.lag_ms === undefined ? null : Math.round(r.lag_ms);
      if (state.lagMs === null) use('primary', 'the replica has replayed nothing yet');
      else if (state.lagMs > opts.maxLagMs) use('primary', `the replica trails by ${state.lagMs} ms (READ_MAX_LAG_MS=${opts.maxLagMs})`);
      else use('replica', null);
    } catch (err) {
      state.lagMs = null;
      use('primary', `the replica does not answer: ${(err as Error).message}`);
    }
  }
  const timer = setInterval(() => void check(), CHECK_EVERY_MS);
  timer.unref?.();
  void check();

  const engine: Engine = {
    kind: 'server',
    async query(text, params, opts) {
      if (state.using === 'primary') return primary.query(text, params, opts);
      try {
        return await replica.query(text, params, opts);
      } catch (err) {
        // A replica that stops answering mid-request: this read, and the next ones, go to the primary.
        // Not a statement's own fault, nor one its request cancelled.
        if ((err as { code?: string }).code?.startsWith('42') || opts?.signal?.aborted) throw err;
        use('primary', `the replica failed a read: ${(err as Error).message}`);
        return primary.query(text, params, opts);
      }
    },
    exec: (script, o) => primary.exec(script, o),
    copyIn: (statement, chunks) => primary.copyIn(statement, chunks), // a write: never a replica
    close: async () => {},
  };
  return {
    engine,
    status: () => ({ ...state }),
    async close() {
      clearInterval(timer);
      await replica.close();
    },
  };
}
