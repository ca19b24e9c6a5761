// The LogQL this service answers, as a tree (parse.ts builds it from Grafana's own grammar): what the
// SQL (sql.ts), the log pipeline (pipeline.ts) and the metric evaluation (metric.ts) read.

export type MatchOp = '=' | '!=' | '=~' | '!~';
export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
}

export type LineOp = '|=' | '!=' | '|~' | '!~';
/** A line filter; `values` are its `or` alternatives (for a negated filter: none of them may match). */
export interface LineFilter {
  op: LineOp;
  values: string[];
}

export type CompareOp = '==' | '!=' | '>' | '>=' | '<' | '<=';
export type LabelExpr =
  | { kind: 'and' | 'or'; left: LabelExpr; right: LabelExpr }
  | { kind: 'match'; matcher: Matcher }
  | { kind: 'compare'; name: string; op: CompareOp; value: number; unit: 'number' | 'duration' | 'bytes' };

export type Stage =
  | { kind: 'line'; filter: LineFilter }
  | { kind: 'json' | 'logfmt'; fields: { name: string; path: string }[] }
  | { kind: 'regexp'; source: string }
  | { kind: 'pattern'; source: string }
  | { kind: 'filter'; expr: LabelExpr }
  | { kind: 'line_format'; template: string }
  | { kind: 'label_format'; items: { name: string; from?: string; template?: string }[] }
  | { kind: 'drop' | 'keep'; items: (string | Matcher)[] }
  | { kind: 'decolorize' };

export interface LogQuery {
  selector: Matcher[];
  stages: Stage[];
}

export type RangeOp = 'count_over_time' | 'rate' | 'bytes_over_time' | 'bytes_rate' | 'absent_over_time' | UnwrapOp;
export type UnwrapOp = 'sum_over_time' | 'avg_over_time' | 'min_over_time' | 'max_over_time' | 'first_over_time' | 'last_over_time';
export type VectorOp = 'sum' | 'avg' | 'min' | 'max' | 'count' | 'topk' | 'bottomk' | 'sort' | 'sort_desc';
export type BinOp = '+' | '-' | '*' | '/' | '%' | '^' | '==' | '!=' | '>' | '>=' | '<' | '<=';

export interface Grouping {
  without: boolean;
  labels: string[];
}

export type MetricQuery =
  | {
      kind: 'range';
      op: RangeOp;
      log: LogQuery;
      rangeMs: number;
      offsetMs: number;
      unwrap?: { name: string; conv: 'number' | 'duration' | 'bytes' };
      grouping?: Grouping;
    }
  | { kind: 'vector_agg'; op: VectorOp; grouping?: Grouping; k?: number; inner: MetricQuery }
  | { kind: 'binary'; op: BinOp; bool: boolean; left: MetricQuery; right: MetricQuery }
  | { kind: 'number'; value: number }
  | { kind: 'vector'; value: number };

export type Query = { kind: 'log'; log: LogQuery } | { kind: 'metric'; metric: MetricQuery };
