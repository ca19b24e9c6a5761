import { describe, expect, test } from 'bun:test';
import { EventQueue, readBatch } from '../src/store/queue';

const rec = (i: number, pad = '') => JSON.stringify({ i, pad });

describe('shared-memory queue', () => {
  test('a claimed batch reads back as a JSON array of the records, in order', () => {
    const q = new EventQueue(10, 1024);
    for (let i = 0; i < 4; i++) expect(q.push(rec(i))).toBe(true);
    const b = q.claim(3)!;
    expect(b.count).toBe(3);
    expect(JSON.parse(readBatch(new Uint8Array(q.sab), b))).toEqual([0, 1, 2].map((i) => ({ i, pad: '' })));
    expect(q.pending).toBe(1);
    expect(q.depth).toBe(4);
  });

  test('is bounded by events and by bytes, and space returns only on release', () => {
    const q = new EventQueue(3, 64);
    expect([q.push('{"a":1}'), q.push('{"a":2}'), q.push('{"a":3}'), q.push('{"a":4}')]).toEqual([true, true, true, false]);
    const b = q.claim(3)!;
    expect(q.push('{"a":4}')).toBe(false); // claimed is not released
    q.release(b);
    expect(q.depth).toBe(0);
    expect([q.push('{"a":5}'), q.push('{"a":6}'), q.push('{"a":7}'), q.push('{"a":8}')]).toEqual([true, true, true, false]); // the space came back
    expect(q.push('x'.repeat(70))).toBe(false); // more bytes than the ring holds
  });

  test('records that wrap around the end of the ring, multi-byte characters included, read back intact', () => {
    const q = new EventQueue(100, 100);
    const bytes = new Uint8Array(q.sab);
    const seen: unknown[] = [];
    for (let round = 0; round < 50; round++) {
      const records = [rec(round, 'é✓😀'.repeat(round % 5)), rec(round + 1000)];
      for (const r of records) expect(q.push(r)).toBe(true);
      const b = q.claim(10)!;
      seen.push(...(JSON.parse(readBatch(bytes, b)) as unknown[]));
      q.release(b);
    }
    expect(seen.length).toBe(100);
    expect(seen[99]).toEqual({ i: 1049, pad: '' });
    expect(seen[98]).toEqual({ i: 49, pad: 'é✓😀'.repeat(4) });
  });

  test('batches must be released in claim order', () => {
    const q = new EventQueue(10, 1024);
    q.push('{}');
    q.push('{}');
    const a = q.claim(1)!;
    const b = q.claim(1)!;
    expect(() => q.release(b)).toThrow(/out of order/);
    q.release(a);
    q.release(b);
    expect(q.depth).toBe(0);
  });
});
