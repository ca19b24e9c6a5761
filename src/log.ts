// Structured JSON logs, one object per line on stdout (errors included, so one stream carries the
// order of events). Callers never pass secrets: URLs are logged through `redactUrl`.
type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

function serializeError(e: unknown) {
  if (e instanceof Error) return { name: e.name, message: e.message, code: (e as { code?: string }).code, stack: e.stack };
  return e;
}

function stdout(line: string) {
  try {
    process.stdout.write(line + '\n');
  } catch {
    // stdout closed (the reader went away): losing a log line must not take the service down
  }
}

export function createLogger(level: Level, write: (line: string) => void = stdout): Logger {
  const min = rank[level];
  const emit = (lvl: Exclude<Level, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    if (rank[lvl] < min) return;
    const f = fields && 'err' in fields ? { ...fields, err: serializeError(fields.err) } : fields;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...f }));
  };
  return {
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
    return `${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}
