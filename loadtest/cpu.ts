// CPU time from /proc, for the benchmark's "events per CPU-second": the service (its process and
// every process under it: HTTP_PROCESSES' children, and with them all their threads) and the
// database server (every process named postgres). The load generator is counted in neither.
// The service's share is also split by thread, to show which stage is the limit: the main threads
// (HTTP, validation, the queue), the writer threads (piscina's, named "Worker"; on the embedded
// engine PGlite runs in them) and the runtime's own (JIT compilers, garbage collector, I/O pool).
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ: clock ticks per second in /proc/<pid>/stat on Linux

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number; // utime + stime
}

/** One /proc stat file (a process's or a thread's), or null when it exited meanwhile. */
function readStat(path: string, pid: number): Proc | null {
  try {
    const stat = readFileSync(path, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' '); // f[0] is field 3 (state)
    return { pid, ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = readStat(`/proc/${d}/stat`, Number(d));
    if (p) out.push(p);
  }
  return out;
}

export interface ThreadCpu {
  main: number; // seconds: each process's first thread
  writers: number; // the writer threads
  runtime: number; // every other thread
}

/** A process's CPU by kind of thread (a thread's ticks count from its start: exited ones drop out). */
function threadsOf(pid: number, into: ThreadCpu) {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    const t = readStat(`/proc/${pid}/task/${tid}/stat`, Number(tid));
    if (!t) continue;
    const kind = t.pid === pid ? 'main' : t.comm === 'Worker' ? 'writers' : 'runtime';
    into[kind] += t.ticks / TICKS;
  }
}

export interface CpuSample {
  service: number; // seconds
  database: number;
  threads: ThreadCpu; // the service's, by kind
}

/**
 * CPU seconds used so far by the service rooted at `pid` and by the database server. `database`
 * false (the embedded engine, whose database runs inside the service): postgres processes on this
 * machine belong to something else and are not counted.
 */
export function cpuNow(pid: number, database = true): CpuSample {
  const all = processes();
  const mine = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (mine.has(p.ppid) && !mine.has(p.pid)) mine.add(p.pid) && (grew = true);
  }
  const sum = (ps: Proc[]) => ps.reduce((n, p) => n + p.ticks, 0) / TICKS;
  const threads: ThreadCpu = { main: 0, writers: 0, runtime: 0 };
  for (const p of mine) threadsOf(p, threads);
  return { service: sum(all.filter((p) => mine.has(p.pid))), database: database ? sum(all.filter((p) => p.comm === 'postgres')) : 0, threads };
}

/**
 * Events per CPU-second between two samples: service and database together, and each alone; and
 * the microseconds of CPU each kind of thread (and the database) spent per event.
 */
export function perCpuSecond(events: number, a: CpuSample, b: CpuSample) {
  const service = b.service - a.service;
  const database = b.database - a.database;
  const round = (x: number) => (x > 0 ? Math.round(events / x) : null);
  const us = (s: number) => (events > 0 ? Math.round((Math.max(0, s) * 1e7) / events) / 10 : null);
  const t = (k: keyof ThreadCpu) => b.threads[k] - a.threads[k];
  return {
    service_cpu_s: Math.round(service * 100) / 100,
    database_cpu_s: Math.round(database * 100) / 100,
    events_per_cpu_s: round(service + database),
    events_per_service_cpu_s: round(service),
    events_per_database_cpu_s: round(database),
    us_per_event: {
      main_threads: us(t('main')),
      writer_threads: us(t('writers')),
      runtime_threads: us(t('runtime')),
      database: database > 0 ? us(database) : null,
    },
  };
}
