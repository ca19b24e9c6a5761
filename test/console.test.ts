// The web console in a real browser: Debian's Chromium driven by playwright-core (no browser is
// downloaded). Without /usr/bin/chromium these tests are skipped, saying so; .ci/run installs it.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { newTarget, ROOT, startService, type Target } from './harness';

setDefaultTimeout(120_000);

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present) console.warn(`SKIPPED: the browser tests of the console need Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`);
// Without these flags Chromium keeps trying to reach outside hosts (seen on these machines).
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];
const XSS = '<img src=x onerror=alert(1)>';

type Svc = Awaited<ReturnType<typeof startService>>;
interface Opened {
  page: Page;
  problems: string[]; // console errors, failed requests, page errors, dialogs
  requests: string[];
}

async function open(browser: Browser, url: string, opts: { width?: number; dark?: boolean } = {}): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: 860 }, colorScheme: opts.dark ? 'dark' : 'light' });
  const page = await context.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(url);
  return { page, problems, requests };
}

/** The ids of the rows the list shows, top to bottom. */
const rowIds = (page: Page) => page.$$eval('#list tbody tr', (rows) => rows.map((r: any) => r.dataset.id as string));

async function apiIds(svc: Svc, query: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor = '';
  for (;;) {
    const page = (await (await svc.app.request(`/events?${query}&pageSize=1000&count=none${cursor ? `&cursor=${cursor}` : ''}`)).json()) as {
      events: { id: string }[];
      pagination: { next_cursor: string | null };
    };
    ids.push(...page.events.map((e) => e.id));
    if (!page.pagination.next_cursor) return ids;
    cursor = page.pagination.next_cursor;
  }
}

