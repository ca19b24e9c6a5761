// Which instance runs the maintenance jobs when several share one database (instances behind a load
// balancer, HTTP_PROCESSES): the holder of the 'maintenance' lease (sql/008_leases.sql), renewed
// every few seconds while it lives and taken over by another instance once it lapses. A job is never
// run by two instances at once, and one that dies leaves the jobs to another within LEASE_TTL.
// The embedded engine is one process: it always holds it.
import { hostname } from 'node:os';
import type { Logger } from '../log';
import type { Engine } from '../store/engine';

const RENEW_EVERY_MS = 5_000;
const LEASE_TTL_S = 30;

export interface Lease {
  /** True while this instance holds the lease (and its last renewal is recent). */
  held(): boolean;
  /** Who holds it: this instance, another, or nobody known yet. */
  holder(): string | null;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createLease(engine: Engine, log: Logger, name = 'maintenance'): Lease {
  const me = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  if (engine.kind === 'embedded') return { held: () => true, holder: () => me, start: async () => {}, stop: async () => {} };
  let current: string | null = null;
  let renewedAt = 0;
  let timer: ReturnType<typeof setInterval> | undefined;

  async function renew() {
    try {
      const [r] = await engine.query<{ holder: string }>(`SELECT aurore_take_lease($1, $2, make_interval(secs => $3)) AS holder`, [name, me, LEASE_TTL_S]);
      const was = current;
      current = r?.holder ?? null;
      if (current === me) renewedAt = Date.now();
      if (was !== current && current === me) log.info('this instance runs the maintenance jobs', { lease: name, holder: me });
      else if (was === me && current !== me) log.warn('another instance runs the maintenance jobs now', { lease: name, holder: current });
    } catch (err) {
      log.warn('maintenance lease not renewed', { err });
    }
  }

  return {
    // Held only while the last renewal is well inside the lease's life: a stalled instance stops
    // running jobs before another can take the lease over.
    held: () => current === me && Date.now() - renewedAt < (LEASE_TTL_S * 1000) / 2,
    holder: () => current,
    async start() {
      await renew();
      timer = setInterval(() => void renew(), RENEW_EVERY_MS);
      timer.unref?.();
    },
    async stop() {
      clearInterval(timer);
      if (current !== me) return;
      // Let another instance take over at once rather than when the lease lapses.
      await engine.query(`DELETE FROM aurore_leases WHERE name = $1 AND holder = $2`, [name, me]).catch(() => {});
      current = null;
    },
  };
}
