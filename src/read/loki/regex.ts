// LogQL's regular expressions are RE2's. They run here twice: in PostgreSQL (a selector or line
// filter pushed into the SQL) and in JavaScript (the rest of the pipeline). Both engines differ from
// RE2 in places (PostgreSQL: "\b" is a backspace, "." and "\d" are wider; JavaScript: "." stops at
// "\r" too, no "(?i)"), so each pattern is translated token by token into one that means what RE2
// means in both, and a construct without a sure translation is refused with its name (400), never
// run with another meaning: backreferences, lookarounds, \p classes, \Q..\E, POSIX [[:classes:]],
// flags other than a leading (?i)/(?s), repetition counts over 255 (PostgreSQL's limit).
import { LogqlError } from './parse';

export interface Compiled {
  js: RegExp;
  /** PostgreSQL ARE source; `insensitive` means the ~* operator. */
  pg: string;
  insensitive: boolean;
  /** False when PostgreSQL could decide differently (its \\y word boundary counts non-ASCII letters): then JavaScript decides. */
  pgExact: boolean;
}

const CLASS_ESCAPES: Record<string, string> = { d: '0-9', w: '0-9A-Za-z_', s: '\\t\\n\\f\\r ' };
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));

function refuse(source: string, what: string): never {
  throw new LogqlError(`the regular expression ${JSON.stringify(source)} uses ${what}, which is not supported here`);
}

/** An escaped character outside a class: [js, pg]. */
function escapeChar(source: string, ch: string): [string, string] {
  if (CLASS_ESCAPES[ch]) return [`[${CLASS_ESCAPES[ch]}]`, `[${CLASS_ESCAPES[ch]}]`];
  const upper = ch.toLowerCase();
  if (CLASS_ESCAPES[upper] && ch !== upper) return [`[^${CLASS_ESCAPES[upper]}]`, `[^${CLASS_ESCAPES[upper]}]`];
  if (ch === 'b') return ['\\b', '\\y'];
  if (ch === 'B') return ['\\B', '\\Y'];
  if (ch === 'A') return ['^', '^'];
  if (ch === 'z') return ['$', '$'];
  if ('ntrfv'.includes(ch)) return [`\\${ch}`, `\\${ch}`];
  if (/[0-9pPQEx{}<>kKcCuUlLaeoXgG]/.test(ch)) refuse(source, `"\\${ch}"`);
  if (/[A-Za-z]/.test(ch)) refuse(source, `"\\${ch}"`);
  return [JS_SYNTAX.has(ch) ? `\\${ch}` : ch, `\\${ch}`];
}

/** A bracket expression starting at `i` ("[" included): [js, pg, next index]. */
function bracket(source: string, i: number): [string, string, number] {
  let j = i + 1;
  let out = '[';
  if (source[j] === '^') {
    out += '^';
    j++;
  }
  let first = true;
  for (; j < source.length; j++) {
    const ch = source[j]!;
    if (ch === ']' && !first) return [`${out}]`, `${out}]`, j + 1];
    first = false;
    if (ch === '[' && source[j + 1] === ':') refuse(source, 'a POSIX class ([[:name:]])');
    if (ch === '[') out += '\\[';
    else if (ch === ']') out += '\\]';
    else if (ch === '\\') {
      const e = source[++j];
      if (e === undefined) break;
      if (CLASS_ESCAPES[e]) out += CLASS_ESCAPES[e];
      else if ('ntrfv'.includes(e)) out += `\\${e}`;
      else if (/[A-Za-z0-9]/.test(e)) refuse(source, `"\\${e}" inside [...]`);
      else out += `\\${e}`;
    } else out += ch;
  }
  return refuse(source, 'an unterminated [...]');
}

/** Compiles an RE2 pattern; `anchored`: the whole value must match (label matchers), else any part (line filters). */
export function compile(source: string, anchored: boolean): Compiled {
  let i = 0;
  let insensitive = false;
  let dotAll = false;
  const flags = /^\(\?([is]+)\)/.exec(source);
  if (flags) {
    insensitive = flags[1]!.includes('i');
    dotAll = flags[1]!.includes('s');
    i = flags[0].length;
  }
  let js = '';
  let pg = '';
  let depth = 0;
  let pgExact = true;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\\') {
      const e = source[i + 1];
      if (e === undefined) refuse(source, 'a trailing "\\"');
      const [a, b] = escapeChar(source, e!);
      if (e === 'b' || e === 'B') pgExact = false;
      js += a;
      pg += b;
      i += 2;
    } else if (ch === '[') {
      const [a, b, next] = bracket(source, i);
      js += a;
      pg += b;
      i = next;
    } else if (ch === '(') {
      depth++;
      const named = /^\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(source.slice(i));
      if (named) {
        js += `(?<${named[1]}>`;
        pg += '(';
        i += named[0].length;
      } else if (source.startsWith('(?:', i)) {
        js += '(?:';
        pg += '(?:';
        i += 3;
      } else if (source[i + 1] === '?') refuse(source, `"${source.slice(i, i + 4)}" (lookarounds and inline flags)`);
      else {
        js += '(';
        pg += '(';
        i++;
      }
    } else if (ch === ')') {
      depth--;
      js += ')';
      pg += ')';
      i++;
    } else if (ch === '.') {
      js += dotAll ? '[\\s\\S]' : '[^\\n]';
      pg += dotAll ? '.' : '[^\\n]';
      i++;
    } else if (ch === '{') {
      const rep = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
      if (rep) {
        if (Number(rep[1]) > 255 || Number(rep[3] || 0) > 255) refuse(source, 'a repetition count over 255');
        if (source[i + rep[0].length] === '+') refuse(source, 'a possessive quantifier');
        js += rep[0];
        pg += rep[0];
        i += rep[0].length;
      } else {
        js += '\\{';
        pg += '\\{';
        i++;
      }
    } else if ((ch === '+' || ch === '*' || ch === '?') && source[i + 1] === '+') {
      refuse(source, 'a possessive quantifier');
    } else if (ch === '}') {
      js += '\\}'; // a literal brace (a repetition's is consumed with it); JavaScript's u flag refuses it bare
      pg += '\\}';
      i++;
    } else {
      js += ch === '/' ? '\\/' : ch;
      pg += ch;
      i++;
    }
  }
  if (depth !== 0) refuse(source, 'unbalanced parentheses');
  const body = anchored ? `^(?:${js})$` : js;
  let re: RegExp;
  try {
    re = new RegExp(body, `u${insensitive ? 'i' : ''}`);
  } catch (e) {
    throw new LogqlError(`invalid regular expression ${JSON.stringify(source)}: ${(e as Error).message}`);
  }
  return { js: re, pg: anchored ? `^(?:${pg})$` : pg, insensitive, pgExact };
}
