// A LogQL log pipeline run on entries (model.ts), in order, as Loki runs it: line filters, the
// parsers (json, logfmt, regexp, pattern) adding parsed labels, label filters on any label (stream,
// structured metadata or parsed; a value that is not a number where a number is compared sets
// __error__ and keeps the entry, as in Loki), line_format, label_format, drop, keep, decolorize.
// Everything is compiled before the first row is read: a bad regex or template is a 400 at once.
import type { LabelExpr, LineFilter, Matcher, Stage } from './ast';
import { type Entry, labelName } from './model';
import { LogqlError, parseBytes, parseDuration } from './parse';
import { compile } from './regex';

type Step = (e: Entry) => boolean;

export function lineTest(f: LineFilter): (line: string) => boolean {
  const res = f.op === '|~' || f.op === '!~' ? f.values.map((v) => compile(v, false).js) : null;
  const any = res ? (line: string) => res.some((r) => r.test(line)) : (line: string) => f.values.some((v) => line.includes(v));
  return f.op === '|=' || f.op === '|~' ? any : (line) => !any(line);
}

export function matcherTest(m: Matcher): (value: string) => boolean {
  if (m.op === '=') return (v) => v === m.value;
  if (m.op === '!=') return (v) => v !== m.value;
  const re = compile(m.value, true).js;
  return m.op === '=~' ? (v) => re.test(v) : (v) => !re.test(v);
}

export const labelOf = (e: Entry, name: string) => e.parsed[name] ?? e.meta[name] ?? e.stream[name] ?? '';

function setParsed(e: Entry, name: string, value: string) {
  const n = labelName(name);
  if (!n) return;
  e.parsed[n in e.stream ? `${n}_extracted` : n] = value;
}

function flattenJson(prefix: string, v: unknown, e: Entry) {
  if (v && typeof v === 'object') {
    if (Array.isArray(v)) return; // Loki's json parser skips arrays
    for (const [k, x] of Object.entries(v)) flattenJson(prefix ? `${prefix}_${k}` : k, x, e);
  } else if (v !== null && v !== undefined) setParsed(e, prefix, String(v));
  else setParsed(e, prefix, '');
}