describe.skipIf(!present)('the console in Chromium [embedded]', () => {
  let target: Target;
  let svc: Svc;
  let server: ReturnType<typeof Bun.serve>;
  let browser: Browser;
  let base: string;
  const now = Date.now();
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target);
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    base = `http://127.0.0.1:${server.port}`;
    const services = ['checkout', 'auth', 'search', 'billing'];
    const events = Array.from({ length: 330 }, (_, i) => ({
      service: services[i % 4],
      message: i === 7 ? XSS : `${['Order placed', 'Payment failed', 'User login', 'Cache miss'][i % 4]} #${i}`,
      timestamp: new Date(now - 60_000 - i * 9_000).toISOString(),
      metadata: { user_id: String(i % 5), region: i % 2 ? 'eu' : 'us' },
    }));
    expect(
      (await svc.app.request('/events/batch?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) }))
        .status,
    ).toBe(201);
    await svc.state.jobs!.runAll(); // the first maintenance runs are over: the health strip shows a quiet database
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
    await svc?.stop();
    await target?.destroy();
  });

  test('the page loads with no console error and no failed request; posted events are listed newest first; a screenshot for the README', async () => {
    const { page, problems } = await open(browser, `${base}/`);
    await page.waitForSelector('#list tbody tr');
    expect((await rowIds(page)).slice(0, 100)).toEqual((await apiIds(svc, `from=${new Date(now - 3_600_000).toISOString()}`)).slice(0, 100));
    await page.waitForSelector('#chart canvas');
    await page.waitForTimeout(300);
    // UPDATE_SCREENSHOT=1 writes the README's picture (docs/console.png); otherwise a scratch copy.
    const shot = process.env.UPDATE_SCREENSHOT ? `${ROOT}docs/console.png` : `${tmpdir()}/aurore-console.png`;
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
    expect(problems).toEqual([]);
  });

  test('the chart is drawn and its totals are those of /metrics/events', async () => {
    const { page, problems } = await open(browser, `${base}/?range=24h`);
    await page.waitForSelector('#totals li');
    const drawn = await page.$eval('#chart canvas', (c: any) => {
      const { data } = c.getContext('2d').getImageData(0, 0, c.width, c.height) as { data: Uint8ClampedArray };
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++;
      return n;
    });
    expect(drawn).toBeGreaterThan(500);
    const shown = Object.fromEntries(
      await page.$$eval('#totals li', (lis) =>
        lis.map((li) => [li.querySelector('.name')!.textContent!, Number(li.querySelector('.n')!.textContent!.replace(/,/g, ''))]),
      ),
    );
    const api = (await (await svc.app.request('/metrics/events?bucket=1h')).json()) as { series: { service: string; total: number }[] };
    expect(shown).toEqual(Object.fromEntries(api.series.map((s) => [s.service, s.total])));
    expect(problems).toEqual([]);
  });

  test('each filter narrows the list to what the API returns for the same filter, and lives in the URL', async () => {
    const { page, problems } = await open(browser, `${base}/?range=24h`);
    await page.waitForSelector('#list tbody tr');
    const day = `from=${new Date(now - 86_400_000).toISOString()}`;
    const cases: [string, () => Promise<void>, string, RegExp][] = [
      ['service', () => page.selectOption('select[name=service]', ['auth', 'billing']).then(() => {}), `service=auth,billing&${day}`, /service=auth%2Cbilling/],
      ['message', () => page.fill('input[name=q]', 'payment FAILED'), `service=auth,billing&q=payment%20FAILED&${day}`, /q=payment/],
      ['metadata', () => page.fill('input[name=meta]', 'user_id=3'), `service=auth,billing&q=payment%20FAILED&metadata.user_id=3&${day}`, /meta=user_id%3D3/],
    ];
    for (const [name, act, query, inUrl] of cases) {
      await act();
      await page.click('button[type=submit]');
      const expected = (await apiIds(svc, query)).slice(0, 100); // the first page
      await page.waitForFunction(
        (ids) => [...(globalThis as any).document.querySelectorAll('#list tbody tr')].map((r: any) => r.dataset.id).join() === ids.join(),
        expected,
      );
      expect(`${name}: ${JSON.stringify(await rowIds(page))}`).toBe(`${name}: ${JSON.stringify(expected)}`);
      expect(expected.length).toBeGreaterThan(0);
      expect(page.url()).toMatch(inUrl);
    }
    // A custom time range: the 10 minutes after the newest event minus an hour.
    const from = new Date(now - 30 * 60_000).toISOString().slice(0, 19);
    const to = new Date(now - 20 * 60_000).toISOString().slice(0, 19);
    await page.goto(`${base}/?range=custom&from=${from}Z&to=${to}Z`);
    const expected = await apiIds(svc, `from=${from}Z&to=${to}Z`);
    expect(expected.length).toBeGreaterThan(20);
    expect(expected.length).toBeLessThan(100);
    await page.waitForFunction((n) => (globalThis as any).document.querySelectorAll('#list tbody tr').length === n, expected.length);
    expect(await rowIds(page)).toEqual(expected);
    expect(problems).toEqual([]);
  });

  test('paging reaches the last event with no duplicates', async () => {
    const { page, problems } = await open(browser, `${base}/?range=24h`);
    await page.waitForSelector('#list tbody tr');
    for (let i = 0; i < 10 && (await page.isVisible('#more')); i++) {
      const before = (await rowIds(page)).length;
      await page.click('#more');
      await page.waitForFunction(
        (n) => (globalThis as any).document.querySelectorAll('#list tbody tr').length > n || (globalThis as any).document.querySelector('#more').hidden,
        before,
      );
    }
    const ids = await rowIds(page);
    expect(ids).toEqual(await apiIds(svc, `from=${new Date(now - 86_400_000).toISOString()}`));
    expect(new Set(ids).size).toBe(330);
    expect(problems).toEqual([]);
  });

  test('a message shaped like HTML is shown as those characters and runs nothing; the detail panel shows every field', async () => {
    const { page, problems } = await open(browser, `${base}/?range=24h&q=onerror`);
    await page.waitForSelector('#list tbody tr');
    expect(await page.$eval('#list tbody tr td.message', (td) => td.textContent)).toBe(XSS);
    expect(await page.$$('#list img')).toHaveLength(0);
    await page.click('#list tbody tr');
    await page.waitForSelector('#detail:not([hidden])');
    const fields = await page.$eval('#fields', (dl) => dl.textContent);
    expect(fields).toContain(XSS);
    expect(JSON.parse((await page.$eval('#metadata', (pre) => pre.textContent))!)).toEqual({ user_id: '2', region: 'eu' });
    await page.keyboard.press('Escape');
    expect(await page.isHidden('#detail')).toBe(true);
    expect(problems).toEqual([]); // no dialog: alert(1) never ran
  });

  test('live tail shows an event posted after the page opened, once', async () => {
    const { page, problems } = await open(browser, `${base}/?range=1h`);
    await page.waitForSelector('#list tbody tr');
    await page.click('#live');
    expect(page.url()).toContain('live=1');
    const res = await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'late-arrival', message: 'posted while watching' }),
    });
    expect(res.status).toBe(201);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#list tbody tr td.message')?.textContent === 'posted while watching', null, {
      timeout: 15_000,
    });
    await page.waitForTimeout(4_500); // two more polls
    const messages = await page.$$eval('#list tbody tr td.message', (tds) => tds.map((t) => t.textContent));
    expect(messages.filter((m) => m === 'posted while watching')).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  test('at 360 px and in the dark scheme the page still works (screenshots kept for review)', async () => {
    const { page, problems } = await open(browser, `${base}/?range=24h`, { width: 360, dark: true });
    await page.waitForSelector('#list tbody tr');
    await page.waitForSelector('#chart canvas');
    const overflow = await page.evaluate(
      () => (globalThis as any).document.documentElement.scrollWidth - (globalThis as any).document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0); // nothing wider than the phone
    const bg = await page.evaluate(() => (globalThis as any).getComputedStyle((globalThis as any).document.body).backgroundColor);
    expect(bg).toBe('rgb(13, 17, 23)');
    await page.screenshot({ path: `${tmpdir()}/aurore-console-360-dark.png` });
    expect(problems).toEqual([]);
  });

  test('the API reference (Swagger UI) loads under the same policy, with no console error', async () => {
    const { page, problems } = await open(browser, `${base}/docs`);
    await page.waitForSelector('.opblock-tag');
    expect(await page.$$eval('.opblock-summary-path', (els) => els.length)).toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });
});

