// Live tail: every two seconds, the events newer than the newest shown, newest first, added at the
// top without duplicates. At thousands of events a second only the newest page of each poll is
// shown, and the note says how many arrived: the list stays readable and the page stays smooth.
import { getJson, type EventPage } from './api';
import { eventsQuery, type Filters } from './state';

const EVERY_MS = 2_000;
const PAGE = 100;

export interface Tail {
  stop(): void;
}

export function startTail(filters: Filters, newest: () => string | null, onPage: (page: EventPage, note: string) => void, onError: (e: unknown) => void): Tail {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const poll = async () => {
    try {
      const from = newest() ?? new Date(Date.now() - EVERY_MS).toISOString();
      const window = { from: Date.parse(from), to: Date.now() + 60_000 };
      const page = await getJson<EventPage>(eventsQuery(filters, { pageSize: String(PAGE), order: 'desc' }, window));
      const total = page.pagination.total ?? page.events.length;
      const note = total > PAGE ? `live: ${total.toLocaleString('en')} new since the last look, showing the newest ${PAGE}` : 'live';
      if (!stopped) onPage(page, note);
    } catch (e) {
      onError(e);
    }
    if (!stopped) timer = setTimeout(poll, EVERY_MS);
  };
  timer = setTimeout(poll, 0);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
