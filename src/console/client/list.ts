// The event list: newest first, a page at a time through next_cursor ("Load more", or scrolling to
// the end), and the detail panel of one event. Every value is set as text (textContent): a message
// such as <img src=x onerror=alert(1)> shows as those characters and runs nothing.
import type { StoredEvent } from './api';

const MAX_ROWS = 5_000; // kept in the page; a long scroll drops none below this

function cell(text: string, className?: string) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** The time as the API gave it, shortened for a row: 2026-11-29 10:15:02.123. */
const rowTime = (iso: string) => iso.replace('T', ' ').replace(/Z$/, '');

export function eventRow(e: StoredEvent, onOpen: (e: StoredEvent) => void): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.id = e.id;
  tr.tabIndex = 0;
  const md = JSON.stringify(e.metadata);
  tr.append(
    cell(rowTime(e.timestamp), 'time'),
    cell(e.service, 'service'),
    cell(e.message, 'message'),
    cell(md === '{}' ? '' : md.length > 160 ? `${md.slice(0, 160)}…` : md, 'meta'),
  );
  tr.addEventListener('click', () => onOpen(e));
  tr.addEventListener('keydown', (k) => {
    if (k.key === 'Enter' || k.key === ' ') {
      k.preventDefault();
      onOpen(e);
    }
  });
  return tr;
}

export class EventList {
  private readonly seen = new Set<string>();
  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly onOpen: (e: StoredEvent) => void,
  ) {}

  get size() {
    return this.seen.size;
  }

  clear() {
    this.seen.clear();
    this.body.replaceChildren();
  }

  /** Adds events at the end (older pages) or the top (live tail); an event already shown is skipped. */
  add(events: StoredEvent[], where: 'end' | 'top') {
    const rows = events
      .filter((e) => !this.seen.has(e.id))
      .map((e) => {
        this.seen.add(e.id);
        return eventRow(e, this.onOpen);
      });
    if (where === 'end') this.body.append(...rows);
    else this.body.prepend(...rows);
    while (this.body.rows.length > MAX_ROWS) {
      const last = this.body.lastElementChild as HTMLTableRowElement;
      this.seen.delete(last.dataset.id ?? '');
      last.remove();
    }
    return rows.length;
  }
}

/** The detail panel: every field, the metadata as formatted JSON, its id, and a copy button. */
export function showDetail(panel: HTMLElement, e: StoredEvent) {
  const fields = panel.querySelector('#fields')!;
  fields.replaceChildren();
  for (const [k, v] of [
    ['id', e.id],
    ['timestamp', e.timestamp],
    ['service', e.service],
    ['message', e.message],
    ['stored at', e.ingestedAt],
  ] as const) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    fields.append(dt, dd);
  }
  panel.querySelector('#metadata')!.textContent = JSON.stringify(e.metadata, null, 2);
  const copy = panel.querySelector<HTMLButtonElement>('#copy')!;
  copy.textContent = 'Copy JSON';
  copy.onclick = () =>
    navigator.clipboard.writeText(JSON.stringify(e, null, 2)).then(
      () => (copy.textContent = 'Copied'),
      () => (copy.textContent = 'Copy failed'),
    );
  panel.hidden = false;
  panel.querySelector<HTMLButtonElement>('#close')!.focus();
}
