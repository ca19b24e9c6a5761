// The console page: filters (kept in the URL), the volume chart, the event list with its detail
// panel, live tail, the health strip and the key dialog, all over the public API.
import './console.css';
import { apiKey, getJson, HttpError, type EventPage, type Series } from './api';
import { clearVolume, drawVolume } from './chart';
import { showHealth } from './health';
import { askForKey } from './key';
import { EventList, showDetail } from './list';
import { bucketFor, eventsQuery, metaText, parseMeta, readUrl, timeWindow, writeUrl, type Filters, type Range } from './state';
import { startTail, type Tail } from './tail';

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const form = $<HTMLFormElement>('#filters');
const list = new EventList($<HTMLTableElement>('#list').tBodies[0]!, (e) => showDetail($('#detail'), e));
let filters: Filters = readUrl();
let cursor: string | null = null;
let newest: string | null = null;
let tail: Tail | null = null;
let generation = 0; // a newer refresh makes older answers stale
let healthTimer: ReturnType<typeof setInterval> | undefined;

function notice(text: string | null) {
  const n = $('#notice');
  n.textContent = text ?? '';
  n.hidden = !text;
}

/** What the API said, shown to the person: a key to give, a scope it lacks, or the error. */
async function handle(e: unknown) {
  if (e instanceof HttpError && e.status === 401) {
    notice('This service needs an API key with the query scope (or admin).');
    if (await askForKey(apiKey.get() ? 'That key is not valid. Give a key with the query scope (or admin).' : undefined)) void refresh();
    return;
  }
  if (e instanceof HttpError && e.status === 403) return notice(`${e.message}: the console needs a key with the query scope (or admin).`);
  if (e instanceof HttpError && e.status === 429) return notice(`Rate limited: ${e.message}`);
  notice(e instanceof Error ? e.message : String(e));
}

function fillForm(f: Filters) {
  const el = form.elements;
  (el.namedItem('range') as HTMLSelectElement).value = f.range;
  const local = (iso: string | null) => (iso ? iso.slice(0, 19) : '');
  (el.namedItem('from') as HTMLInputElement).value = local(f.from);
  (el.namedItem('to') as HTMLInputElement).value = local(f.to);
  (el.namedItem('q') as HTMLInputElement).value = f.q;
  (el.namedItem('meta') as HTMLInputElement).value = metaText(f.meta);
  const services = el.namedItem('service') as HTMLSelectElement;
  for (const s of f.services) if (![...services.options].some((o) => o.value === s)) services.add(new Option(s, s));
  for (const o of services.options) o.selected = f.services.includes(o.value);
  form.classList.toggle('is-custom', f.range === 'custom');
  $('#live').setAttribute('aria-pressed', String(f.live));
}

function readForm(): Filters {
  const el = form.elements;
  const range = (el.namedItem('range') as HTMLSelectElement).value as Range;
  const utc = (v: string) => (v ? new Date(`${v}Z`).toISOString() : null); // the inputs show UTC
  return {
    range,
    from: range === 'custom' ? utc((el.namedItem('from') as HTMLInputElement).value) : null,
    to: range === 'custom' ? utc((el.namedItem('to') as HTMLInputElement).value) : null,
    services: [...(el.namedItem('service') as HTMLSelectElement).selectedOptions].map((o) => o.value),
    q: (el.namedItem('q') as HTMLInputElement).value.trim(),
    meta: parseMeta((el.namedItem('meta') as HTMLInputElement).value),
    live: filters.live,
  };
}

/** The services there are (the last 30 days), for the picker. */
async function loadServices() {
  const s = await getJson<Series>(`/metrics/events?bucket=1d&from=${new Date(Date.now() - 30 * 86_400_000).toISOString()}`);
  const select = form.elements.namedItem('service') as HTMLSelectElement;
  const names = new Set([...s.series.map((x) => x.service), ...filters.services]);
  select.replaceChildren(...[...names].sort().map((n) => new Option(n, n, false, filters.services.includes(n))));
}