describe.skipIf(!present)('the console with API keys [embedded]', () => {
  const KEYS = { ingest: 'ingest-key-0123456789abcd', query: 'query-key-0123456789abcd', admin: 'admin-key-0123456789abcd' };
  const TEAM = 'team-key-0123456789abcdef'; // query, limited to the service 'keyed'
  let target: Target;
  let svc: Svc;
  let server: ReturnType<typeof Bun.serve>;
  let browser: Browser;
  beforeAll(async () => {
    target = await newTarget('embedded');
    svc = await startService(target, {
      API_KEYS: `agent:ingest:${KEYS.ingest},grafana:query:${KEYS.query},ops:admin:${KEYS.admin},team:query:${TEAM}:services=keyed`,
    });
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.ingest}` },
      body: JSON.stringify({ service: 'keyed', message: 'behind a key' }),
    });
    await svc.app.request('/events?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.ingest}` },
      body: JSON.stringify({ service: 'other-team', message: 'not for the team key' }),
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
    await svc?.stop();
    await target?.destroy();
  });

  const giveKey = async (page: Page, key: string) => {
    if (!(await page.isVisible('#key-dialog'))) await page.click('#key-button');
    await page.fill('#key-input', key);
    await page.click('#key-form button[value=save]');
  };

  test('no key: it asks; a key without the scope: it names the scope; the right key: events and, for admin, the health strip; forget key', async () => {
    const { page, requests } = await open(browser, `http://127.0.0.1:${server.port}/`);
    await page.waitForSelector('#key-dialog[open]');
    await giveKey(page, KEYS.ingest);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#notice')?.textContent?.includes("lacks the 'query' scope"));
    await giveKey(page, KEYS.query);
    await page.waitForSelector('#list tbody tr');
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#list tbody tr').length === 2);
    expect(await page.isHidden('#health')).toBe(true); // a query key may not see it
    await giveKey(page, KEYS.admin);
    await page.waitForSelector('#health:not([hidden])');
    expect(await page.$eval('#health', (h) => h.textContent)).toContain('Queue');
    // The key travels in a header only: never in a URL, kept in this tab's session storage.
    for (const k of Object.values(KEYS)) expect(requests.some((u) => u.includes(k))).toBe(false);
    expect(page.url()).not.toContain(KEYS.admin);
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('aurore.apiKey'))).toBe(KEYS.admin);
    expect(await page.evaluate(() => (globalThis as any).localStorage.length)).toBe(0);
    await page.click('#key-button');
    await page.click('#key-form button[value=forget]');
    // the dialog's close event comes a task later
    await page.waitForFunction(() => (globalThis as any).sessionStorage.getItem('aurore.apiKey') === null, null, { timeout: 5000 });
  });

  test("a key limited to a service sees only that service's events and totals, as its API calls do", async () => {
    const { page, problems } = await open(browser, `http://127.0.0.1:${server.port}/?range=24h`);
    await page.waitForSelector('#key-dialog[open]');
    await giveKey(page, TEAM);
    await page.waitForSelector('#list tbody tr');
    await page.waitForSelector('#totals li');
    expect(await page.$$eval('#list tbody tr td.service', (tds) => tds.map((td) => td.textContent))).toEqual(['keyed']);
    expect(await page.$$eval('#totals li .name', (names) => names.map((n) => n.textContent))).toEqual(['keyed']);
    // Only the first calls, before the key was given, were refused.
    expect(problems.every((p) => p.includes('401'))).toBe(true);
  });
});

