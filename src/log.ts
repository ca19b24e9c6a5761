// Structured logs: one JSON object per line on stdout (errors too, so one stream keeps the order of
// events), or a short human form on a terminal in development. Lines are buffered and written once
// per event-loop turn: at thousands of requests a second, a write per line would cost a syscall each.
// Callers never pass secrets: URLs are logged through `redactUrl`, keys by name.
import { isoNow } from './event';

type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /**
   * The hot path's variant: `fields` is an already-serialized JSON member list ("a":1,"b":"x"), built
   * by a caller that knows its values need no escaping. Skips an object spread and JSON.stringify.
   */
  fields(level: 'info' | 'error', msg: string, fields: string): void;
}

function serializeError(e: unknown) {
  if (e instanceof Error) return { name: e.name, message: e.message, code: (e as { code?: string }).code, stack: e.stack };
  return e;
}

let pending: string[] = [];
let scheduled = false;
function flush() {
  scheduled = false;
  if (!pending.length) return;
  const text = `${pending.join('\n')}\n`;
  pending = [];
  try {
    process.stdout.write(text);
  } catch {
    // stdout closed (the reader went away): losing log lines must not take the service down
  }
}
process.on('exit', flush);

function stdout(line: string) {
  pending.push(line);
  if (pending.length >= 512) flush();
  else if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

const COLORS: Record<string, string> = { debug: '\x1b[90m', info: '\x1b[36m', warn: '\x1b[33m', error: '\x1b[31m' };

function pretty(o: Record<string, unknown>) {
  const { time, level, msg, err, ...rest } = o as { time: string; level: string; msg: string; err?: { stack?: string; message?: string } };
  const kv = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const head = `${time.slice(11, 23)} ${COLORS[level] ?? ''}${level.padEnd(5)}\x1b[0m ${msg} ${kv.join(' ')}`;
  return err ? `${head}\n  ${err.stack ?? err.message}` : head;
}

/** `base`: fields on every line (the process index when HTTP_PROCESSES > 1). */
export function createLogger(
  level: Level,
  write: (line: string) => void = stdout,
  format: 'json' | 'pretty' = 'json',
  base: Record<string, unknown> = {},
): Logger {
  const min = rank[level];
  const baseJson = Object.keys(base).length ? `${JSON.stringify(base).slice(1, -1)},` : '';
  const emit = (lvl: Exclude<Level, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    if (rank[lvl] < min) return;
    const f = fields && 'err' in fields ? { ...fields, err: serializeError(fields.err) } : fields;
    const o = { time: isoNow(), level: lvl, msg, ...base, ...f };
    write(format === 'pretty' ? pretty(o) : JSON.stringify(o));
  };
  return {
    fields: (lvl, m, f) => {
      if (rank[lvl] < min) return;
      if (format === 'pretty') return emit(lvl, m, JSON.parse(`{${f}}`) as Record<string, unknown>);
      write(`{"time":"${isoNow()}","level":"${lvl}","msg":${JSON.stringify(m)},${baseJson}${f}}`);
    },
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** host:port/db of a connection URL, without user or password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}
