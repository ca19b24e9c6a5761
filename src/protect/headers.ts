// The headers every API answer carries. A JSON API has no business being framed, sniffed as HTML,
// cached by a shared proxy, or leaking its URLs in a Referer: stored events are served verbatim, so
// these keep them inert in a browser.
export const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-resource-policy': 'same-origin',
} as const;
