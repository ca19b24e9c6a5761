import { describe, expect, test } from 'bun:test';
import { loadConfig } from '../src/config';
import { parseTimestamp } from '../src/event';
import { makeEventValidator } from '../src/receive/validate';

describe('timestamps', () => {
  test('ISO-8601 with Z or an offset is normalized to UTC', () => {
    expect(parseTimestamp('2024-01-15T10:30:00.000Z')).toBe('2024-01-15T10:30:00.000Z');
    expect(parseTimestamp('2024-01-15T10:30:00+02:00')).toBe('2024-01-15T08:30:00.000Z');
    expect(parseTimestamp('2024-01-15T10:30:00.123456-0530')).toBe('2024-01-15T16:00:00.123Z');
    expect(parseTimestamp('2024-01-15T10:30Z')).toBe('2024-01-15T10:30:00.000Z');
    expect(parseTimestamp('2024-02-29T00:00:00Z')).toBe('2024-02-29T00:00:00.000Z');
  });
  test('no offset, impossible dates and non-dates are refused', () => {
    for (const s of [
      '2024-01-15T10:30:00',
      '2023-02-29T00:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-01-15T24:00:00Z',
      'now',
      '',
      '0999-01-01T00:00:00Z',
      '2024-01-15T10:30:00+25:00',
    ]) {
      expect(parseTimestamp(s)).toBeNull();
    }
  });
});

describe('event records', () => {
  const validate = makeEventValidator(loadConfig({}).limits);
  test('a valid event becomes a JSON record that parses back to what was sent', () => {
    const r = validate({
      service: 'svc.a:b-c_d',
      message: 'q"uo\\te\n',
      metadata: { a: [1, { b: null }] },
      timestamp: '2024-01-15T10:30:00Z',
      extra: 'ignored',
    });
    if (Array.isArray(r)) throw new Error(JSON.stringify(r));
    expect(JSON.parse(r.record)).toEqual({
      id: r.id,
      time: '2024-01-15T10:30:00.000Z',
      service: 'svc.a:b-c_d',
      message: 'q"uo\\te\n',
      metadata: { a: [1, { b: null }] },
    });
  });
  test('a service holds only letters, digits and . _ : - (the characters between Z and a, a backslash among them, are refused)', () => {
    for (const bad of ['x\\', 'a[b', 'a]b', 'a^b', 'a`b', 'a b', 'a/b', 'a%b', 'a*b', 'é']) {
      const r = validate({ service: bad, message: 'm' });
      expect({ bad, fields: Array.isArray(r) ? r.map((e) => e.field) : r.record }).toEqual({ bad, fields: ['service'] });
    }
    for (const good of ['Az09', 'a.b_c:d-e', 'Z', 'a'])
      expect({ good, ok: !Array.isArray(validate({ service: good, message: 'm' })) }).toEqual({ good, ok: true });
  });
  test('control characters are refused except tab, newline and carriage return', () => {
    for (const bad of ['a\u0001b', 'bell\u0007', 'back\bspace', 'form\ffeed', 'esc\u001b[31m', 'nul\u0000']) {
      const r = validate({ service: 's', message: bad, metadata: { k: 'ok' } });
      expect(Array.isArray(r) && r.map((e) => e.field)).toEqual(['message']);
      const m = validate({ service: 's', message: 'ok', metadata: { k: bad } });
      expect(Array.isArray(m) && m.map((e) => e.field)).toEqual(['metadata']);
    }
    expect(Array.isArray(validate({ service: 's', message: 'tab\there\nnew line\r\n', metadata: { k: 'a\tb' } }))).toBe(false);
  });
  test('a literal backslash-u0000 in text is data, not a NUL', () => {
    const r = validate({ service: 's', message: 'path\\u0000x and C:\\bin\\f', metadata: { k: '\\ud800' } });
    expect(Array.isArray(r)).toBe(false);
  });
  test('each event gets a distinct time-ordered UUIDv7', () => {
    const ids = Array.from({ length: 100 }, () => (validate({ service: 's', message: 'm' }) as { id: string }).id);
    expect(new Set(ids).size).toBe(100);
    expect(ids.every((id) => id[14] === '7')).toBe(true);
  });
  test('an event older than RETENTION_DAYS is refused, naming the setting; one just inside is accepted', () => {
    const v = makeEventValidator(loadConfig({}).limits, { maxAgeDays: 30 });
    const at = (ms: number) => v({ service: 's', message: 'm', timestamp: new Date(Date.now() - ms).toISOString() });
    expect(at(30 * 86_400_000 + 60_000)).toEqual([{ field: 'timestamp', message: expect.stringContaining('older than RETENTION_DAYS (30 days)') }]);
    expect(Array.isArray(at(30 * 86_400_000 - 60_000))).toBe(false);
    expect(Array.isArray(v({ service: 's', message: 'm' }))).toBe(false); // no timestamp: now
  });

  test('limits come from configuration', () => {
    const v = makeEventValidator(loadConfig({ MESSAGE_MAX_LENGTH: '5', SERVICE_NAME_MAX_LENGTH: '3', METADATA_MAX_BYTES: '10' }).limits);
    const errs = v({ service: 'abcd', message: '123456', metadata: { k: 'too long' } });
    expect(Array.isArray(errs) && errs.map((e) => e.field).sort()).toEqual(['message', 'metadata', 'service']);
  });
});
