// The linked session: the device-bound credential refresh, the live socket,
// and the end of the session (PRODUCT §3).
//
// The credential is an HttpOnly cookie that lapses after token_expires_in
// seconds. Before it does, we sign the server's latest challenge with the
// device key (POST /v1/session/refresh) and get a new cookie. A signature over
// a stale challenge ends the session as stolen, so the latest challenge is kept
// in IndexedDB (completion, refresh answers, proof.challenge events), old ones
// are never taken back, and tabs of this browser refresh one at a time.

import { ApiError, request, socketUrl } from './api.js';
import * as store from './keys.js';
import * as proof from './proof.mjs';

export const events = new EventTarget();

let dev = null; // {id, account_id, handle, persistent, challenge, ttl_ms, expires_at, linked_at}
let ended = false;
let endingMessage = null;
let loggingOut = false; // our own DELETE /v1/session is under way
let refreshTimer = 0;
let refreshing = null;
const retired = new Set(); // challenges already replaced: never go back to one
const inflight = new Set(); // requests under way with the current cookie

let ws = null;
let wsOpened = false; // a socket was open before: a new one follows a gap, and events may have been missed
let wsRetry = 0;
let wsBackoff = 1000;
let pingTimer = 0;

const emit = (name, detail) => events.dispatchEvent(new CustomEvent(name, { detail }));

export const device = () => dev;
export const isEnded = () => ended;

/** One tab at a time (Web Locks), so two tabs never sign the same challenge. */
const exclusive = (fn) => (navigator.locks ? navigator.locks.request('linkward-refresh', fn) : fn());

/** Starts the session of a device that has just completed its link. */
export async function begin(answer) {
  ended = false;
  endingMessage = null;
  dev = {
    id: answer.device_id,
    account_id: answer.account_id,
    handle: answer.handle,
    persistent: answer.persistent !== false,
    linked_at: new Date().toISOString(),
  };
  await remember(answer.challenge, answer.token_expires_in);
  connect();
}

/** Picks up the session kept in IndexedDB (a reload, a new browser start). Returns GET /v1/session. */
export async function resume(stored) {
  ended = false;
  endingMessage = null;
  dev = stored;
  if (!(dev.expires_at > Date.now() + 1000)) await refresh(dev.challenge);
  const me = await call('GET', '/v1/session');
  await remember(me.challenge, me.token_expires_in);
  connect();
  return me;
}

/**
 * An authenticated API call: refreshes a lapsed credential and retries once;
 * a session the server says is over ends here (and the caller gets the error).
 */
export async function call(method, path, body, retry = true) {
  if (ended || !dev) throw new ApiError(401, { error: { code: 'session_ended', message: 'Your session ended.' } });
  if (refreshing) await refreshing.catch(() => {});
  // About to lapse: refresh first rather than be refused.
  if (retry && dev.expires_at - Date.now() < 250) await refresh(dev.challenge).catch(() => {});
  if (ended || !dev) throw new ApiError(401, { error: { code: 'session_ended', message: 'Your session ended.' } });
  const seen = dev.challenge;
  const sent = request(method, path, body);
  inflight.add(sent);
  try {
    return await sent;
  } catch (e) {
    if (e.status === 401 && retry && !ended) {
      if (e.code === 'credential_expired') {
        await refresh(seen);
        return call(method, path, body, false);
      }
      // Another tab may have replaced the cookie while this request was under way.
      if (e.code === 'unauthenticated' && (await refreshedSince(seen))) return call(method, path, body, false);
    }
    if (e.status === 401 && !ended) await end(e.reason || (e.code === 'token_theft' ? 'token_theft' : e.code), e.message);
    throw e;
  } finally {
    inflight.delete(sent);
  }
}

async function refreshedSince(challenge) {
  await exclusive(async () => {}); // wait for a refresh in another tab to finish
  const cur = await store.get('device').catch(() => null);
  if (cur && dev && cur.id === dev.id && cur.challenge !== challenge) {
    await remember(cur.challenge, Math.max(0, (cur.expires_at - Date.now()) / 1000), true);
    return true;
  }
  return false;
}

/**
 * Gets a new credential by signing the current challenge with the device key.
 * `seen`: the challenge known when the credential was found lapsed (null for
 * a refresh ahead of time).
 */
export function refresh(seen = null) {
  refreshing ||= exclusive(async () => {
    const cur = await store.get('device');
    if (!cur || cur.id !== dev?.id) throw new Error('this device is no longer stored');
    const left = cur.expires_at - Date.now();
    if (cur.challenge !== (seen ?? dev.challenge) && left > 1000) {
      // Another tab refreshed meanwhile: its cookie is ours too.
      await remember(cur.challenge, left / 1000, true);
      return;
    }
    if (seen === null && left > margin(cur.ttl_ms)) return schedule();
    let challenge = cur.challenge;
    if (seen === null && left > 3000) {
      // Well within its life: ask for the challenge, in case an answer was lost on the way.
      try { challenge = (await request('GET', '/v1/session')).challenge || challenge; } catch { /* use ours */ }
    }
    const pair = await store.loadKey();
    if (!pair) throw new Error('the device key is missing');
    // Requests sent with the current cookie go first: the refresh retires it.
    await Promise.allSettled([...inflight]);
    const signature = await store.signProof(pair, proof.REFRESH, cur.id, store.b64d(challenge));
    const ans = await request('POST', '/v1/session/refresh', { signature, credential: 'cookie' });
    await remember(ans.challenge, ans.token_expires_in);
  }).catch(async (e) => {
    if (e instanceof ApiError && e.status === 401 && !ended) await end(e.reason || e.code, e.message);
    else if (!ended) schedule(5000); // offline: try again soon
    throw e;
  }).finally(() => { refreshing = null; });
  return refreshing;
}