describe.skipIf(!present)('the console past SERIES_MAX_POINTS [embedded]', () => {
  test('a range with too many services to chart says so where the chart would be, and still lists the events', async () => {
    const target = await newTarget('embedded');
    const svc = await startService(target, { SERIES_MAX_POINTS: '100' }); // the last hour: 2 services x 60 minutes
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try {
      const events = ['many-a', 'many-b'].map((service) => ({ service, message: `from ${service}` }));
      expect(
        (await svc.app.request('/events/batch?wait=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) }))
          .status,
      ).toBe(201);
      const { page, problems } = await open(browser, `http://127.0.0.1:${server.port}/`);
      await page.waitForSelector('#list tbody tr');
      await page.waitForFunction(() => (globalThis as any).document.querySelector('#volume-note')?.textContent?.includes('more than 100 points'));
      expect(await page.$eval('#volume-note', (n) => n.textContent)).toContain('name fewer services');
      expect((await rowIds(page)).length).toBe(2);
      expect(await page.$$('#chart canvas')).toHaveLength(0);
      expect(await page.isVisible('#notice')).toBe(false); // not an error of the page: the list is there
      // Chromium reports the refused fetch itself; nothing else went wrong.
      expect(problems.filter((p) => !p.includes('status of 400'))).toEqual([]);
    } finally {
      await browser.close();
      server.stop(true);
      await svc.stop();
      await target.destroy();
    }
  });
});

describe('CONSOLE=false [embedded]', () => {
  test('/ is a 404 and the console files are not served; /docs stays; on by default, under its own policy', async () => {
    const [offTarget, onTarget] = await Promise.all([newTarget('embedded'), newTarget('embedded')]);
    const off = await startService(offTarget, { CONSOLE: 'false' });
    const on = await startService(onTarget);
    try {
      expect((await off.app.request('/')).status).toBe(404);
      expect((await off.app.request('/console/main.js')).status).toBe(404);
      expect((await off.app.request('/docs')).status).toBe(200);
      const page = await on.app.request('/');
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      );
      expect((await on.app.request('/console/main.js')).headers.get('content-type')).toContain('javascript');
      expect((await on.app.request('/console/nope.js')).status).toBe(404);
    } finally {
      await Promise.all([off.stop(), on.stop()]);
      await Promise.all([offTarget.destroy(), onTarget.destroy()]);
    }
  });
});
