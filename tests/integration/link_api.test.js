// The link flow over the raw HTTP/WebSocket API: what each side is told, the
// signatures that bind it together (docs/api.md, PRODUCT §2).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
let primary;
let info;

before(async () => {
  server = await h.startServer();
  primary = await h.registerPrimary(server.url, 'Carol.Smith');
  info = h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200);
});

after(async () => {
  await server?.stop();
});

test('registration answers the documented fields and lowercases the handle', () => {
  const r = primary.registration;
  for (const f of ['account_id', 'device_id', 'handle', 'token', 'token_expires_in', 'challenge', 'server_key', 'origin']) {
    assert.ok(f in r, `registration lacks ${f}`);
  }
  assert.equal(r.handle, 'carol.smith');
  assert.ok(r.token.startsWith('lws_'), 'session credentials start with lws_');
  assert.equal(r.origin, server.url);
  assert.equal(r.server_key, info.server_key);
  assert.equal(h.b64d(r.server_key).length, 32);
  assert.equal(h.b64d(r.challenge).length, 32);
  assert.ok(r.token_expires_in > 0);
});

test('GET /v1/server describes the server', () => {
  assert.equal(info.origin, server.url);
  assert.equal(info.registration, 'open');
  assert.equal(info.max_companions, 4);
  assert.equal(info.pin_required, false);
  assert.equal(typeof info.version, 'string');
});

