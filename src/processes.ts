// HTTP_PROCESSES > 1 (server engine): this process supervises N service processes that share one
// port (SO_REUSEPORT: the kernel spreads connections among them), each with its own queue, writers
// and main thread; it restarts one that dies, and on SIGTERM/SIGINT passes the signal on and exits
// once every process has written or saved what it accepted. Processes see each other through
// private ports (observe/peers.ts) to report the whole service in /metrics and /health/buffer.
import { createServer } from 'node:net';
import type { Config } from './config';
import type { Logger } from './log';

/** A port nobody listens on right now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function supervise(config: Config, log: Logger): Promise<never> {
  const n = config.httpProcesses;
  const port = config.port || (await freePort());
  const peerPorts = await Promise.all(Array.from({ length: n }, freePort));
  const token = crypto.randomUUID();
  const children: (ReturnType<typeof Bun.spawn> | null)[] = Array(n).fill(null);
  const restarts = Array(n).fill(0);
  let stopping = false;

  const start = (i: number) => {
    const child = Bun.spawn([process.execPath, Bun.main], {
      env: { ...process.env, PORT: String(port), AURORE_PROCESS_INDEX: String(i), AURORE_PEER_PORTS: peerPorts.join(','), AURORE_PEER_TOKEN: token },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children[i] = child;
    void child.exited.then((code) => {
      children[i] = null;
      if (stopping) return;
      // A process that died (out of memory, a crash) is replaced; its accepted events were written
      // or saved, or, after a kill, lost as docs/api.md explains for a single process.
      const delay = Math.min(30_000, 1000 * 2 ** restarts[i]++);
      log.error('a service process exited; starting another', { process: i, code, inMs: delay });
      setTimeout(() => !stopping && start(i), delay);
    });
  };
  log.info('starting service processes on one port', { processes: n, port, engine: config.engine });
  for (let i = 0; i < n; i++) start(i);

  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping the service processes', { signal });
    const running = children.filter((c): c is NonNullable<typeof c> => c !== null);
    for (const c of running) c.kill(signal);
    const codes = await Promise.all(running.map((c) => c.exited));
    process.exit(codes.every((c) => c === 0) ? 0 : 1);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return new Promise<never>(() => {});
}
