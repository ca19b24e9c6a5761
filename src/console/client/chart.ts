// The volume chart: events per bucket per service from GET /metrics/events as stacked bars (uPlot:
// canvas, small and fast), with each service's total beside it. Dragging across the chart
// narrows the list to that span; clicking a point narrows it to that bucket; clicking a total
// filters on that service.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Series } from './api';

const PALETTE = ['#2f6fde', '#e8590c', '#2b8a3e', '#c2255c', '#7048e8', '#0c8599', '#e67700', '#5c940d', '#862e9c', '#495057'];
const BUCKET_MS = { '1m': 60_000, '1h': 3_600_000, '1d': 86_400_000 } as const;
export const colorOf = (i: number) => PALETTE[i % PALETTE.length]!;

export interface ChartHandlers {
  onRange(from: number, to: number): void;
  onService(service: string): void;
}

let plot: uPlot | null = null;
let resize: ResizeObserver | null = null;
let draggedAt = 0; // a drag ends with a click: that click is not a bucket pick

function options(data: Series, width: number, h: ChartHandlers): uPlot.Options {
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  const axis = { stroke: dark ? '#adb5bd' : '#495057', grid: { stroke: dark ? '#343a40' : '#e9ecef' }, ticks: { stroke: dark ? '#343a40' : '#dee2e6' } };
  return {
    width,
    height: 220,
    legend: { show: false },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'), // the list shows UTC too
    axes: [axis, { ...axis, size: 50 }],
    // Stacked: the series are running sums, drawn tallest first so each lower layer covers the one above.
    series: [
      {},
      ...data.series
        .map((s, i) => ({
          label: s.service,
          fill: colorOf(i),
          stroke: colorOf(i),
          width: 0,
          paths: uPlot.paths.bars!({ size: [0.85, 40] }),
          points: { show: false },
        }))
        .reverse(),
    ],
    hooks: {
      setSelect: [
        (u) => {
          if (u.select.width < 2) return;
          draggedAt = Date.now();
          const from = u.posToVal(u.select.left, 'x') * 1000;
          const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          h.onRange(Math.floor(from), Math.ceil(to));
        },
      ],
    },
  };
}

function renderTotals(el: HTMLElement, data: Series, h: ChartHandlers) {
  el.replaceChildren();
  const ranked = data.series.map((s, i) => ({ ...s, color: colorOf(i) })).sort((a, b) => b.total - a.total);
  for (const s of ranked.slice(0, 10)) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.title = `Show only ${s.service}`;
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = s.color;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = s.service;
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = s.total.toLocaleString('en');
    b.append(swatch, name, n);
    b.addEventListener('click', () => h.onService(s.service));
    li.append(b);
    el.append(li);
  }
}

/** Draws (or redraws) the chart and the totals for `data`. */
export function drawVolume(chartEl: HTMLElement, totalsEl: HTMLElement, data: Series, h: ChartHandlers) {
  plot?.destroy();
  resize?.disconnect();
  renderTotals(totalsEl, data, h);
  const x = data.series[0]?.points.map((p) => Date.parse(p.time) / 1000) ?? [];
  const sums: number[][] = [];
  for (const s of data.series) sums.push(s.points.map((p, j) => p.count + (sums.at(-1)?.[j] ?? 0)));
  plot = new uPlot(options(data, Math.max(200, chartEl.clientWidth), h), [x, ...sums.reverse()] as uPlot.AlignedData, chartEl);
  // A click (not a drag) on a point narrows the list to that bucket.
  plot.over.addEventListener('click', () => {
    const idx = plot?.cursor.idx;
    if (idx === null || idx === undefined || Date.now() - draggedAt < 400) return;
    const t = x[idx]! * 1000;
    h.onRange(t, t + BUCKET_MS[data.bucket] - 1);
  });
  resize = new ResizeObserver(() => plot?.setSize({ width: Math.max(200, chartEl.clientWidth), height: 220 }));
  resize.observe(chartEl);
}

export function clearVolume(chartEl: HTMLElement, totalsEl: HTMLElement) {
  plot?.destroy();
  plot = null;
  chartEl.replaceChildren();
  totalsEl.replaceChildren();
}
