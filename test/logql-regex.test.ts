// LogQL's RE2 patterns as this service runs them (src/read/loki/regex.ts): in JavaScript and, pushed
// into the SQL, in PostgreSQL, on both engines. Each case is RE2's own answer (what Loki would do);
// both translations must give it, or the pattern must be refused with its construct named.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { compile } from '../src/read/loki/regex';
import type { Engine } from '../src/store/engine';
import { engines, newTarget, type Target } from './harness';

// [pattern, anchored (a label matcher) or not (a line filter), input, RE2 matches]
const CASES: [string, boolean, string, boolean][] = [
  ['check', true, 'checkout', false],
  ['check', false, 'checkout', true],
  ['check.*', true, 'checkout', true],
  ['a|b', true, 'ab', false],
  ['\\d+', true, '123', true],
  ['\\d+', true, '١٢٣', false], // Arabic-Indic digits: RE2's \d is ASCII
  ['\\D+', true, 'ab', true],
  ['\\D+', true, 'a1', false],
  ['\\w+', true, 'é', false],
  ['\\W', true, '-', true],
  ['\\W', true, 'a', false],
  ['\\s', true, '\t', true],
  ['\\S+', true, 'a b', false],
  ['[a-c]x', true, 'bx', true],
  ['[^a-c]x', true, 'bx', false],
  ['[]a]+', true, ']a]', true],
  ['[^]a]', true, ']', false],
  ['[\\d_]+', true, '1_2', true],
  ['[\\[]', true, '[', true],
  ['[[]', true, '[', true],
  ['[.]', true, 'x', false],
  ['a.b', true, 'a\nb', false], // "." is not a newline without (?s)
  ['(?s)a.b', true, 'a\nb', true],
  ['(?i)ABC', true, 'abc', true],
  ['ABC', true, 'abc', false],
  ['(?is)A.C', true, 'a\nc', true],
  ['a\\.b', true, 'axb', false],
  ['a\\.b', true, 'a.b', true],
  ['a\\-b', true, 'a-b', true],
  ['a/b', true, 'a/b', true],
  ['a\\nb', true, 'a\nb', true],
  ['\\Aab\\z', false, 'xab', false],
  ['\\Aab', false, 'abx', true],
  ['a{2}', true, 'aa', true],
  ['a{2,}', true, 'aaaa', true],
  ['a{2,3}', true, 'aaaa', false],
  ['a{255}', false, 'a'.repeat(255), true],
  ['a{1,255}', true, 'aaa', true],
  ['ab+', true, 'abbb', true],
  ['[a:]+', true, 'a:', true],
  ['a{', true, 'a{', true],
  ['a{x}', true, 'a{x}', true],
  ['(?P<x>a)b', true, 'ab', true],
  ['(?<x>a)b', true, 'ab', true],
  ['(?:a|b)c', true, 'bc', true],
  ['x*?y', true, 'xxy', true],
  ['\\bx\\b', false, 'a x b', true],
  ['\\Bx', false, 'ax', true],
];

const REFUSED: [string, RegExp][] = [
  ['(a)\\1', /"\\1"/],
  ['(?=a)', /lookarounds/],
  ['(?!a)', /lookarounds/],
  ['(?<=a)b', /lookarounds/],
  ['(?m)^a', /lookarounds and inline flags/],
  ['a(?i)b', /lookarounds and inline flags/],
  ['\\pL', /"\\p"/],
  ['\\p{Greek}', /"\\p"/],
  ['\\Qa.b\\E', /"\\Q"/],
  ['\\x41', /"\\x"/],
  ['[[:alpha:]]', /POSIX class/],
  ['[\\pL]', /inside \[\.\.\.\]/],
  ['a\\', /trailing/],
  ['[abc', /unterminated/],
  ['(a', /unbalanced/],
  ['a)', /unbalanced/],
  ['a{256}', /over 255/],
  ['a{1,256}', /over 255/],
  ['a*+', /possessive/],
  ['a++', /possessive/],
  ['a?+', /possessive/],
  ['a{2}+', /possessive/],
];

describe.each(engines)('RE2 patterns in JavaScript and PostgreSQL [%s]', (kind) => {
  let target: Target;
  let db: Engine;
  beforeAll(async () => {
    target = await newTarget(kind);
    db = await target.open();
  });
  afterAll(async () => {
    await db?.close();
    await target?.destroy();
  });

  test.each(
    CASES.map(([p, a, input, want]) => [`${JSON.stringify(p)}${a ? ' (whole value)' : ''} on ${JSON.stringify(input)}: ${want}`, p, a, input, want] as const),
  )('%s', async (_name, pattern, anchored, input, want) => {
    const re = compile(pattern, anchored);
    expect({ js: re.js.test(input) }).toEqual({ js: want });
    if (!re.pgExact) return; // decided in JavaScript only: never pushed into the SQL
    const [row] = await db.query<{ m: boolean }>(`SELECT $1::text ${re.insensitive ? '~*' : '~'} $2::text AS m`, [input, re.pg]);
    expect({ pg: row!.m }).toEqual({ pg: want });
  });
});

describe('RE2 patterns refused', () => {
  test.each(REFUSED)('%s is refused naming what is not supported', (pattern, why) => {
    expect(() => compile(pattern, false)).toThrow(why);
  });

  test('word boundaries are decided in JavaScript only: PostgreSQL counts non-ASCII letters as word characters, RE2 does not', () => {
    expect(compile('\\bx', false).pgExact).toBe(false);
    expect(compile('\\Bx', false).pgExact).toBe(false);
    expect(compile('x', false).pgExact).toBe(true);
    expect(compile('\\bé', false).js.test('xé')).toBe(true); // é is not a word character to RE2
  });

  test('a flag group only at the start sets the flags; nothing else is case-insensitive or dot-all', () => {
    expect(compile('(?i)a', false)).toMatchObject({ insensitive: true });
    expect(compile('a', false)).toMatchObject({ insensitive: false });
    expect(compile('(?s).', true).js.test('\n')).toBe(true);
    expect(compile('.', true).js.test('\n')).toBe(false);
  });
});
