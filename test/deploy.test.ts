// The container and compose files cannot run here (no Docker engine): check what can be checked —
// the compose file parses and wires the stack as documented, and the Dockerfile copies paths that
// exist, runs as a non-root user and has a health check.
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const read = (p: string) => readFileSync(root + p, 'utf8');

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: unknown };
  profiles?: string[];
  volumes?: string[];
  command?: string[];
}

describe('docker-compose.yml', () => {
  const compose = Bun.YAML.parse(read('docker-compose.yml')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  const s = compose.services;

  test('has the database, the service, optional redis and a k6 loadtest profile', () => {
    expect(Object.keys(s).sort()).toEqual(['app', 'app-b', 'grafana', 'k6', 'redis', 'timescaledb', 'timescaledb-replica']);
    expect(s.redis!.profiles).toEqual(['redis', 'scale']);
    expect(s.k6!.profiles).toEqual(['loadtest']);
  });

  test('the scale profile: a second instance reading from a streaming replica of the primary, sharing Redis', () => {
    expect(s['app-b']!.profiles).toEqual(['scale']);
    expect(s['timescaledb-replica']!.profiles).toEqual(['scale']);
    expect(s['app-b']!.environment!.DATABASE_READ_URL).toContain('@timescaledb-replica:5432/');
    expect(s['app-b']!.environment!.REDIS_URL).toBe('redis://redis:6379');
    expect(JSON.stringify((s['timescaledb-replica'] as { entrypoint?: string[] }).entrypoint)).toContain('pg_basebackup -h timescaledb');
    expect(s.timescaledb!.volumes).toContain('./scripts/compose/10-replication.sh:/docker-entrypoint-initdb.d/10-replication.sh:ro');
    expect(existsSync(`${root}scripts/compose/10-replication.sh`)).toBe(true);
  });

  test('TimescaleDB is the Community image of the version CI tests, on PostgreSQL 17, with a volume and a health check', () => {
    // Pinned, never `latest`: what is deployed is what scripts/install-timescaledb.sh builds for CI.
    const tested = /^TS_VERSION=(\S+)$/m.exec(readFileSync(`${root}scripts/install-timescaledb.sh`, 'utf8'))![1];
    expect(s.timescaledb!.image).toBe(`timescale/timescaledb:${tested}-pg17`);
    expect(s['timescaledb-replica']!.image).toBe(s.timescaledb!.image);
    expect(s.timescaledb!.volumes![0]).toMatch(/^timescaledb-data:/);
    expect(compose.volumes).toHaveProperty('timescaledb-data');
    expect(s.timescaledb!.healthcheck).toBeDefined();
    expect(s.timescaledb!.ports).toBeUndefined(); // not published outside the compose network
  });

  test('the service waits for a healthy database, gets DATABASE_URL, and is published on loopback only', () => {
    expect(s.app!.depends_on).toEqual({ timescaledb: { condition: 'service_healthy' } });
    expect(s.app!.environment!.DATABASE_URL).toMatch(/^postgres:\/\/aurore:.*@timescaledb:5432\/aurore$/);
    expect(s.app!.ports).toEqual(['127.0.0.1:3000:3000']);
    expect(s.app!.build).toBe('.');
  });

  test('the grafana profile: this service as a Loki data source (the key as basic-auth password), TimescaleDB as PostgreSQL, a dashboard whose LogQL the service parses', async () => {
    expect(s.grafana!.profiles).toEqual(['grafana']);
    expect(s.grafana!.ports).toEqual(['127.0.0.1:3002:3000']);
    for (const v of s.grafana!.volumes!) expect(existsSync(`${root}${v.split(':')[0]!.slice(2)}`)).toBe(true);
    const ds = Bun.YAML.parse(read('scripts/compose/grafana/datasources.yaml')) as {
      datasources: { type: string; url: string; basicAuth?: boolean; user?: string }[];
    };
    const loki = ds.datasources.find((d) => d.type === 'loki')!;
    expect(loki).toMatchObject({ url: 'http://app:3000', basicAuth: true });
    expect(ds.datasources.find((d) => d.type === 'grafana-postgresql-datasource')!.url).toBe('timescaledb:5432');
    const { parseQuery } = await import('../src/read/loki/parse');
    const board = JSON.parse(read('scripts/compose/grafana/dashboards/aurore-events.json')) as { panels: { targets: { expr?: string }[] }[] };
    const exprs = board.panels.flatMap((p) => p.targets.map((t) => t.expr)).filter((e): e is string => !!e);
    expect(exprs.length).toBe(3);
    for (const e of exprs) expect(() => parseQuery(e.replaceAll('$__interval', '1m'))).not.toThrow();
  });

  test('k6 runs a script that exists, against the service inside the network', () => {
    expect(s.k6!.environment!.BASE_URL).toBe('http://app:3000');
    const script = s.k6!.command!.at(-1)!.match(/:-([\w.-]+)\}/)![1]!;
    expect(existsSync(`${root}loadtest/k6/${script}`)).toBe(true);
    expect(s.k6!.volumes).toEqual(['./loadtest/k6:/scripts:ro']);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));

  test('builds on the official Bun image, at the version the project pins', () => {
    const pinned = (JSON.parse(read('package.json')) as { devDependencies: Record<string, string> }).devDependencies.bun;
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2); // multi-stage
    for (const f of froms) expect(f).toMatch(new RegExp(`^FROM oven/bun:${pinned!.replace(/\./g, '\\.')}`));
  });

  test('copies only paths that exist, including the worker files and migrations', () => {
    const sources = lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from=')).flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(sources).toContain('workers');
    expect(sources).toContain('sql');
    for (const p of sources) expect(existsSync(root + p)).toBe(true);
  });

  test('runs as a non-root user, with a health check and the service as its command', () => {
    expect(lines.some((l) => /^USER (?!root)\w+/.test(l))).toBe(true);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/health/);
    expect(lines.find((l) => l.startsWith('CMD '))).toContain('src/main.ts');
  });
});

describe('k6 scripts', () => {
  const scripts = readdirSync(`${root}loadtest/k6`).filter((f) => f.endsWith('.js') && f !== 'lib.js');

  test('each declares thresholds so a regression exits non-zero', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(6);
    for (const f of scripts) expect(read(`loadtest/k6/${f}`)).toMatch(/thresholds:\s*\{/);
  });

  test('each ingest script ends by checking through the service that what was accepted is stored', () => {
    for (const f of scripts.filter((f) => f.startsWith('ingest-'))) {
      const src = read(`loadtest/k6/${f}`);
      expect(src).toMatch(/export function teardown[\s\S]*verifyStored\(/);
      expect(src).toContain('...ingestThresholds'); // events_unverified: count==0
    }
  });
});
