// CPU time from /proc, for the benchmark's "events per CPU-second": the service (its process and
// every process under it: HTTP_PROCESSES' children, and with them all their threads) and the
// database server (every process named postgres). The load generator is counted in neither.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ: clock ticks per second in /proc/<pid>/stat on Linux

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number; // utime + stime
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' '); // f[0] is field 3 (state)
      out.push({ pid: Number(d), ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // it exited meanwhile
    }
  }
  return out;
}

export interface CpuSample {
  service: number; // seconds
  database: number;
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
  return { service: sum(all.filter((p) => mine.has(p.pid))), database: database ? sum(all.filter((p) => p.comm === 'postgres')) : 0 };
}

/** Events per CPU-second between two samples: service and database together, and each alone. */
export function perCpuSecond(events: number, a: CpuSample, b: CpuSample) {
  const service = b.service - a.service;
  const database = b.database - a.database;
  const round = (x: number) => (x > 0 ? Math.round(events / x) : null);
  return { service_cpu_s: Math.round(service * 100) / 100, database_cpu_s: Math.round(database * 100) / 100, events_per_cpu_s: round(service + database), events_per_service_cpu_s: round(service), events_per_database_cpu_s: round(database) };
}