async function loadChart(gen: number) {
  const w = timeWindow(filters);
  const q = new URLSearchParams({ bucket: bucketFor(w.to - w.from), from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString() });
  if (filters.services.length) q.set('service', filters.services.join(','));
  // Too many services to chart in this range is said where the chart would be; the list still loads.
  const data = await getJson<Series>(`/metrics/events?${q}`).catch((e: unknown) => {
    if (!(e instanceof HttpError && e.status === 400)) throw e;
    if (gen === generation) {
      $('#volume-note').textContent = e.message;
      clearVolume($('#chart'), $('#totals'));
    }
    return null;
  });
  if (!data || gen !== generation) return;
  const note =
    filters.q || filters.meta.length
      ? 'counts of the services and time range (message and metadata filters apply to the list only)'
      : `per ${data.bucket === '1m' ? 'minute' : data.bucket === '1h' ? 'hour' : 'day'}`;
  $('#volume-note').textContent = note;
  if (!data.series.length) return clearVolume($('#chart'), $('#totals'));
  drawVolume($('#chart'), $('#totals'), data, {
    onRange: (from, to) => setFilters({ ...filters, range: 'custom', from: new Date(from).toISOString(), to: new Date(to).toISOString() }),
    onService: (service) => setFilters({ ...filters, services: [service] }),
  });
}

/** The next page of the list (the first when the cursor is null). */
async function loadPage(gen: number) {
  const page = await getJson<EventPage>(eventsQuery(filters, cursor ? { pageSize: '100', count: 'none', cursor } : { pageSize: '100' }));
  if (gen !== generation) return;
  if (!cursor) {
    const t = page.pagination.total;
    $('#count').textContent = t === null ? '' : `${t.toLocaleString('en')}${page.pagination.total_is_exact ? '' : ' (about)'} events`;
    newest = page.events[0]?.timestamp ?? null;
  }
  list.add(page.events, 'end');
  cursor = page.pagination.next_cursor;
  $('#more').hidden = !page.pagination.has_more;
  const empty = $('#empty');
  empty.hidden = list.size > 0;
  empty.textContent =
    filters.services.length || filters.q || filters.meta.length
      ? 'No event matches these filters in this time range.'
      : `No events in this time range. Send one: curl -X POST ${location.origin}/events -H 'content-type: application/json' -d '{"service":"hello","message":"first event"}'`;
}

async function refresh() {
  const gen = ++generation;
  writeUrl(filters);
  fillForm(filters);
  notice(null);
  cursor = null;
  list.clear();
  try {
    await Promise.all([loadChart(gen), loadPage(gen)]);
  } catch (e) {
    await handle(e);
  }
  restartTail();
}

function setFilters(f: Filters) {
  filters = f;
  void refresh();
}

function restartTail() {
  tail?.stop();
  tail = null;
  $('#live-note').textContent = '';
  if (!filters.live) return;
  tail = startTail(
    filters,
    () => newest,
    (page: EventPage, note: string) => {
      if (page.events[0]) newest = page.events[0].timestamp;
      list.add(page.events, 'top');
      $('#empty').hidden = list.size > 0;
      $('#live-note').textContent = note;
    },
    (e) => void handle(e),
  );
}

async function healthLoop() {
  clearInterval(healthTimer);
  try {
    if (await showHealth($('#health'))) healthTimer = setInterval(() => void showHealth($('#health')).catch(() => {}), 10_000);
  } catch {
    $('#health').hidden = true;
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setFilters(readForm());
});
(form.elements.namedItem('range') as HTMLSelectElement).addEventListener('change', () =>
  form.classList.toggle('is-custom', (form.elements.namedItem('range') as HTMLSelectElement).value === 'custom'),
);
$('#live').addEventListener('click', () => setFilters({ ...filters, live: !filters.live }));
$('#more').addEventListener('click', () => void loadPage(generation).catch(handle));
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && cursor && !$('#more').hidden) void loadPage(generation).catch(handle);
}).observe($('#more'));
$('#close').addEventListener('click', () => ($('#detail').hidden = true));
document.addEventListener('keydown', (k) => {
  if (k.key === 'Escape') $('#detail').hidden = true;
});
$('#key-button').addEventListener('click', async () => {
  if (await askForKey()) {
    void healthLoop();
    void loadServices().catch(() => {});
    void refresh();
  }
});
addEventListener('popstate', () => setFilters(readUrl()));
setInterval(() => {
  if (filters.live && filters.range !== 'custom') void loadChart(generation).catch(() => {});
}, 10_000);

void loadServices().catch(() => {});
void healthLoop();
void refresh();
