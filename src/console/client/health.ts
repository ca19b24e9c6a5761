// The health strip: queue use, database latency and edition, failing maintenance jobs, from the
// admin health routes. A key without the admin scope (or no key where one is needed) hides it.
import { getJson, HttpError } from './api';

interface Buffer {
  depth: number;
  capacity: number;
  utilization: number;
  breaker: string;
}
interface Database {
  connected: boolean;
  latencyMs?: number;
  engine: string;
  edition?: string;
  jobs?: { name: string; lastError: string | null }[];
}

function item(label: string, value: string, bad = false) {
  const span = document.createElement('span');
  span.className = bad ? 'item bad' : 'item';
  const b = document.createElement('b');
  b.textContent = label;
  span.append(b, ` ${value}`);
  return span;
}

/** Fills the strip; resolves false when the key may not see it (the strip is then hidden). */
export async function showHealth(el: HTMLElement): Promise<boolean> {
  let buffer: Buffer;
  let db: Database;
  try {
    [buffer, db] = await Promise.all([
      getJson<Buffer>('/health/buffer'),
      getJson<Database>('/health/database').catch((e) => {
        if (e instanceof HttpError && e.status === 503) return { connected: false, engine: '?' } as Database;
        throw e;
      }),
    ]);
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) {
      el.hidden = true;
      return false;
    }
    throw e;
  }
  const failing = (db.jobs ?? []).filter((j) => j.lastError);
  el.replaceChildren(
    item(
      'Queue',
      `${Math.round(buffer.utilization * 100)}% (${buffer.depth.toLocaleString('en')} of ${buffer.capacity.toLocaleString('en')})`,
      buffer.utilization > 0.8 || buffer.breaker !== 'closed',
    ),
    item('Database', db.connected ? `${db.latencyMs} ms, ${db.engine}${db.edition ? `, ${db.edition}` : ''}` : 'not answering', !db.connected),
    item('Jobs', failing.length ? `failing: ${failing.map((j) => j.name).join(', ')}` : 'ok', failing.length > 0),
  );
  el.hidden = false;
  return true;
}
