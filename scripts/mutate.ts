// Automatic mutants, beside the hand-written breakages of mutations.ts: `bun scripts/mutate.ts FILE
// TEST [-t PATTERN] [--lines A-B]` swaps one operator at a time in FILE (=== and !==, < and <=, > and
// >=, && and ||, ?? and ||, true and false, + 1 and - 1, a negation dropped), runs TEST (on the
// embedded engine) against each mutant in a scratch copy, and lists the mutants no test noticed. For
// the modules a change touches, on their fast tests; a survivor is a hole or an equivalent mutant
// (one that cannot change behaviour), and the list says which it is only to someone who reads it.
import { scratch } from './scratch';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const [file, testFile] = args;
if (!file || !testFile) {
  console.error('usage: bun scripts/mutate.ts FILE TEST [-t PATTERN] [--lines A-B]');
  process.exit(2);
}
const pattern = args.includes('-t') ? args[args.indexOf('-t') + 1] : undefined;
const [from, to] = (args.includes('--lines') ? args[args.indexOf('--lines') + 1]! : '1-100000').split('-').map(Number) as [number, number];

// Each operator and what it becomes; spaced forms only, so that => and generics are left alone.
const SWAPS: [string, string, string][] = [
  ['equality', ' === ', ' !== '],
  ['equality', ' !== ', ' === '],
  ['boundary', ' <= ', ' < '],
  ['boundary', ' >= ', ' > '],
  ['boundary', ' < ', ' <= '],
  ['boundary', ' > ', ' >= '],
  ['logic', ' && ', ' || '],
  ['logic', ' || ', ' && '],
  ['logic', ' ?? ', ' || '],
  ['constant', 'true', 'false'],
  ['constant', 'false', 'true'],
  ['arithmetic', ' + 1', ' - 1'],
  ['arithmetic', ' - 1', ' + 1'],
  ['negation', '(!', '('],
  ['negation', ' !', ' '],
];

interface Mutant {
  kind: string;
  line: number;
  text: string;
  source: string;
}

function mutants(source: string): Mutant[] {
  const lines = source.split('\n');
  const out: Mutant[] = [];
  lines.forEach((l, i) => {
    const n = i + 1;
    const code = l.trim();
    if (n < from || n > to || !code || code.startsWith('//') || code.startsWith('*') || code.startsWith('/*') || code.startsWith('import ')) return;
    for (const [kind, find, replace] of SWAPS) {
      for (let at = l.indexOf(find); at >= 0; at = l.indexOf(find, at + 1)) {
        if (kind === 'constant' && /\w/.test(l[at - 1] ?? '')) continue; // part of a longer name
        const mutated = l.slice(0, at) + replace + l.slice(at + find.length);
        out.push({ kind, line: n, text: mutated.trim(), source: [...lines.slice(0, i), mutated, ...lines.slice(i + 1)].join('\n') });
      }
    }
  });
  return out;
}

const original = readFileSync(join(ROOT, file), 'utf8');
const all = mutants(original);
const dir = scratch(ROOT, 'aurore-mutate-');
const results: { m: Mutant; killed: boolean }[] = [];
try {
  for (const [i, m] of all.entries()) {
    writeFileSync(join(dir, file), m.source);
    const p = Bun.spawn([process.execPath, 'test', '--timeout', '60000', testFile, ...(pattern ? ['-t', pattern] : [])], {
      cwd: dir,
      env: { ...process.env, TEST_DATABASE_URL: '' },
      stdout: 'ignore',
      stderr: 'pipe',
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    const [err, code] = [await new Response(p.stderr).text(), await p.exited];
    clearTimeout(timer);
    const failed = Number(/ (\d+) fail/.exec(err)?.[1] ?? 0);
    const killed = code !== 0 && (failed > 0 || code === 137 || code === null);
    results.push({ m, killed });
    process.stderr.write(`[mutate] ${i + 1}/${all.length} ${killed ? 'killed  ' : 'SURVIVED'} ${file}:${m.line} ${m.kind}: ${m.text.slice(0, 120)}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const kinds = [...new Set(results.map((r) => r.m.kind))];
console.log(`\n${file} against ${testFile}${pattern ? ` -t '${pattern}'` : ''}: ${results.filter((r) => r.killed).length} of ${results.length} mutants killed`);
for (const k of kinds) {
  const of = results.filter((r) => r.m.kind === k);
  console.log(`  ${k}: ${of.filter((r) => r.killed).length}/${of.length}`);
}
for (const r of results.filter((r) => !r.killed)) console.log(`  survived: line ${r.m.line} (${r.m.kind}): ${r.m.text}`);
