// JSON over HTTP to our own origin. Credentials travel only as HttpOnly
// cookies (SameSite=Strict), so nothing secret passes through this code.

export class ApiError extends Error {
  constructor(status, body) {
    const err = body?.error || {};
    super(err.message || (status ? `The server answered ${status}.` : 'Cannot reach the server.'));
    this.status = status;
    this.code = err.code || (status ? 'http_error' : 'network');
    this.reason = err.reason || null;
    this.retryAfter = err.retry_after ?? null;
  }
}

// The server's version when this page started talking to it. A later answer
// with another version means a new Linkward was deployed: the page offers to
// reload (an 'lw-update' event on window), once.
let pageVersion = null;
let updateAnnounced = false;

function noteVersion(res) {
  const v = res.headers.get('linkward-version');
  if (!v) return;
  if (pageVersion === null) pageVersion = v;
  else if (v !== pageVersion && !updateAnnounced) {
    updateAnnounced = true;
    window.dispatchEvent(new CustomEvent('lw-update', { detail: { from: pageVersion, to: v } }));
  }
}

/** request('POST', '/v1/…', {…}) → parsed JSON; throws ApiError. */
export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
  if (pageVersion) init.headers['linkward-client-version'] = pageVersion;
  // The connection, where the browser tells it (Network Information API, on
  // phones and ChromeOS): the device list shows "reported Wi-Fi" and the like.
  const kind = navigator.connection?.type;
  if (kind === 'wifi' || kind === 'cellular' || kind === 'ethernet') init.headers['linkward-network'] = kind;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  noteVersion(res);
  let json = null;
  try { json = await res.json(); } catch { /* empty or not JSON */ }
  if (res.status === 426 && !updateAnnounced) {
    updateAnnounced = true;
    window.dispatchEvent(new CustomEvent('lw-update', { detail: { from: pageVersion, to: null } }));
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** ws:// or wss:// URL of our own origin. */
export function socketUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}
