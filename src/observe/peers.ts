// The sibling processes of HTTP_PROCESSES > 1: each serves the public port (the kernel spreads
// connections, SO_REUSEPORT) and a private one on 127.0.0.1 where its siblings read its metrics and
// queue figures, so that /metrics and /health/buffer answer for the whole service whichever process
// the kernel handed the request to. The private port answers only requests carrying the token the
// supervisor gave every process (processes.ts).
import { timingSafeEqual } from 'node:crypto';

export interface Peers {
  index: number; // this process
  ports: number[]; // every process's private port, by index
  token: string;
}

const HEADER = 'x-aurore-peer';

/** The peers from the supervisor's environment, or null in a single process. */
export function peersFromEnv(env: Record<string, string | undefined> = process.env): Peers | null {
  if (env.AURORE_PROCESS_INDEX === undefined || !env.AURORE_PEER_PORTS || !env.AURORE_PEER_TOKEN) return null;
  return { index: Number(env.AURORE_PROCESS_INDEX), ports: env.AURORE_PEER_PORTS.split(',').map(Number), token: env.AURORE_PEER_TOKEN };
}

/** Serves this process's figures to its siblings. */
export function servePeers(peers: Peers, figures: Record<string, () => unknown | Promise<unknown>>) {
  const token = Buffer.from(peers.token);
  return Bun.serve({
    hostname: '127.0.0.1',
    port: peers.ports[peers.index]!,
    async fetch(req) {
      const given = Buffer.from(req.headers.get(HEADER) ?? '');
      const read = figures[new URL(req.url).pathname.replace(/^\/peer\//, '')];
      if (given.length !== token.length || !timingSafeEqual(given, token) || !read) return new Response('not found', { status: 404 });
      return Response.json(await read());
    },
  });
}

/** The same figure from every sibling that answers within a second (not this process's own). */
export async function fromSiblings<T>(peers: Peers, figure: string): Promise<T[]> {
  const others = peers.ports.filter((_, i) => i !== peers.index);
  const answers = await Promise.all(
    others.map((port) =>
      fetch(`http://127.0.0.1:${port}/peer/${figure}`, { headers: { [HEADER]: peers.token }, signal: AbortSignal.timeout(1000) })
        .then((r) => (r.ok ? (r.json() as Promise<T>) : null))
        .catch(() => null),
    ),
  );
  return answers.filter((a): a is Awaited<T> => a !== null) as T[];
}
