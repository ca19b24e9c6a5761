// The values a metric query evaluates to (metric.ts), and what the evaluation reads from.
import type { ServiceScope } from '../../config';
import type { Engine } from '../../store/engine';

export interface Series {
  labels: Record<string, string>;
  values: (number | undefined)[];
}
export type Value = { kind: 'vector'; series: Series[] } | { kind: 'scalar'; value: number };

export interface EvalContext {
  engine: Engine;
  scope: ServiceScope | null;
  /** The evaluation times, ms. */
  steps: number[];
  /** Most rows one query may read (beyond: 400 naming it). */
  maxRows: number;
}
