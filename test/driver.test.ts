// The server engine's database client (postgres.js 3.4.9, patched: patches/postgres+3.4.9.patch):
// a connection whose socket died survives to serve the next statement. Each case forces the
// driver's race with a real socket to a real PostgreSQL, at the moment the race needs.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, type Socket } from 'node:net';
import postgres from 'postgres';
import { openServer } from '../src/store/engine';
import { engines, newTarget, privateCluster, type Target } from './harness';

setDefaultTimeout(60_000);

const targets: Target[] = [];
const clients: postgres.Sql[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end({ timeout: 1 });
  for (const t of targets.splice(0)) await t.destroy();
});

/** A client of one connection whose sockets the test holds (postgres.js's `socket` option), with a short connect timeout. */
async function client() {
  const t = await newTarget('server');
  targets.push(t);
  const url = new URL(t.env.DATABASE_URL!);
  const sockets: Socket[] = [];
  // `socket` is a documented option (a function returning the socket) that the types leave out.
  const options = {
    max: 1,
    connect_timeout: 3,
    onnotice: () => {},
    socket: () => {
      const s = connect(Number(url.port), url.hostname);
      sockets.push(s);
      return s;
    },
  };
  const sql = postgres(url.toString(), options);
  clients.push(sql);
  return { sql, sockets };
}

describe.skipIf(!engines.includes('server'))('database connections [server]', () => {
  // The writer's connection after a database restart: with postgres.js 3.4.9 as published, a socket
  // that closed while a statement waited in its write buffer left that buffer behind, and every later
  // connection's start-up message queued behind it, never sent: each attempt ended in CONNECT_TIMEOUT
  // (10 s) until the stale bytes passed 1 KB. Seen in the outage test: 50 s without a write after the
  // database was back (upstream: LanternOps/breeze#3225, porsager/postgres#1208).
  test('a socket that dies while a statement waits in the write buffer: the statement fails, the next connects and answers', async () => {
    const { sql, sockets } = await client();
    expect([...(await sql`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
    // onexecute runs right after the statement went into the buffer, which is flushed by a
    // setImmediate. The socket dies on the next tick, before that flush, its 'close' delivered at
    // once: as when the server's FIN arrives in the same turn of the event loop as the reply that let
    // the statement go (Bun delivers a local destroy's 'close' only after the immediates).
    const kill = () => {
      const s = sockets.at(-1)!;
      process.nextTick(() => {
        s.destroy();
        s.emit('close', false);
      });
      return true;
    };
    const dying = sql.unsafe('SELECT 2 AS two', [], { onexecute: kill } as never);
    await expect(dying).rejects.toThrow(/CONNECTION_CLOSED|CONNECTION_DESTROYED|ECONNRESET/);
    expect([...(await sql`SELECT 3 AS three`)]).toEqual([{ three: 3 }]);
    expect(sockets.length).toBe(2);
  });

  // The same driver wrote to a socket it had already let go (a statement sent in the turn its socket
  // closed): a TypeError thrown from a timer, which nothing can catch, ended the process
  // (porsager/postgres#1208). The patch refuses that statement instead.
  test('a statement written after its socket is gone is refused with CONNECTION_CLOSED, and the process goes on', async () => {
    const { sql, sockets } = await client();
    expect([...(await sql`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
    const uncaught: unknown[] = [];
    const onError = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onError);
    try {
      // The socket's 'close' inside the statement's own send: the statement after it is written to
      // a connection without a socket.
      const kill = () => {
        const s = sockets.at(-1)!;
        s.destroy();
        s.emit('close', false);
        return true;
      };
      await expect(sql.unsafe('SELECT 2 AS two', [], { onexecute: kill } as never)).rejects.toThrow(/CONNECTION_CLOSED/);
      await expect(sql`SELECT 3 AS three`).rejects.toThrow(/CONNECTION_CLOSED/);
      await Bun.sleep(50);
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(uncaught).toEqual([]);
  });

  // The driver's own wait before a reconnect grows with each failed one (3^n / 100 s, up to 20 s):
  // after a minute's outage the writers' first write came 9.6 s after the database was back
  // (a scratch run; 1.7 s with the engine's short wait). The batcher already paces its retries.
  test('after failed reconnects, the engine connects again within about a second of the database coming back', async () => {
    const cluster = await privateCluster();
    const engine = openServer(cluster.url, 1);
    try {
      expect(await engine.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      await cluster.pause();
      // Seven refusals: the published backoff would then wait 10-20 s before the eighth attempt.
      for (let i = 0; i < 7; i++) await expect(engine.query('SELECT 1 AS one')).rejects.toThrow(/ECONNREFUSED|CONNECTION_CLOSED|57P01|shutting down/);
      await cluster.resume();
      const back = performance.now();
      expect(await engine.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
      expect(performance.now() - back).toBeLessThan(4_000);
    } finally {
      await engine.close();
      await cluster.stop();
    }
  });
});
