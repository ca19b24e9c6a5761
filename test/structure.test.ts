// The source layout keeps its promises (README: Architecture): no import cycle and no import against
// the stage order (.dependency-cruiser.cjs), no function longer than a screen or two, and every file
// opening with a comment that says what it owns.
import { describe, expect, test } from 'bun:test';
import { parseSync, type Node } from '@swc/core';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const MAX_FUNCTION_LINES = 120;

function sources(): string[] {
  return ['src', 'workers'].flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') || f.endsWith('.tsx'))
      .map((f) => join(dir, f)),
  );
}

/** Every function (declaration, expression, arrow, method) with its length in lines. */
function functionLengths(file: string): { name: string; lines: number }[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const mod = parseSync(text, { syntax: 'typescript', tsx: file.endsWith('.tsx') });
  // swc's spans are 1-based byte positions (in some versions they keep growing across parse calls:
  // the module's own span, which ends at the last token, anchors them).
  const bytes = Buffer.from(text);
  const last = text.trimEnd().length; // the last token ends where the text does
  const base = mod.span.end - Buffer.byteLength(text.slice(0, last));
  const newlines: number[] = [];
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 10) newlines.push(i);
  const lineAt = (pos: number) => {
    const offset = pos - base; // 0-based byte offset
    let lo = 0;
    while (lo < newlines.length && newlines[lo]! < offset) lo++;
    return lo + 1;
  };
  const out: { name: string; lines: number }[] = [];
  const walk = (node: unknown, name: string) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n, name);
      return;
    }
    const n = node as Node & { span?: { start: number; end: number }; identifier?: { value?: string }; key?: { value?: string }; id?: { value?: string } };
    const label = n.identifier?.value ?? n.key?.value ?? (n.type === 'VariableDeclarator' ? n.id?.value : undefined) ?? name;
    if (/^(FunctionDeclaration|FunctionExpression|ArrowFunctionExpression|ClassMethod|MethodProperty)$/.test(n.type) && n.span) {
      out.push({ name: `${file}: ${label}`, lines: lineAt(n.span.end) - lineAt(n.span.start) + 1 });
    }
    for (const [k, v] of Object.entries(n)) if (k !== 'span') walk(v, label);
  };
  walk(mod.body, '(module)');
  return out;
}

describe('source layout', () => {
  test('no import cycle and no import against the stage order (dependency-cruiser)', async () => {
    const p = Bun.spawn(
      [
        process.execPath,
        'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs',
        '--config',
        '.dependency-cruiser.cjs',
        '--output-type',
        'json',
        'src',
        'workers',
      ],
      { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' },
    );
    const [out, code] = [await new Response(p.stdout).text(), await p.exited];
    const result = JSON.parse(out) as {
      summary: {
        violations: { rule: { name: string }; from: string; to: string; cycle?: { name: string }[] }[];
        totalCruised: number;
        totalDependenciesCruised: number;
      };
    };
    const violations = result.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.cycle?.map((c) => c.name).join(' -> ') ?? v.to}`);
    expect(violations).toEqual([]);
    expect(code).toBe(0);
    // A parser that silently read nothing would find no violation either: it must have seen the imports.
    expect(result.summary.totalDependenciesCruised).toBeGreaterThan(100);
  });

  test('the rules see a cycle when there is one (a deliberate cycle in a scratch copy of two files)', async () => {
    const dir = join(ROOT, 'node_modules', '.cache', 'aurore-structure');
    await Bun.write(join(dir, 'src/store/a.ts'), "import { b } from './b';\nexport const a = (): number => b;\n");
    await Bun.write(join(dir, 'src/store/b.ts'), "import type { a } from './a';\nexport const b = 1;\nexport type A = typeof a;\n");
    await Bun.write(join(dir, '.dependency-cruiser.cjs'), readFileSync(join(ROOT, '.dependency-cruiser.cjs')));
    const p = Bun.spawn(
      [process.execPath, join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruiser.mjs'), '--config', '.dependency-cruiser.cjs', 'src'],
      { cwd: dir, stdout: 'pipe', stderr: 'pipe' },
    );
    const [out, code] = [await new Response(p.stdout).text(), await p.exited];
    expect(out).toContain('no-circular');
    expect(code).not.toBe(0);
  });

  test(`no function is longer than ${MAX_FUNCTION_LINES} lines`, () => {
    const all = sources().flatMap(functionLengths);
    if (process.env.SHOW_FUNCTION_LENGTHS) console.log(all.sort((a, b) => b.lines - a.lines).slice(0, 15));
    expect(all.length).toBeGreaterThan(200); // the parser saw the code
    const long = all.filter((f) => f.lines > MAX_FUNCTION_LINES).map((f) => `${f.name} (${f.lines} lines)`);
    expect(long).toEqual([]);
  });

  test('every source file opens with a comment saying what it owns', () => {
    const bare = sources().filter((f) => !readFileSync(join(ROOT, f), 'utf8').startsWith('//'));
    expect(bare).toEqual([]);
  });
});

describe('TimescaleDB internals', () => {
  test('every internal table or function the code, SQL or tests use is listed in docs/internals.md', () => {
    const files = ['src', 'workers', 'sql', 'test'].flatMap((dir) =>
      readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ts|sql)$/.test(f) && !f.endsWith('structure.test.ts'))
        .map((f) => join(dir, f)),
    );
    const used = new Set(
      files.flatMap((f) => [...readFileSync(join(ROOT, f), 'utf8').matchAll(/_timescaledb_(?:catalog|config|functions|internal)\.[a-z_]+/g)].map((m) => m[0])),
    );
    const listed = readFileSync(join(ROOT, 'docs/internals.md'), 'utf8');
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((name) => !listed.includes(`\`${name}`)).sort()).toEqual([]);
  });
});

describe('documentation', () => {
  const docs = [
    'README.md',
    'BENCHMARKS.md',
    'CHANGELOG.md',
    'TESTING.md',
    'loadtest/README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const slug = (h: string) =>
    h
      .trim()
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replaceAll(' ', '-');
  const anchorsOf = (file: string) => {
    const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
    return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
  };

  test('every relative link of the README, BENCHMARKS, CHANGELOG and docs/ reaches a file, and its #anchor a heading there', () => {
    const broken: string[] = [];
    for (const file of docs) {
      const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split('#');
        const resolved = path ? join(dirname(join(ROOT, file)), path).slice(ROOT.length) : file;
        if (!existsSync(join(ROOT, resolved))) broken.push(`${file}: ${target} (no file)`);
        else if (anchor && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) broken.push(`${file}: ${target} (no heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  test('no comment or document points to notes outside the repository', () => {
    const files = ['src', 'workers', 'sql', 'test', 'loadtest', 'scripts', 'docs'].flatMap((dir) =>
      readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ts|js|sql|sh|md)$/.test(f))
        .map((f) => join(dir, f)),
    );
    const outside = [...files, ...docs].filter((f) => !f.endsWith('structure.test.ts') && readFileSync(join(ROOT, f), 'utf8').includes('FIELD-NOTES'));
    expect(outside).toEqual([]);
  });
});

describe('the mutation check', () => {
  test('every breakage of scripts/mutations.ts still finds its text in the code, exactly once', () => {
    const p = Bun.spawnSync([process.execPath, 'scripts/mutations.ts', '--check'], { cwd: ROOT, stderr: 'pipe' });
    expect({
      code: p.exitCode,
      said: p.stderr
        .toString()
        .split('\n')
        .filter((l) => l.includes('NO LONGER APPLIES')),
    }).toEqual({ code: 0, said: [] });
  });
});