test('a link request answers a signed payload, an SVG QR, a pairing code and a link token', async () => {
  const req = await h.createLinkRequest(server.url);
  assert.ok(req.token.startsWith('lwl_'), 'link tokens start with lwl_');
  assert.match(req.code, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
  assert.match(req.qr_svg, /<svg[\s>]/);
  assert.equal(h.b64d(req.nonce).length, 32);
  assert.ok(req.expires_in >= req.ref_expires_in && req.ref_expires_in > 0);
  const p = h.parsePayload(req.payload);
  assert.equal(p.origin, server.url);
  assert.equal(p.ref.length, 16);
  assert.deepEqual(p.fp, h.fingerprint(req.key.pub));
  assert.equal(p.sig.length, 64);
  assert.ok(h.verifyPayload(req.payload, info.server_key));

  const st = h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
  assert.equal(st.id, req.id);
  assert.equal(st.state, 'pending');
  assert.equal(st.code, req.code);
  assert.ok(h.verifyPayload(st.payload, info.server_key));

  // Without the link token the request is not readable.
  const anon = await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`);
  h.expectError(anon, 401, 'unauthenticated');
});

test('the whole flow: both sides are told each step, and the new device is signed by the primary', async () => {
  const primaryWs = await primary.ws();
  const hello = await primaryWs.next('hello');
  assert.equal(hello.device_id, primary.deviceId);

  const req = await h.createLinkRequest(server.url, { userAgent: h.UA.chromeWindows });
  const cws = await h.connectWs(server.url, req.token);
  try {
    const chello = await cws.next('hello');
    assert.equal(chello.request_id, req.id);

    // Scan: the primary learns who is asking.
    const s = h.expectStatus(await h.scan(primary, req.payload), 200);
    assert.equal(s.request.id, req.id);
    assert.equal(s.request.browser, 'Chrome');
    assert.equal(s.request.os, 'Windows');
    assert.equal(s.request.name, 'Chrome on Windows');
    assert.equal(s.request.ip, '127.0.0.1');
    assert.equal(s.request.public_key, req.key.pubB64);
    assert.ok(h.fingerprintMatches(s.request.key_fingerprint, req.key.pub), s.request.key_fingerprint);
    assert.match(s.request.created_at, h.RFC3339);
    assert.ok(s.request.expires_in > 0);
    assert.equal(s.payload, req.payload);
    assert.ok(['low', 'medium', 'high'].includes(s.risk.level));
    await cws.next('link.scanned');
    const st = h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
    assert.equal(st.state, 'scanned');
    assert.ok(!st.payload, 'no payload once scanned');

    // Completing before approval is refused.
    h.expectError(await h.complete(req), 409, 'not_pending');

    // An account signature over another key (or by another key) is refused.
    const other = h.newDeviceKey();
    h.expectError(await h.approve(primary, req.id, other.pub), 400, 'invalid_signature');
    h.expectError(await h.approve(primary, req.id, req.key.pub, { key: other }), 400, 'invalid_signature');

    h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
    await cws.next('link.approved');

    // Completion must be signed by the key in the request.
    h.expectError(await h.complete(req, { key: other }), 400, 'invalid_signature');
    const c = h.expectStatus(await h.complete(req), 201);
    for (const f of ['device_id', 'account_id', 'handle', 'token', 'token_expires_in', 'challenge']) {
      assert.ok(f in c, `completion lacks ${f}`);
    }
    assert.equal(c.account_id, primary.accountId);
    assert.equal(c.handle, 'carol.smith');
    assert.ok(c.token.startsWith('lws_'));
    const companion = h.companionFrom(req, c);

    // The primary hears about it live.
    const dl = await primaryWs.next((m) => m.event === 'device.linked');
    assert.equal(dl.device.id, c.device_id);
    assert.equal(dl.device.role, 'companion');
    assert.equal(dl.device.browser, 'Chrome');
    const al = await primaryWs.next((m) => m.event === 'alert' && m.alert.kind === 'device.linked');
    assert.equal(al.alert.device_id, c.device_id);

    // The companion's session works and its record is what the primary saw.
    const sess = await companion.session();
    assert.equal(sess.device.id, c.device_id);
    assert.equal(sess.device.role, 'companion');
    assert.equal(sess.device.name, 'Chrome on Windows');
    assert.equal(sess.account.handle, 'carol.smith');
    assert.equal(sess.account.has_pin, false);
    assert.ok(h.fingerprintMatches(sess.device.key_fingerprint, req.key.pub));

    // The link token is single use: the request is completed.
    h.expectError(await h.complete(req), 409, 'not_pending');
    const done = await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token });
    if (done.status === 200) assert.equal(done.json.state, 'completed');
    else assert.equal(done.status, 401, h.show(done));

    // A link token is not a session credential.
    h.expectError(await h.api(server.url, 'GET', '/v1/session', { token: req.token }), 401, 'unauthenticated');
  } finally {
    await cws.close();
    await primaryWs.close();
  }
});

test('the companion WebSocket gets its device-key challenge', async () => {
  const companion = await h.linkCompanionApi(server.url, primary);
  const ws = await companion.ws();
  try {
    const hello = await ws.next('hello');
    assert.equal(hello.device_id, companion.deviceId);
    const pc = await ws.next('proof.challenge');
    assert.equal(h.b64d(pc.challenge).length, 32);
    assert.ok(pc.token_expires_in > 0);
    ws.send({ event: 'ping' });
    await ws.next('pong');
  } finally {
    await ws.close();
  }
});

test('a companion renames itself; the primary sees the new name', async () => {
  const companion = await h.linkCompanionApi(server.url, primary, { userAgent: h.UA.firefoxLinux });
  const r = h.expectStatus(await companion.patch(`/v1/devices/${companion.deviceId}`, { name: 'Laptop' }), 200);
  assert.equal(r.name, 'Laptop');
  assert.equal(r.id, companion.deviceId);
  const row = (await primary.devices()).find((d) => d.id === companion.deviceId);
  assert.equal(row.name, 'Laptop');
  assert.equal(row.browser, 'Firefox');
  assert.equal(row.os, 'Linux');
  // A companion cannot rename the primary.
  const res = await companion.patch(`/v1/devices/${primary.deviceId}`, { name: 'pwned' });
  h.expectError(res, 403, 'forbidden');
});

test('the client description sent by a native companion is used as is', async () => {
  const client = { name: 'CI runner', browser: 'linkward-cli', browser_version: '0.1', os: 'Linux', os_version: '6.1', device_model: 'VM' };
  const companion = await h.linkCompanionApi(server.url, primary, { client });
  const sess = await companion.session();
  for (const [k, v] of Object.entries(client)) assert.equal(sess.device[k], v, k);
});

test('GET /v1/session (served from a cached rendering) follows every change it shows', async () => {
  // A fresh account: the others here already hold the device limit.
  const primary = await h.registerPrimary(server.url, h.uniqueHandle('view'));
  const c = await h.linkCompanionApi(server.url, primary);
  const first = h.expectStatus(await c.get('/v1/session'), 200);
  assert.match(first.device.last_active_at, h.RFC3339);
  assert.ok(Math.abs(Date.parse(first.device.last_active_at) - Date.now()) < 5000, 'last_active_at is this request');
  // Renamed: the next answer has the new name.
  h.expectStatus(await c.raw('PATCH', `/v1/devices/${c.deviceId}`, { body: { name: 'Renamed laptop' } }), 200);
  assert.equal(h.expectStatus(await c.get('/v1/session'), 200).device.name, 'Renamed laptop');
  // A PIN set on the phone shows on every device of the account.
  const before = h.expectStatus(await c.get('/v1/session'), 200);
  h.expectStatus(await primary.post('/v1/pin', { new_pin: '271828' }), 200);
  const after = h.expectStatus(await c.get('/v1/session'), 200);
  assert.equal(before.account.has_pin, false);
  assert.equal(after.account.has_pin, true);
  h.expectStatus(await primary.post('/v1/pin/disable', { pin: '271828' }), 200);
  // A refresh changes the challenge it shows.
  h.expectStatus(await c.refresh(), 200);
  const refreshed = h.expectStatus(await c.get('/v1/session'), 200);
  assert.notEqual(refreshed.challenge, after.challenge);
  assert.equal(refreshed.challenge, c.challenge);
});
