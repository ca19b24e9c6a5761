// The write path (src/store/write.ts) against the real engines: COPY stores exactly what the INSERT
// path stores, a COPY the database refuses leaves nothing behind and the INSERT path names the
// duplicates and quarantines the refused row, and what is not in the receivers' layout still lands.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/log';
import { makeEventValidator, type ValidEvent } from '../src/receive/validate';
import type { Engine } from '../src/store/engine';
import { migrate } from '../src/store/migrate';
import { copyText } from '../src/store/record';
import { COPY_MIN_ROWS, insertRecords, writeRecords, type InsertResult } from '../src/store/write';
import { engines, newTarget, type Target } from './harness';

setDefaultTimeout(60_000);

const validate = makeEventValidator(loadConfig({}).limits);
const record = (e: object) => {
  const v = validate(e);
  if (Array.isArray(v)) throw new Error(JSON.stringify(v));
  return v as ValidEvent;
};
const batch = (events: ValidEvent[]) => `[${events.map((e) => e.record).join(',')}]`;
const fresh = (): InsertResult => ({ inserted: 0, duplicates: [], rejected: [] });
// These batches are small; the service sends batches this small to the INSERT (COPY_MIN_ROWS).
const COPY_ALWAYS = { copyMinRows: 1 };

// Text that COPY's format and JSON's escapes treat differently if the conversion is wrong.
const TRICKY = [
  'tab\there, newline\nthere, carriage\rreturn',
  'quote " backslash \\ slash / and a backslash before n: \\n (two characters)',
  'C:\\users\\new\\table \\u0041 (not an escape: the backslash is text)',
  'unicode é ✓ 😀 \u2028 and a lone \\. on its own',
  '\\.',
  '',
];
const TRICKY_META = [{ path: 'C:\\temp\\x', quote: 'say "hi"', tab: 'a\tb', nl: 'a\nb' }, { nested: [{ id: 'not-the-event-id' }, { '}],{"id":"': 1 }] }, {}];

describe.each(engines)('write path [%s]', (kind) => {
  let target: Target;
  let engine: Engine;
  beforeAll(async () => {
    target = await newTarget(kind);
    engine = await target.open();
    await migrate(engine, createLogger('silent'));
  });
  afterAll(async () => {
    await engine.close();
    await target.destroy();
  });

  const stored = (service: string) =>
    engine.query<{ message: string; metadata: string }>(
      `SELECT message, metadata::text AS metadata FROM events WHERE service = $1 ORDER BY message, metadata::text`,
      [service],
    );

  test('COPY stores messages and metadata exactly as the INSERT path does', async () => {
    const events = (service: string) => TRICKY.flatMap((message) => TRICKY_META.map((metadata) => record({ service, message, metadata })));
    const viaCopy = events('copy-text');
    const viaInsert = events('insert-text');
    expect(copyText(batch(viaCopy))).not.toBeNull();
    const r = fresh();
    await writeRecords(engine, batch(viaCopy), viaCopy.length, r, COPY_ALWAYS);
    expect(r).toMatchObject({ inserted: viaCopy.length, copied: viaCopy.length, duplicates: [], rejected: [] });
    await insertRecords(engine, batch(viaInsert), viaInsert.length, 0, fresh());
    const a = await stored('copy-text');
    expect(a.length).toBe(TRICKY.length * TRICKY_META.length);
    expect(a).toEqual(await stored('insert-text'));
    expect(a.map((x) => x.message).sort()).toEqual(viaCopy.map((e) => JSON.parse(e.record).message).sort());
  });

  test('a batch holding an already-stored event: the COPY is refused, no second row, that event named as a duplicate', async () => {
    const first = [0, 1, 2].map((i) => record({ service: 'dup-copy', message: `m${i}` }));
    const r1 = fresh();
    await writeRecords(engine, batch(first), 3, r1, COPY_ALWAYS);
    expect(r1).toMatchObject({ inserted: 3, copied: 3, duplicates: [] });
    const again = [record({ service: 'dup-copy', message: 'new a' }), first[1]!, record({ service: 'dup-copy', message: 'new b' })];
    const r2 = fresh();
    await writeRecords(engine, batch(again), 3, r2, COPY_ALWAYS);
    expect(r2).toMatchObject({ inserted: 2, duplicates: [1], rejected: [] });
    expect(r2.copied ?? 0).toBe(0);
    const [n] = await engine.query<{ rows: number; ids: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids FROM events WHERE service = 'dup-copy'`,
    );
    expect(n).toEqual({ rows: 5, ids: 5 });
  });

  test('a value the database refuses in a COPY batch: the others are stored and that record is quarantined', async () => {
    const good = [0, 1, 2].map((i) => record({ service: 'refused-copy', message: `ok ${i}` }));
    // An id the receivers would never write: the layout holds, the uuid column refuses it.
    const bad = good[1]!.record.replace(/"id":"[^"]+"/, '"id":"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"');
    const json = `[${good[0]!.record},${bad},${good[2]!.record}]`;
    expect(copyText(json)).not.toBeNull();
    const r = fresh();
    await writeRecords(engine, json, 3, r, COPY_ALWAYS);
    expect(r.inserted).toBe(2);
    expect(r.rejected.map((x) => [x.index, x.code])).toEqual([[1, '22P02']]);
    const [q] = await engine.query<{ n: number }>(`SELECT count(*)::int AS n FROM events_rejected WHERE record::text LIKE '%zzzzzzzz-zzzz%'`);
    expect(q!.n).toBe(1);
  });

  test('a batch below COPY_MIN_ROWS goes to the INSERT, one at or above it to the COPY', async () => {
    const small = Array.from({ length: COPY_MIN_ROWS - 1 }, (_, i) => record({ service: 'copy-min', message: `s${i}` }));
    const big = Array.from({ length: COPY_MIN_ROWS }, (_, i) => record({ service: 'copy-min', message: `b${i}` }));
    const a = fresh();
    await writeRecords(engine, batch(small), small.length, a);
    expect(a).toMatchObject({ inserted: small.length, duplicates: [] });
    expect(a.copied ?? 0).toBe(0);
    const b = fresh();
    await writeRecords(engine, batch(big), big.length, b);
    expect(b).toMatchObject({ inserted: big.length, copied: big.length });
  });

  test("a record outside the receivers' layout is still written, through the INSERT path", async () => {
    const id = Bun.randomUUIDv7();
    const json = `[{"service":"other-layout","time":"2026-01-02T03:04:05.000Z","id":"${id}","message":"fields in another order","metadata":{}}]`;
    expect(copyText(json)).toBeNull();
    const r = fresh();
    await writeRecords(engine, json, 1, r, COPY_ALWAYS);
    expect(r).toMatchObject({ inserted: 1, duplicates: [], rejected: [] });
    expect(r.copied ?? 0).toBe(0);
    expect(await stored('other-layout')).toEqual([{ message: 'fields in another order', metadata: '{}' }]);
  });
});
