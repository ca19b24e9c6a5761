// LogQL text -> the tree of ast.ts, with Grafana's own grammar (@grafana/lezer-logql, what its query
// editor parses with). A query the grammar rejects, or a construct this service does not evaluate,
// is a LogqlError naming it: the routes answer 400 bad_data, never a guess.
import { parser } from '@grafana/lezer-logql';
import { ApiError } from '../../errors';
import type { SyntaxNode } from '@lezer/common';
import type {
  BinOp,
  CompareOp,
  Grouping,
  LabelExpr,
  LineFilter,
  LineOp,
  LogQuery,
  Matcher,
  MatchOp,
  MetricQuery,
  Query,
  RangeOp,
  Stage,
  VectorOp,
} from './ast';

/** A query this service will not answer, and why: a 400 (bad_data in the Loki API's errors) wherever it is thrown. */
export class LogqlError extends ApiError {
  constructor(message: string) {
    super('validation_failed', message);
  }
}

/** Most a query may hold: Loki's own default (max_query_length is about time; this is about text). */
export const QUERY_MAX_CHARS = 16 * 1024;

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8, y: 3.1536e10 };

/** A Prometheus or Go duration ("5m", "1h30m", "1.5s", "250ms") in milliseconds. */
const MAX_SPAN_MS = 100 * DURATION_UNITS.y!;

export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    at = re.lastIndex;
  }
  if (!text || at !== text.length) throw new LogqlError(`invalid duration "${text}"`);
  return total;
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  pib: 1024 ** 5,
};

/** "1KB", "2.5MiB", "10" -> bytes (KB = 1000, KiB = 1024, as Loki's humanize does). */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = BYTE_UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) throw new LogqlError(`invalid bytes "${text}"`);
  return Number(m[1]) * unit;
}

export function parseQuery(text: string): Query {
  if (text.length > QUERY_MAX_CHARS) throw new LogqlError(`the query is longer than ${QUERY_MAX_CHARS} characters`);
  if (!text.trim()) throw new LogqlError('the query is empty');
  const tree = parser.parse(text);
  tree.iterate({
    enter(n) {
      if (n.type.isError) throw new LogqlError(`parse error at position ${n.from + 1}: ${JSON.stringify(text.slice(Math.max(0, n.from - 10), n.from + 10))}`);
    },
  });
  const p = new Reader(text);
  const expr = p.only(tree.topNode, 'Expr');
  const inner = expr.firstChild!;
  if (inner.name === 'LogExpr') return { kind: 'log', log: p.logExpr(inner) };
  return { kind: 'metric', metric: p.metric(inner) };
}

class Reader {
  constructor(private readonly text: string) {}

  src(n: SyntaxNode) {
    return this.text.slice(n.from, n.to);
  }

  only(n: SyntaxNode, name: string): SyntaxNode {
    const c = n.getChild(name);
    if (!c) throw new LogqlError(`expected ${name} in ${JSON.stringify(this.src(n))}`);
    return c;
  }

  unsupported(n: SyntaxNode): never {
    throw new LogqlError(`not supported here: ${JSON.stringify(this.src(n).slice(0, 80))} (${n.name})`);
  }

  string(n: SyntaxNode): string {
    const s = this.src(n);
    if (s.startsWith('`')) return s.slice(1, -1);
    try {
      return JSON.parse(s.replace(/\\'/g, "'")) as string;
    } catch {
      throw new LogqlError(`invalid string ${s}`);
    }
  }

  children(n: SyntaxNode): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
    return out;
  }

  matcher(n: SyntaxNode): Matcher {
    const [id, op, str] = this.children(n);
    return { name: this.src(id!), op: this.src(op!) as MatchOp, value: this.string(str!) };
  }

  /** Nested lists (Matchers, LabelsFormat, DropLabels, ...) flattened, in order. */
  flat(n: SyntaxNode, item: string): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    const walk = (x: SyntaxNode) => {
      for (const c of this.children(x)) {
        if (c.name === item) out.push(c);
        else if (c.name === x.name) walk(c);
      }
    };
    walk(n);
    return out;
  }

