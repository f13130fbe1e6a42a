// Browsers hold their credential as an HttpOnly cookie, never in the page:
// completion and refresh set it, every route and the WebSocket accept it, and
// logout clears it (PRODUCT §3, §8).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
let primary;

before(async () => {
  server = await h.startServer();
  primary = await h.registerPrimary(server.url, h.uniqueHandle('cookie'));
});

after(async () => {
  await server?.stop();
});

/** Links a companion asking for a cookie; returns {req, res, cookie}. */
async function linkWithCookie(persistent = true) {
  const req = await h.createLinkRequest(server.url, { persistent });
  h.expectStatus(await h.scan(primary, req.payload), 200);
  h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
  const signature = h.b64e(req.key.sign(h.linkMessage(req.id, req.nonce)));
  const res = await h.api(server.url, 'POST', `/v1/link-requests/${req.id}/complete`, {
    token: req.token, body: { signature, credential: 'cookie' },
  });
  return { req, res, cookie: res.headers.get('set-cookie') };
}

function cookieValue(setCookie) {
  const m = /^(lw_session)=([^;]+)/.exec(setCookie || '');
  assert.ok(m, `expected an lw_session cookie, got ${setCookie}`);
  return `${m[1]}=${m[2]}`;
}

test('completion in cookie mode sets an HttpOnly, SameSite=Strict cookie and leaves the token out of the body', async () => {
  const { res, cookie } = await linkWithCookie(true);
  const j = h.expectStatus(res, 201);
  assert.equal(j.token, undefined, 'the credential must not be readable by page scripts');
  assert.ok(j.device_id && j.challenge);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Path=\//);
  assert.match(cookie, /Max-Age=\d+/, 'a persistent session survives a browser restart');
  assert.match(cookieValue(cookie), /^lw_session=lws_/);
});

test('"keep me signed in" off gives a browser-session cookie (no Max-Age)', async () => {
  const { res, cookie } = await linkWithCookie(false);
  const j = h.expectStatus(res, 201);
  assert.equal(j.persistent, false);
  assert.doesNotMatch(cookie, /Max-Age|Expires/);
});

test('the cookie authenticates API routes and the WebSocket; refresh replaces it; logout clears it', async () => {
  const { req, res, cookie } = await linkWithCookie(true);
  const j = h.expectStatus(res, 201);
  const jar = cookieValue(cookie);
  const me = h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar } }), 200);
  assert.equal(me.device.id, j.device_id);
  assert.equal(me.device.current, true);

  const ws = await h.connectWs(server.url, null, { headers: { cookie: jar } });
  try {
    const hello = await ws.next('hello');
    assert.equal(hello.device_id, j.device_id);
  } finally {
    await ws.close();
  }

  // Refresh with the device key, still in cookie mode: a new cookie, the old one dead.
  const signature = h.b64e(req.key.sign(h.refreshMessage(j.device_id, h.b64d(me.challenge))));
  const r = await h.api(server.url, 'POST', '/v1/session/refresh', {
    headers: { cookie: jar }, body: { signature, credential: 'cookie' },
  });
  const rj = h.expectStatus(r, 200);
  assert.equal(rj.token, undefined);
  const jar2 = cookieValue(r.headers.get('set-cookie'));
  assert.notEqual(jar2, jar);
  h.expectError(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar } }), 401, 'unauthenticated');
  h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar2 } }), 200);

  // Logout: the browser is told to forget everything of this origin.
  const out = await h.api(server.url, 'DELETE', '/v1/session', { headers: { cookie: jar2 } });
  h.expectStatus(out, 200);
  assert.match(out.headers.get('clear-site-data') || '', /"storage"/);
  assert.match(out.headers.get('clear-site-data') || '', /"cookies"/);
  assert.match(out.headers.get('set-cookie') || '', /lw_session=;.*Max-Age=0/);
  const after = await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar2 } });
  h.expectError(after, 401, 'session_ended');
  assert.equal(after.json.error.reason, 'logout');
});

