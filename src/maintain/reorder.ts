// "reorder events", on every edition: CLUSTER each closed, uncompressed raw chunk by (service, time),
// one chunk per transaction, an hour after it closes (no longer the insert target). Services
// interleave in arrival order; rewritten, a service's day is a few pages instead of a page per event
// (search and metadata filters read every candidate row, so locality is what makes them fast).
import type { Engine } from '../store/engine';

const MAX_CHUNKS_PER_RUN = 50;

export function reorder(engine: Engine, stopped: () => boolean) {
  return async (): Promise<string> => {
    // Embedded, every statement waits while a chunk is rewritten (one session): at most 30 s of it
    // per run, the rest at the next. The server locks only the chunk being rewritten.
    const budgetMs = engine.kind === 'embedded' ? 30_000 : Infinity;
    const started = Date.now();
    const done: string[] = [];
    while (!stopped() && done.length < MAX_CHUNKS_PER_RUN && Date.now() - started < budgetMs) {
      const [row] = await engine.query<{ chunk: string | null }>(`SELECT aurore_reorder_chunk(INTERVAL '1 hour') AS chunk`);
      if (!row?.chunk) break;
      done.push(row.chunk);
    }
    return `${done.length} chunks reordered by service`;
  };
}