  logExpr(n: SyntaxNode): LogQuery {
    const selector = this.flat(this.only(this.only(n, 'Selector'), 'Matchers'), 'Matcher').map((m) => this.matcher(m));
    if (!selector.length) throw new LogqlError('a stream selector needs at least one matcher');
    const pipe = n.getChild('PipelineExpr');
    return { selector, stages: pipe ? this.flat(pipe, 'PipelineStage').flatMap((s) => this.stage(s)) : [] };
  }

  lineFilter(n: SyntaxNode): LineFilter {
    const op = this.src(this.only(n, 'Filter')) as LineOp;
    if (n.getChild('FilterOp')) this.unsupported(n);
    const values = this.children(n)
      .filter((c) => c.name === 'String' || c.name === 'OrFilter')
      .map((c) => (c.name === 'String' ? this.string(c) : this.string(this.only(c, 'String'))));
    return { op, values };
  }

  stage(n: SyntaxNode): Stage[] {
    const body = this.children(n).find((c) => c.name !== 'Pipe')!;
    switch (body.name) {
      case 'LineFilters':
        return this.flat(body, 'LineFilter').map((f) => ({ kind: 'line', filter: this.lineFilter(f) }));
      case 'LabelParser':
        return [this.labelParser(body)];
      case 'LogfmtParser':
        if (body.getChild('LogfmtParserFlags')) this.unsupported(body);
        return [{ kind: 'logfmt', fields: [] }];
      case 'JsonExpressionParser':
      case 'LogfmtExpressionParser':
        return [{ kind: body.name === 'JsonExpressionParser' ? 'json' : 'logfmt', fields: this.extractions(body) }];
      case 'LabelFilter':
        return [{ kind: 'filter', expr: this.labelFilter(body) }];
      case 'LineFormatExpr':
        return [{ kind: 'line_format', template: this.string(this.only(body, 'String')) }];
      case 'LabelFormatExpr':
        return [{ kind: 'label_format', items: this.flat(this.only(body, 'LabelsFormat'), 'LabelFormatMatcher').map((m) => this.labelFormat(m)) }];
      case 'DropLabelsExpr':
      case 'KeepLabelsExpr': {
        const drop = body.name === 'DropLabelsExpr';
        const list = this.flat(this.only(body, drop ? 'DropLabels' : 'KeepLabels'), drop ? 'DropLabel' : 'KeepLabel');
        return [{ kind: drop ? 'drop' : 'keep', items: list.map((l) => (l.getChild('Matcher') ? this.matcher(l.getChild('Matcher')!) : this.src(l))) }];
      }
      case 'DecolorizeExpr':
        return [{ kind: 'decolorize' }];
      default:
        return this.unsupported(body);
    }
  }

  labelParser(n: SyntaxNode): Stage {
    const kind = this.children(n)[0]!.name;
    if (kind === 'Json') return { kind: 'json', fields: [] };
    if (kind === 'Logfmt') return { kind: 'logfmt', fields: [] };
    if (kind === 'Regexp') return { kind: 'regexp', source: this.string(this.only(n, 'String')) };
    if (kind === 'Pattern') return { kind: 'pattern', source: this.string(this.only(n, 'String')) };
    return this.unsupported(n);
  }

  extractions(n: SyntaxNode) {
    return this.flat(this.only(n, 'LabelExtractionExpressionList'), 'LabelExtractionExpression').map((e) => {
      const id = this.src(this.only(e, 'Identifier'));
      const s = e.getChild('String');
      return { name: id, path: s ? this.string(s) : id };
    });
  }

  labelFormat(n: SyntaxNode) {
    const ids = n.getChildren('Identifier');
    const name = this.src(ids[0]!);
    if (ids[1]) return { name, from: this.src(ids[1]) };
    return { name, template: this.string(this.only(n, 'String')) };
  }

  labelFilter(n: SyntaxNode): LabelExpr {
    const kids = this.children(n);
    const joint = kids.find((c) => c.name === 'And' || c.name === 'Or' || c.name === 'Comma');
    const subs = kids.filter((c) => c.name === 'LabelFilter');
    if (subs.length === 2) return { kind: joint?.name === 'Or' ? 'or' : 'and', left: this.labelFilter(subs[0]!), right: this.labelFilter(subs[1]!) };
    if (subs.length === 1) return this.labelFilter(subs[0]!); // parenthesized
    const one = kids[0]!;
    if (one.name === 'Matcher') return { kind: 'match', matcher: this.matcher(one) };
    if (one.name === 'UnitFilter') return this.unitFilter(this.children(one)[0]!);
    if (one.name === 'NumberFilter') return this.compare(one, 'number');
    return this.unsupported(one);
  }