const margin = (ttl) => Math.min(60000, (ttl || 600000) / 4);

function schedule(delay) {
  clearTimeout(refreshTimer);
  if (ended || !dev) return;
  const wait = delay ?? Math.max(250, dev.expires_at - Date.now() - margin(dev.ttl_ms));
  refreshTimer = setTimeout(() => { refresh(null).catch(() => {}); }, wait);
}

/**
 * Keeps a new challenge and the credential's lifetime (never an older
 * challenge). The server rounds seconds up: count one less, to be safe.
 */
async function remember(challenge, seconds, exact = false) {
  if (ended || !dev || !challenge || retired.has(challenge)) return;
  if (dev.challenge && dev.challenge !== challenge) retired.add(dev.challenge);
  const ttl = Math.max(0, Number(seconds) || 0) * 1000;
  const left = exact ? ttl : Math.max(0, ttl - 1000);
  dev = { ...dev, challenge, ttl_ms: Math.max(ttl, dev.ttl_ms || 0), expires_at: Date.now() + left };
  schedule();
  try { await store.put('device', dev); } catch { /* wiped meanwhile */ }
}

// ---------------------------------------------------------------------------
// The live socket

function connect() {
  if (ended || ws) return;
  const sock = new WebSocket(socketUrl('/v1/ws'));
  ws = sock;
  sock.onopen = () => {
    wsBackoff = 1000;
    clearInterval(pingTimer);
    pingTimer = setInterval(() => sock.readyState === 1 && sock.send('{"event":"ping"}'), 25000);
  };
  sock.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    onEvent(ev);
  };
  sock.onclose = (e) => {
    if (ws === sock) ws = null;
    clearInterval(pingTimer);
    if (ended) return;
    // 4001: the session ended (the event normally came first); otherwise a
    // network hiccup or a restart. Either way the server tells us where we stand.
    const wait = e.code === 4001 ? 0 : wsBackoff;
    wsBackoff = Math.min(wsBackoff * 2, 30000);
    clearTimeout(wsRetry);
    wsRetry = setTimeout(async () => {
      try { await call('GET', '/v1/session'); } catch { if (ended) return; }
      connect();
    }, wait);
  };
}

function onEvent(ev) {
  switch (ev.event) {
    case 'hello':
      if (wsOpened) emit('resync', ev);
      wsOpened = true;
      break;
    case 'proof.challenge':
      remember(ev.challenge, ev.token_expires_in);
      break;
    case 'session.ended':
      // Ended elsewhere (the phone, the sweeper): our HttpOnly cookie is dead
      // but still here, and only the server can remove it.
      // (Our own logout's answer clears it already.)
      if (loggingOut) end(ev.reason, ev.message);
      else end(ev.reason, ev.message).then(forgetCookie);
      break;
    case 'device.linked':
    case 'device.ended':
    case 'alert':
      emit(ev.event, ev);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------
// The end

/** Ends the session here: stops everything, wipes this browser's storage, tells the app. */
export async function end(reason, message) {
  if (ended) return;
  ended = true;
  clearTimeout(refreshTimer);
  clearTimeout(wsRetry);
  clearInterval(pingTimer);
  if (ws) {
    const s = ws;
    ws = null;
    s.onclose = null;
    s.close(1000);
  }
  const wasPersistent = dev?.persistent !== false;
  dev = null;
  wsOpened = false;
  retired.clear();
  await store.wipe();
  emit('ended', { reason, message: endingMessage || message || '', persistent: wasPersistent });
}

// Set when a forced logout could not reach the server: the next start of the
// page sends it again (the cookie is still in the browser until then).
const PENDING_LOGOUT = 'linkward.logout-pending';

/**
 * Asks the server to clear this browser's cookie and site data. For an ended
 * session DELETE /v1/session answers 200 "already ended" with Clear-Site-Data.
 * Returns whether the server answered.
 */
export async function forgetCookie() {
  try {
    await request('DELETE', '/v1/session');
    return true;
  } catch (e) {
    return e.status > 0; // answered, if not with 200: nothing more to ask for
  }
}

/**
 * Logs this device out (the server answers with Clear-Site-Data). With
 * force (too many wrong passcodes), this browser is wiped even when the
 * server cannot be reached, and the server is asked again at the next start.
 */
export async function logout(message, force = false) {
  endingMessage = message || null;
  let unsent = false;
  loggingOut = true;
  try {
    await call('DELETE', '/v1/session');
  } catch (e) {
    if (!ended && e.status !== 401) {
      if (!force) {
        endingMessage = null;
        throw e;
      }
      unsent = true;
    }
  } finally {
    loggingOut = false;
  }
  await end('logout');
  if (unsent) {
    try { localStorage.setItem(PENDING_LOGOUT, '1'); } catch { /* storage refused: nothing to keep it in */ }
  }
}

/** At start: a forced logout that could not reach the server is sent now. */
export async function sendPendingLogout() {
  let pending = false;
  try { pending = localStorage.getItem(PENDING_LOGOUT) === '1'; } catch { return; }
  if (pending && (await forgetCookie())) localStorage.removeItem(PENDING_LOGOUT);
}