test('a browser asking to log out a session that already ended is told to forget its cookie (200), a token is not', async () => {
  const { res } = await linkWithCookie();
  const jar = cookieValue(res.headers.get('set-cookie'));
  const me = h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar } }), 200);
  // Ended from the phone: the page hears session.ended on its socket, then asks to be forgotten.
  h.expectStatus(await h.api(server.url, 'DELETE', `/v1/devices/${me.device.id}`, { token: primary.token }), 200);
  const out = await h.api(server.url, 'DELETE', '/v1/session', { headers: { cookie: jar } });
  assert.deepEqual(h.expectStatus(out, 200), { ended: true, already: true, reason: 'remote_logout' });
  assert.match(out.headers.get('clear-site-data') || '', /"cookies"/);
  assert.match(out.headers.get('set-cookie') || '', /lw_session=;.*Max-Age=0/);
  // Nothing changed: still ended as remote_logout, not logout.
  const [row] = (await h.api(server.url, 'GET', '/v1/history', { token: primary.token })).json.sessions
    .filter((d) => d.id === me.device.id);
  assert.equal(row.end_reason, 'remote_logout');
  // With a bearer token (not a browser) the ended session is still an error.
  const c = await h.linkCompanionApi(server.url, primary);
  h.expectStatus(await h.api(server.url, 'DELETE', `/v1/devices/${c.deviceId}`, { token: primary.token }), 200);
  h.expectError(await h.api(server.url, 'DELETE', '/v1/session', { token: c.token }), 401, 'session_ended');
});

test('a cookie refresh without the device key ends the session as theft and tells the browser to forget its cookie', async () => {
  // The page may handle this answer before the session.ended on its socket
  // (which it then closes unread): this answer alone must clear the cookie.
  const { res } = await linkWithCookie();
  const j = h.expectStatus(res, 201);
  const jar = cookieValue(res.headers.get('set-cookie'));
  const me = h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar } }), 200);
  const thief = h.newDeviceKey();
  const signature = h.b64e(thief.sign(h.refreshMessage(j.device_id, h.b64d(me.challenge))));
  const r = await h.api(server.url, 'POST', '/v1/session/refresh', {
    headers: { cookie: jar }, body: { signature, credential: 'cookie' },
  });
  h.expectError(r, 401, 'token_theft');
  assert.match(r.headers.get('clear-site-data') || '', /"cookies"/);
  assert.match(r.headers.get('set-cookie') || '', /lw_session=;.*Max-Age=0/);
  // A bearer client is no browser: nothing to clear.
  const c = await h.linkCompanionApi(server.url, primary);
  const rb = await c.refresh({ key: h.newDeviceKey() });
  h.expectError(rb, 401, 'token_theft');
  assert.equal(rb.headers.get('clear-site-data'), null);
});

test('a cookie sent from another site does not change state (Origin check)', async () => {
  const { res, cookie } = await linkWithCookie(true);
  h.expectStatus(res, 201);
  const jar = cookieValue(cookie);
  const evil = await h.api(server.url, 'DELETE', '/v1/session', {
    headers: { cookie: jar, origin: 'https://evil.example' },
  });
  h.expectError(evil, 403, 'forbidden_origin');
  h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { headers: { cookie: jar } }), 200);
});

test('a browser waiting to be linked holds its link token in a cookie: polls, WebSocket (?link=1) and completion use it', async () => {
  const key = h.newDeviceKey();
  const created = await h.api(server.url, 'POST', '/v1/link-requests', {
    body: { public_key: key.pubB64, credential: 'cookie' },
  });
  const req = h.expectStatus(created, 201);
  assert.equal(req.token, undefined, 'the link token must not be readable by page scripts');
  const set = created.headers.get('set-cookie') || '';
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  const m = /^(lw_link=lwl_[^;]+)/.exec(set);
  assert.ok(m, `expected an lw_link cookie, got ${set}`);
  const jar = m[1];

  h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { headers: { cookie: jar } }), 200);
  // A stale session cookie beside it does not get in the way of the link socket.
  const ws = await h.connectWs(server.url + '', null, {
    headers: { cookie: `lw_session=lws_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; ${jar}` },
    path: '/v1/ws?link=1',
  });
  try {
    const hello = await ws.next('hello');
    assert.equal(hello.request_id, req.id);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    await ws.next('link.scanned');
    h.expectStatus(await h.approve(primary, req.id, key.pub), 200);
    await ws.next('link.approved');
  } finally {
    await ws.close();
  }
  const signature = h.b64e(key.sign(h.linkMessage(req.id, h.b64d(req.nonce))));
  const done = await h.api(server.url, 'POST', `/v1/link-requests/${req.id}/complete`, {
    headers: { cookie: jar }, body: { signature, credential: 'cookie' },
  });
  h.expectStatus(done, 201);
  const cookies = done.headers.get('set-cookie') || '';
  assert.match(cookies, /lw_session=lws_/);
  assert.match(cookies, /lw_link=;[^,]*Max-Age=0/, 'the spent link token is deleted');
});