  unitFilter(n: SyntaxNode): LabelExpr {
    if (n.name === 'DurationFilter') return this.compare(n, 'duration');
    if (n.name === 'BytesFilter') return this.compare(n, 'bytes');
    return this.unsupported(n);
  }

  compare(n: SyntaxNode, unit: 'number' | 'duration' | 'bytes'): LabelExpr {
    const [id, op, v] = this.children(n);
    const opText = this.src(op!);
    const value = unit === 'duration' ? parseDuration(this.src(v!)) : unit === 'bytes' ? parseBytes(this.src(v!)) : Number(this.src(v!));
    if (!Number.isFinite(value)) throw new LogqlError(`invalid number ${this.src(v!)}`);
    return { kind: 'compare', name: this.src(id!), op: (opText === '=' ? '==' : opText) as CompareOp, value, unit };
  }

  grouping(n: SyntaxNode | null): Grouping | undefined {
    if (!n) return undefined;
    const labels = n.getChild('Labels');
    return { without: !!n.getChild('Without'), labels: labels ? this.flat(labels, 'Identifier').map((i) => this.src(i)) : [] };
  }

  metric(n: SyntaxNode): MetricQuery {
    const c = n.name === 'MetricExpr' || n.name === 'Expr' ? n.firstChild! : n;
    switch (c.name) {
      case 'RangeAggregationExpr':
        return this.rangeAgg(c);
      case 'VectorAggregationExpr':
        return this.vectorAgg(c);
      case 'BinOpExpr':
        return this.binary(c);
      case 'LiteralExpr':
        return { kind: 'number', value: this.number(c) };
      case 'VectorExpr':
        return { kind: 'vector', value: Number(this.src(this.only(c, 'Number'))) };
      case 'ParenthesisExpr':
      case 'Expr':
      case 'MetricExpr':
        return this.metric(c.getChild('Expr') ?? c.getChild('MetricExpr') ?? c.firstChild!);
      default:
        return this.unsupported(c);
    }
  }

  number(n: SyntaxNode): number {
    const v = Number(this.src(n).replace(/\s+/g, ''));
    if (!Number.isFinite(v)) throw new LogqlError(`invalid number ${this.src(n)}`);
    return v;
  }

  rangeAgg(n: SyntaxNode): MetricQuery {
    const op = this.src(this.only(n, 'RangeOp')) as RangeOp;
    const supported: RangeOp[] = [
      'count_over_time',
      'rate',
      'bytes_over_time',
      'bytes_rate',
      'absent_over_time',
      'sum_over_time',
      'avg_over_time',
      'min_over_time',
      'max_over_time',
      'first_over_time',
      'last_over_time',
    ];
    if (!supported.includes(op)) throw new LogqlError(`${op} is not supported (supported: ${supported.join(', ')})`);
    if (n.getChild('Number')) this.unsupported(n);
    const r = this.only(n, 'LogRangeExpr');
    const log = this.logExpr(r);
    const rangeMs = parseDuration(this.src(this.only(this.only(r, 'Range'), 'Duration')));
    if (rangeMs <= 0) throw new LogqlError('a range must be positive');
    if (rangeMs > MAX_SPAN_MS) throw new LogqlError('a range longer than 100 years');
    const off = r.getChild('OffsetExpr');
    const offsetMs = off ? parseDuration(this.src(this.only(off, 'Duration'))) : 0;
    if (offsetMs > MAX_SPAN_MS) throw new LogqlError('an offset longer than 100 years');
    const uw = r.getChild('UnwrapExpr');
    const unwrapOps = supported.slice(5);
    if (uw?.getChild('LabelFilter')) this.unsupported(uw);
    const unwrap = uw ? this.unwrap(uw) : undefined;
    if (!!unwrap !== unwrapOps.includes(op)) throw new LogqlError(unwrap ? `${op} takes no unwrap` : `${op} needs "| unwrap <label>"`);
    return { kind: 'range', op, log, rangeMs, offsetMs, unwrap, grouping: this.grouping(n.getChild('Grouping')) };
  }

