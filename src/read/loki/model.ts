// How a stored event reads back through the Loki query API: the inverse of the push mappings
// (receive/loki.ts, receive/otlp.ts), so what an agent pushed reads as Loki would show it.
//
//   event                                   Loki
//   service                                 stream label service_name
//   metadata.labels {k: v} (Loki push)      the stream's other labels
//   metadata.resource: the attributes Loki  stream labels, dots as underscores (k8s.pod.name ->
//     promotes to labels (RESOURCE_LABELS)    k8s_pod_name)
//   metadata.resource: the others           structured metadata, dots as underscores
//   every other metadata key                structured metadata: nested keys joined with "_",
//                                             names outside [A-Za-z0-9_] as "_", values as text
//                                             (objects and arrays as their JSON when not flattened)
//   metadata.severity_text, else level,     structured metadata detected_level (lower case), as
//     else severity                           Loki 3 adds it
//   time, message                           the entry's timestamp (ns) and line

/** The OTLP resource attributes Loki 3 makes stream labels by default (distributor's otlp_config). */
export const RESOURCE_LABELS = [
  'service.namespace',
  'service.instance.id',
  'deployment.environment',
  'deployment.environment.name',
  'cloud.region',
  'cloud.availability_zone',
  'k8s.cluster.name',
  'k8s.namespace.name',
  'k8s.pod.name',
  'k8s.container.name',
  'container.name',
  'k8s.replicaset.name',
  'k8s.deployment.name',
  'k8s.statefulset.name',
  'k8s.daemonset.name',
  'k8s.cronjob.name',
  'k8s.job.name',
];
const RESOURCE_BY_LABEL = new Map(RESOURCE_LABELS.map((k) => [labelName(k), k]));

/** A label name as Loki writes it: characters outside [A-Za-z0-9_] as "_", never a leading digit. */
export function labelName(key: string): string {
  const s = key.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** The resource attribute behind a stream label, when it is one of RESOURCE_LABELS. */
export const resourceKeyOf = (label: string) => RESOURCE_BY_LABEL.get(label);

export interface Entry {
  /** Nanoseconds since the epoch, as text (microsecond precision: three trailing zeros). */
  ns: string;
  line: string;
  stream: Record<string, string>;
  meta: Record<string, string>;
  parsed: Record<string, string>;
}

export interface EventRow {
  us: string; // microseconds since the epoch, as text
  service: string;
  message: string;
  metadata: Record<string, unknown> | null;
}

const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

function flatten(prefix: string, value: unknown, into: Record<string, string>, depth = 0) {
  if (value && typeof value === 'object' && !Array.isArray(value) && depth < 8) {
    for (const [k, v] of Object.entries(value)) flatten(prefix ? `${prefix}_${labelName(k)}` : labelName(k), v, into, depth + 1);
  } else if (value !== null && value !== undefined) into[prefix] = text(value);
}

/** The stream labels and structured metadata of one stored event. */
export function entryOf(row: EventRow): Entry {
  const stream: Record<string, string> = { service_name: row.service };
  const meta: Record<string, string> = {};
  const md = row.metadata ?? {};
  for (const [k, v] of Object.entries(md)) {
    if (k === 'labels' && v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [lk, lv] of Object.entries(v)) if (lk !== 'service_name') stream[labelName(lk)] = text(lv);
    } else if (k === 'resource' && v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [rk, rv] of Object.entries(v)) {
        if (RESOURCE_BY_LABEL.has(labelName(rk)) && RESOURCE_BY_LABEL.get(labelName(rk)) === rk) stream[labelName(rk)] = text(rv);
        else flatten(labelName(rk), rv, meta);
      }
    } else flatten(labelName(k), v, meta);
  }
  const level = md.severity_text ?? md.level ?? md.severity;
  if (typeof level === 'string' && level) meta.detected_level = level.toLowerCase();
  return { ns: `${row.us}000`, line: row.message, stream, meta, parsed: {} };
}
