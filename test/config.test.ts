import { describe, expect, test } from 'bun:test';
import { ConfigError, loadConfig } from '../src/config';
import { availableParallelism } from 'node:os';

describe('configuration', () => {
  test('every setting has a default: an empty environment gives a working embedded config', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      engine: 'embedded',
      dataDir: './data',
      queue: { maxEvents: 100_000 },
      batch: { size: 5000, writers: Math.max(2, Math.min(8, availableParallelism())) }, // WRITERS=auto: one per CPU, 2 to 8
      retryAfterSeconds: 5,
      limits: { serviceMaxLength: 100, messageMaxLength: 2000, metadataMaxBytes: 16384, defaultQueryLimit: 100, maxQueryLimit: 1000 },
    });
    expect(Object.isFrozen(c) && Object.isFrozen(c.limits)).toBe(true);
  });

  test('DATABASE_URL selects the server engine; empty strings count as unset', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/x' }).engine).toBe('server');
    expect(loadConfig({ DATABASE_URL: '', PORT: '' })).toMatchObject({ engine: 'embedded', port: 3000 });
  });

  test('a bad value fails fast naming the variable and the value', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT.*"eighty"/s);
    expect(() => loadConfig({ BATCH_SIZE: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig({ DEFAULT_QUERY_LIMIT: '500', MAX_QUERY_LIMIT: '100' })).toThrow(/DEFAULT_QUERY_LIMIT/);
  });

  test('a bad DATABASE_URL is named without echoing it (it may hold a password)', () => {
    let msg = '';
    try {
      loadConfig({ DATABASE_URL: 'not a url with secret-pw' });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('DATABASE_URL');
    expect(msg).not.toContain('secret-pw');
  });
});

describe('documentation', () => {
  test('an aggregate kept no longer than the raw events is refused, naming both settings; 0 keeps it forever', () => {
    expect(() => loadConfig({ RETENTION_DAYS: '100' })).toThrow(
      /AGGREGATE_MINUTE_RETENTION_DAYS \(90\) must be 0 \(keep forever\) or at least 101 .*RETENTION_DAYS=100/,
    );
    expect(() => loadConfig({ AGGREGATE_HOUR_RETENTION_DAYS: '3' })).toThrow(ConfigError);
    expect(loadConfig({ RETENTION_DAYS: '100', AGGREGATE_MINUTE_RETENTION_DAYS: '0' }).retention).toEqual({
      rawDays: 100,
      minuteDays: 0,
      hourDays: 730,
      dayDays: 730,
    });
  });

  test('docs/configuration.md documents every setting the service reads, with its default, and no other', async () => {
    const { envSchema } = await import('../src/config');
    const readme = await Bun.file(new URL('../docs/configuration.md', import.meta.url)).text();
    for (const name of Object.keys(envSchema.shape)) expect(readme).toMatch(new RegExp(`\\| \`${name}\` \\| [^|]+ \\| [^|]+ \\|`));
    const rows = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.filter((name) => !(name in envSchema.shape))).toEqual([]);
  });

  test("docs/configuration.md's default for each setting is the one the code applies", async () => {
    const { envSchema } = await import('../src/config');
    const readme = await Bun.file(new URL('../docs/configuration.md', import.meta.url)).text();
    const defaults = envSchema.parse({}) as Record<string, unknown>;
    for (const name of Object.keys(envSchema.shape)) {
      const documented = new RegExp(`\\| \`${name}\` \\| ([^|]+) \\|`).exec(readme)![1]!.trim();
      const code = defaults[name];
      // unset in the code: the README says so (unset, or what leaving it unset means)
      if (code === undefined) expect(`${name}: ${documented}`).toMatch(new RegExp(`^${name}: (unset|none|\\(|—)`, 'i'));
      else expect(`${name}: ${documented}`).toBe(`${name}: \`${String(code)}\``);
    }
  });
});