function jsonPath(v: unknown, path: string): unknown {
  const parts = path.match(/[^.[\]"]+/g) ?? [];
  for (const p of parts) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

function jsonStage(fields: { name: string; path: string }[]): Step {
  return (e) => {
    let doc: unknown;
    try {
      doc = JSON.parse(e.line);
    } catch {
      e.parsed.__error__ = 'JSONParserErr';
      return true;
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
      e.parsed.__error__ = 'JSONParserErr';
      return true;
    }
    if (!fields.length) flattenJson('', doc, e);
    for (const f of fields) {
      const v = jsonPath(doc, f.path);
      setParsed(e, f.name, v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
    return true;
  };
}

const LOGFMT = /([^\s="]+)(?:=(?:"((?:[^"\\]|\\.)*)"|([^\s"]*)))?/g;

function logfmtStage(fields: { name: string; path: string }[]): Step {
  return (e) => {
    const all: Record<string, string> = {};
    for (const m of e.line.matchAll(LOGFMT)) all[m[1]!] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
    if (!fields.length) for (const [k, v] of Object.entries(all)) setParsed(e, k, v);
    for (const f of fields) setParsed(e, f.name, all[f.path] ?? '');
    return true;
  };
}

function regexpStage(source: string): Step {
  const re = compile(source, false).js;
  if (!/\(\?<[A-Za-z_]/.test(re.source)) throw new LogqlError('regexp needs at least one named group: (?P<name>...)');
  return (e) => {
    const m = re.exec(e.line);
    if (m?.groups) for (const [k, v] of Object.entries(m.groups)) setParsed(e, k, v ?? '');
    return true;
  };
}

/** A pattern ("<ip> - <_> [<ts>] <rest>") as a regex: captures stop at the next literal; the last one runs to the end. */
export function patternRegex(source: string): RegExp {
  const parts = source.split(/(<[A-Za-z_][A-Za-z0-9_]*>)/);
  let re = '^';
  let names = 0;
  parts.forEach((p, i) => {
    const cap = /^<([A-Za-z_][A-Za-z0-9_]*)>$/.exec(p);
    const last = parts.slice(i + 1).every((x) => x === '');
    if (!cap) re += p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else if (cap[1] === '_') re += last ? '[\\s\\S]*' : '[\\s\\S]*?';
    else {
      names++;
      re += `(?<${cap[1]}>${last ? '[\\s\\S]*' : '[\\s\\S]*?'})`;
    }
  });
  if (!names) throw new LogqlError('pattern needs at least one named capture: <name>');
  return new RegExp(re, 'u');
}

function patternStage(source: string): Step {
  const re = patternRegex(source);
  return (e) => {
    const m = re.exec(e.line);
    if (m?.groups) for (const [k, v] of Object.entries(m.groups)) setParsed(e, k, v ?? '');
    return true;
  };
}

function number(value: string, unit: 'number' | 'duration' | 'bytes'): number {
  if (unit === 'duration') return parseDuration(value);
  if (unit === 'bytes') return parseBytes(value);
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(value.trim())) throw new LogqlError('not a number');
  return Number(value);
}

const COMPARE = {
  '==': (a: number, b: number) => a === b,
  '!=': (a: number, b: number) => a !== b,
  '>': (a: number, b: number) => a > b,
  '>=': (a: number, b: number) => a >= b,
  '<': (a: number, b: number) => a < b,
  '<=': (a: number, b: number) => a <= b,
};

export function labelTest(x: LabelExpr): Step {
  if (x.kind === 'and' || x.kind === 'or') {
    const l = labelTest(x.left);
    const r = labelTest(x.right);
    return x.kind === 'and' ? (e) => l(e) && r(e) : (e) => l(e) || r(e);
  }
  if (x.kind === 'match') {
    const { matcher } = x;
    const t = matcherTest(matcher);
    return (e) => t(labelOf(e, matcher.name));
  }
  if (x.kind !== 'compare') throw new LogqlError('unknown label filter');
  const c = x;
  const cmp = COMPARE[c.op];
  return (e) => {
    try {
      return cmp(number(labelOf(e, c.name), c.unit), c.value);
    } catch {
      e.parsed.__error__ = 'LabelFilterErr';
      return true;
    }
  };
}

/** `{{.name}}`, `{{ .name }}` and `{{__line__}}`; anything else of Go's templates is refused. */
export function template(source: string): (e: Entry) => string {
  const parts = source.split(/(\{\{.*?\}\})/s);
  const fns = parts.map((p) => {
    const m = /^\{\{\s*(?:\.([A-Za-z_][A-Za-z0-9_]*)|(__line__))\s*\}\}$/.exec(p);
    if (m) return m[2] ? (e: Entry) => e.line : (e: Entry) => labelOf(e, m[1]!);
    if (p.includes('{{')) throw new LogqlError(`template ${JSON.stringify(p)}: only {{.label}} and {{__line__}} are supported`);
    return () => p;
  });
  return (e) => fns.map((f) => f(e)).join('');
}

function removeLabel(e: Entry, name: string) {
  delete e.stream[name];
  delete e.meta[name];
  delete e.parsed[name];
}

function dropKeep(kind: 'drop' | 'keep', items: (string | Matcher)[]): Step {
  const tests = items.map((i) => (typeof i === 'string' ? { name: i, test: () => true } : { name: i.name, test: matcherTest(i) }));
  if (kind === 'drop')
    return (e) => {
      for (const t of tests) if (t.test(labelOf(e, t.name))) removeLabel(e, t.name);
      return true;
    };
  return (e) => {
    const keep = new Set(tests.filter((t) => t.test(labelOf(e, t.name))).map((t) => t.name));
    for (const group of [e.stream, e.meta, e.parsed]) for (const k of Object.keys(group)) if (!keep.has(k)) delete group[k];
    return true;
  };
}

function labelFormat(items: { name: string; from?: string; template?: string }[]): Step {
  const fns = items.map((i) => ({ name: i.name, from: i.from, tmpl: i.template !== undefined ? template(i.template) : undefined }));
  return (e) => {
    for (const f of fns) {
      const v = f.tmpl ? f.tmpl(e) : labelOf(e, f.from!);
      if (f.from) removeLabel(e, f.from);
      e.parsed[f.name] = v;
    }
    return true;
  };
}

// ANSI escape sequences (colours), as Loki's decolorize removes them. A stored line never holds ESC
// itself: the receivers store an agent's control characters as their Unicode pictures (ESC as U+241B,
// receive/fit.ts), so the sequences are found behind either.
const ANSI = new RegExp(`[${String.fromCharCode(27)}\u241b]\\[[0-9;]*[A-Za-z]`, 'g');

function step(s: Stage): Step {
  switch (s.kind) {
    case 'line': {
      const t = lineTest(s.filter);
      return (e) => t(e.line);
    }
    case 'json':
      return jsonStage(s.fields);
    case 'logfmt':
      return logfmtStage(s.fields);
    case 'regexp':
      return regexpStage(s.source);
    case 'pattern':
      return patternStage(s.source);
    case 'filter':
      return labelTest(s.expr);
    case 'line_format': {
      const t = template(s.template);
      return (e) => {
        e.line = t(e);
        return true;
      };
    }
    case 'label_format':
      return labelFormat(s.items);
    case 'drop':
    case 'keep':
      return dropKeep(s.kind, s.items);
    case 'decolorize':
      return (e) => {
        e.line = e.line.replace(ANSI, '');
        return true;
      };
  }
}

/** The pipeline as one function: true when the entry passes (the entry is changed in place). */
export function compilePipeline(stages: Stage[]): (e: Entry) => boolean {
  const steps = stages.map(step);
  return (e) => steps.every((s) => s(e));
}