  unwrap(n: SyntaxNode) {
    const conv = n.getChild('ConvOp');
    const kind = conv ? this.src(conv) : 'number';
    const map: Record<string, 'number' | 'duration' | 'bytes'> = { number: 'number', duration: 'duration', duration_seconds: 'duration', bytes: 'bytes' };
    if (!map[kind]) throw new LogqlError(`unwrap ${kind}() is not supported`);
    return { name: this.src(this.only(n, 'Identifier')), conv: map[kind]! };
  }

  vectorAgg(n: SyntaxNode): MetricQuery {
    const op = this.src(this.only(n, 'VectorOp')) as VectorOp;
    const ops: VectorOp[] = ['sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'sort', 'sort_desc'];
    if (!ops.includes(op)) throw new LogqlError(`${op} is not supported (supported: ${ops.join(', ')})`);
    const num = n.getChild('Number');
    if ((op === 'topk' || op === 'bottomk') !== !!num) throw new LogqlError(`${op} ${num ? 'takes no' : 'needs a'} parameter`);
    const k = num ? Number(this.src(num)) : undefined;
    if (k !== undefined && !(Number.isInteger(k) && k > 0)) throw new LogqlError(`${op} needs a positive integer, not ${this.src(num!)}`);
    return { kind: 'vector_agg', op, grouping: this.grouping(n.getChild('Grouping')), k, inner: this.metric(this.only(n, 'MetricExpr')) };
  }

  /**
   * A chain of binary operations. The grammar (an editor's) nests chains without PromQL's precedence
   * ("a * 2 + 1" comes as a * (2 + 1)): the chain is flattened (an operand in parentheses stays one)
   * and rebuilt with it: ^ (right to left), then * / %, + -, comparisons.
   */
  binary(n: SyntaxNode): MetricQuery {
    const operands: MetricQuery[] = [];
    const ops: { op: BinOp; bool: boolean }[] = [];
    this.flatten(n, operands, ops);
    return climb(operands, ops);
  }

  /** A BinOpExpr's operands and operators in order, into chains unparenthesized on either side. */
  flatten(x: SyntaxNode, operands: MetricQuery[], ops: { op: BinOp; bool: boolean }[]) {
    const [l, op, mod, r] = this.children(x);
    if (!l || !op || !mod || !r) this.unsupported(x);
    const side = (e: SyntaxNode) => {
      const inner = e.getChild('MetricExpr')?.firstChild;
      if (inner?.name === 'BinOpExpr') this.flatten(inner, operands, ops);
      else operands.push(this.metric(e));
    };
    side(l);
    ops.push(this.operator(op, mod));
    side(r);
  }

  operator(op: SyntaxNode, mod: SyntaxNode): { op: BinOp; bool: boolean } {
    const modText = this.src(mod).trim();
    if (modText && modText !== 'bool') throw new LogqlError(`vector matching (${modText}) is not supported`);
    const ops: BinOp[] = ['+', '-', '*', '/', '%', '^', '==', '!=', '>', '>=', '<', '<='];
    const o = this.src(op) as BinOp;
    if (!ops.includes(o)) throw new LogqlError(`the operator ${this.src(op)} is not supported`);
    return { op: o, bool: modText === 'bool' };
  }
}

const PRECEDENCE: Record<BinOp, number> = { '^': 4, '*': 3, '/': 3, '%': 3, '+': 2, '-': 2, '==': 1, '!=': 1, '>': 1, '>=': 1, '<': 1, '<=': 1 };

/** Operands and the operators between them, as one tree by precedence (^ binds right to left, the others left to right). */
function climb(operands: MetricQuery[], ops: { op: BinOp; bool: boolean }[]): MetricQuery {
  let at = 0;
  const next = (): MetricQuery => operands[at]!;
  const parse = (min: number): MetricQuery => {
    let left = next();
    while (at < ops.length && PRECEDENCE[ops[at]!.op] >= min) {
      const { op, bool } = ops[at]!;
      at++;
      const p = PRECEDENCE[op];
      const right = parse(op === '^' ? p : p + 1);
      left = { kind: 'binary', op, bool, left, right };
    }
    return left;
  };
  return parse(0);
}
