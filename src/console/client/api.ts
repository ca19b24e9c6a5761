// The console's only way to data: the public API, with the key the person gave (kept in this tab's
// session storage, sent as a Bearer token, never in a URL). Errors keep the API's code and message.

const KEY = 'aurore.apiKey';

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (k: string) => sessionStorage.setItem(KEY, k),
  forget: () => sessionStorage.removeItem(KEY),
};

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** GET a JSON route of the API. */
export async function getJson<T>(path: string): Promise<T> {
  const key = apiKey.get();
  const res = await fetch(path, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new HttpError(res.status, body.error ?? 'http_error', body.message ?? `${res.status} ${res.statusText}`);
  }
  return (await res.json()) as T;
}

export interface StoredEvent {
  id: string;
  timestamp: string;
  service: string;
  message: string;
  metadata: Record<string, unknown>;
  ingestedAt: string;
}

export interface EventPage {
  events: StoredEvent[];
  pagination: { total: number | null; total_is_exact: boolean; has_more: boolean; next_cursor: string | null };
}

export interface Series {
  bucket: '1m' | '1h' | '1d';
  from: string;
  to: string;
  series: { service: string; total: number; points: { time: string; count: number }[] }[];
}
