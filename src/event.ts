// The one internal event: what every receiver produces and every reader returns. Its rules (the
// service alphabet, the id format, how an instant is written) live here, below both the receive and
// the read stages, so that neither has to import the other.

/** `service`: letters, digits and . _ : - (safe in URLs, labels and file names). */
export const SERVICE_RE = /^[A-Za-z0-9._:-]+$/;
export const SERVICE_RULE = 'may contain only letters, digits, and . _ : -';
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * How deep metadata may nest (objects and arrays), checked where it comes in (events, metadata
 * filters). Real metadata nests a few levels; a jsonb value about 750 levels deep overflows the
 * embedded engine's own stack, which corrupts that PGlite instance without an error (engine.ts):
 * 2,000 levels of arrays fit in METADATA_MAX_BYTES. Not a setting: the margin below that is the point.
 */
export const METADATA_MAX_DEPTH = 64;
export const METADATA_DEPTH_RULE = `must nest at most ${METADATA_MAX_DEPTH} levels of objects and arrays`;

/** True when a parsed JSON value nests objects and arrays more than `levels` deep (stops looking there). */
export function nestsDeeper(v: unknown, levels: number = METADATA_MAX_DEPTH): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (levels === 0) return true;
  if (Array.isArray(v)) return v.some((x) => nestsDeeper(x, levels - 1));
  for (const k in v) if (nestsDeeper((v as Record<string, unknown>)[k], levels - 1)) return true;
  return false;
}

// ISO-8601 date-time with a mandatory offset: without one the instant is ambiguous.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz]|([+-])(\d{2}):?(\d{2}))$/;

let lastMs = NaN;
let lastIso = '';
/**
 * A millisecond as ISO-8601 UTC text, formatted once per millisecond: the request log and each
 * event's default time ask for now thousands of times a second, and an agent's records mostly share
 * their millisecond.
 */
export function isoOfMs(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Now, as ISO-8601 UTC text. */
export const isoNow = (): string => isoOfMs(Date.now());

/** Normalizes an ISO-8601 timestamp with offset to UTC ISO (ms precision); null when invalid. */
export function parseTimestamp(s: string): string | null {
  const m = ISO_RE.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  const sec = m[6] ? Number(m[6]) : 0;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return null; // 2024-02-30
  let off = 0;
  if (m[9]) {
    const oh = Number(m[10]),
      om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    off = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const t = Date.UTC(y, mo - 1, d, h, mi, sec, ms) - off * 60_000;
  const date = new Date(t);
  // Stay inside what both JS and PostgreSQL represent unambiguously as 4-digit years.
  if (Number.isNaN(t) || date.getUTCFullYear() < 1000 || date.getUTCFullYear() > 9999) return null;
  return date.toISOString();
}
