// Entry point: parse config, build the service, serve it, stop gracefully on SIGTERM/SIGINT.
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger } from './log';
import { peersFromEnv } from './observe/peers';
import { supervise } from './processes';
import { createService, type Service } from './service';
import { DataDirLocked } from './store/lock';

let config: Config;
try {
  config = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(e.message);
    process.exit(2);
  }
  throw e;
}

const peers = peersFromEnv();
const log = createLogger(config.logLevel, undefined, config.logFormat, peers ? { process: peers.index } : {});
if (config.httpProcesses > 1 && !peers) await supervise(config, log); // never returns

let service: Service;
try {
  service = createService(config, { log, peers });
} catch (e) {
  if (e instanceof DataDirLocked) {
    console.error(e.message);
    process.exit(2);
  }
  throw e;
}
const server = Bun.serve({
  port: config.port,
  hostname: config.host,
  reusePort: peers !== null, // HTTP_PROCESSES: the siblings share the port
  fetch: service.app.fetch,
  // Never Bun's development error pages (stack traces) whatever NODE_ENV says: errors are the app's own JSON.
  development: false,
  // Bun's own cap, above every receiver's (a batch's BATCH_MAX_BYTES is the largest): oversize
  // bodies get our JSON 413 naming the limit from the app, not Bun's bare 413 and a closed connection.
  maxRequestBodySize: Math.max(config.limits.bodyMaxBytes, config.limits.batchMaxBytes) * 4,
  // Bun closes a connection that sends nothing for idleTimeout seconds (10 by default), and a
  // request waiting for its answer counts as idle: without this a ?wait=true (WAIT_TIMEOUT_MS) or a
  // slow query (REQUEST_TIMEOUT_MS) would be cut off at 10 s instead of getting its answer. 255 is Bun's maximum.
  idleTimeout: Math.min(255, Math.ceil(Math.max(config.requestTimeoutMs, config.waitTimeoutMs) / 1000) + 5),
});
if (config.apiKeys.length === 0) {
  log.warn('open development mode: no API keys configured, every route is open', { host: config.host });
} else log.info('API keys loaded', { keys: config.apiKeys.map((k) => `${k.name}(${k.scopes.join('+')})`) });
log.info('listening', { url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port}`, engine: config.engine });

let exiting = false;
async function shutdown(signal: string) {
  if (exiting) return;
  exiting = true;
  log.info('shutting down', { signal });
  // The order matters: stop taking events (the app answers 503 while draining), let requests in
  // flight finish, then write what was accepted. Requests get half of SHUTDOWN_TIMEOUT_MS: a client
  // trickling its body kept the process for REQUEST_TIMEOUT_MS (60 s), past an orchestrator's grace
  // period (30 s), whose SIGKILL would then take the queue before it was written or saved.
  const deadline = Date.now() + config.shutdownTimeoutMs;
  service.state.draining = true;
  const inFlight = server.stop();
  if (!(await Promise.race([inFlight.then(() => true), Bun.sleep(config.shutdownTimeoutMs / 2).then(() => false)]))) {
    log.warn('shutdown: requests still in flight; closing their connections', { afterMs: config.shutdownTimeoutMs / 2 });
    await server.stop(true);
  }
  const { unwritten, spilled } = await service.stop({ drainMs: Math.max(1000, deadline - Date.now()) });
  // Exit 0 when every accepted event is in the database or saved for the next start.
  process.exit(unwritten === spilled ? 0 : 1);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
// A process of HTTP_PROCESSES outlives a supervisor killed outright (SIGKILL, the OOM killer): it
// would go on serving the shared port beside the next start's processes, supervised by nobody. It
// notices within a second (it is handed to another parent) and stops as on SIGTERM.
if (peers) {
  const supervisor = process.ppid;
  setInterval(() => process.ppid !== supervisor && void shutdown('supervisor gone'), 1000).unref();
}
