// The HTML of the two pages the service serves to browsers: the console (/) and the API reference
// (/docs). Shells only: no inline script or style (their Content-Security-Policy allows the
// service's own files and nothing else), no data (the scripts fetch it from the public API).

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Aurore Events</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/main.css">
<script type="module" src="/console/main.js"></script>
</head>
<body>
<header class="top">
  <h1><a href="/">Aurore Events</a></h1>
  <div id="health" class="health" hidden aria-live="polite"></div>
  <nav>
    <button id="key-button" type="button">API key</button>
    <a href="/docs">API reference</a>
  </nav>
</header>
<div id="notice" class="notice" role="alert" hidden></div>
<form id="filters" class="filters" autocomplete="off">
  <label>Range
    <select name="range">
      <option value="15m">last 15 min</option><option value="1h">last hour</option><option value="24h">last 24 hours</option>
      <option value="7d">last 7 days</option><option value="30d">last 30 days</option><option value="custom">custom</option>
    </select>
  </label>
  <label class="custom">From (UTC) <input name="from" type="datetime-local" step="1"></label>
  <label class="custom">To (UTC) <input name="to" type="datetime-local" step="1"></label>
  <label>Services <select name="service" multiple size="3"></select></label>
  <label>Message contains <input name="q" type="search" placeholder="payment failed"></label>
  <label>Metadata <input name="meta" type="search" placeholder="user_id=123, region=eu"></label>
  <div class="actions">
    <button type="submit">Apply</button>
    <button type="button" id="live" aria-pressed="false">Live tail</button>
  </div>
</form>
<main>
  <section class="volume" aria-label="Volume">
    <div class="volume-head"><h2>Volume</h2><span id="volume-note"></span></div>
    <div class="volume-body">
      <div id="chart" class="chart" role="img" aria-label="Events over time per service"></div>
      <ol id="totals" class="totals" aria-label="Top services"></ol>
    </div>
  </section>
  <section class="events" aria-label="Events">
    <div class="events-head"><h2>Events</h2><span id="count"></span><span id="live-note"></span></div>
    <div class="table-wrap">
      <table id="list"><thead><tr><th>Time (UTC)</th><th>Service</th><th>Message</th><th>Metadata</th></tr></thead><tbody></tbody></table>
    </div>
    <p id="empty" class="empty" hidden></p>
    <button id="more" type="button" hidden>Load more</button>
  </section>
</main>
<aside id="detail" class="detail" hidden aria-label="Event">
  <div class="detail-head"><h2>Event</h2><button type="button" id="copy">Copy JSON</button><button type="button" id="close" aria-label="Close">Close</button></div>
  <dl id="fields"></dl>
  <pre id="metadata"></pre>
</aside>
<dialog id="key-dialog">
  <form method="dialog" id="key-form">
    <h2>API key</h2>
    <p id="key-reason">This service requires an API key with the <b>query</b> scope (or <b>admin</b>).</p>
    <p>It is kept in this tab only (session storage) and sent as <code>Authorization: Bearer</code>.</p>
    <input id="key-input" type="password" autocomplete="off" spellcheck="false" aria-label="API key">
    <div class="actions">
      <button value="save" type="submit">Use key</button>
      <button value="forget" type="submit" id="forget">Forget key</button>
      <button value="cancel" type="submit">Cancel</button>
    </div>
  </form>
</dialog>
</body>
</html>
`;

export const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Aurore Events API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="stylesheet" href="/docs/docs.css">
<script src="/docs/swagger-ui-bundle.js" defer></script>
<script type="module" src="/docs/init.js"></script>
</head>
<body>
<header class="top"><h1><a href="/">Aurore Events</a> · API reference</h1><nav><a href="/">Console</a></nav></header>
<div id="swagger-ui"></div>
</body>
</html>
`;
