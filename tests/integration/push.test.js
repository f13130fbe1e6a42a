// Web Push for alerts (issue 14 item 6): a primary subscribes with keys Node
// made, as a browser would; an alert raised for its account reaches a push
// receiver on 127.0.0.1 (the server runs with --push-allow-loopback), which
// checks the VAPID JWT (ES256, aud, exp, k) and decrypts the body with npm
// http_ece, an implementation independent of the server's. A receiver
// answering 410 makes the server drop the subscription; 500 then 201 shows a
// retry. The API's validation of a PushSubscription is checked field by field.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import ece from 'http_ece';
import * as h from '../lib/harness.js';
import { PgNodes } from '../lib/pgnodes.js';

// CTest runs this file twice: on SQLite (integration.push) and on PostgreSQL
// (integration.push.pg, LINKWARD_PUSH_ENGINE=pg), where the subscription
// list is read on a fiber and a gone subscription deleted on one.
const PG = process.env.LINKWARD_PUSH_ENGINE === 'pg';
const pg = PG ? new PgNodes('push') : null;

const CONTACT = 'mailto:push-test@example.org';

/** A push receiver: each path answers what `plan[path]` says next (default 201) and records the request. */
function startReceiver() {
  const got = [];
  const plan = new Map();
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const list = plan.get(req.url) || [];
      const status = list.length ? list.shift() : 201;
      got.push({ path: req.url, method: req.method, headers: req.headers, body: Buffer.concat(chunks), status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('x'.repeat(100000)); // a big answer: the server must read only a bounded part of it
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({
    got, plan, port: srv.address().port, close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r); }),
  })));
}

/** A browser's subscription keys: a P-256 ECDH key and a 16-byte auth secret. */
function subscriptionKeys() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, p256dh: ecdh.getPublicKey(), auth: crypto.randomBytes(16) };
}

/** The JWT checked as a push service would; returns its claims. */
function checkVapid(authorization, aud, vapidKey) {
  const m = /^vapid t=([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+), k=([A-Za-z0-9_-]{87})$/.exec(authorization || '');
  assert.ok(m, `Authorization: ${authorization}`);
  const [, hdr, claimsB64, sig, k] = m;
  assert.equal(k, vapidKey, 'k is the key GET /v1/push/vapid-key gives');
  assert.deepEqual(JSON.parse(h.b64d(hdr).toString('utf8')), { typ: 'JWT', alg: 'ES256' });
  const claims = JSON.parse(h.b64d(claimsB64).toString('utf8'));
  assert.equal(claims.aud, aud);
  assert.equal(claims.sub, CONTACT);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(claims.exp > now && claims.exp <= now + 12 * 3600 + 60, `exp ${claims.exp} within 12 h of ${now}`);
  const raw = h.b64d(k);
  const pub = crypto.createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: h.b64e(raw.subarray(1, 33)), y: h.b64e(raw.subarray(33)) }, format: 'jwk',
  });
  assert.ok(crypto.verify('sha256', Buffer.from(`${hdr}.${claimsB64}`), { key: pub, dsaEncoding: 'ieee-p1363' },
    h.b64d(sig)), 'ES256 signature');
  return claims;
}

let server;
let rx;
let vapidKey;
before(async () => {
  rx = await startReceiver();
  let db = [];
  if (PG) {
    pg.open();
    db = ['--db', pg.freshDb('push')];
  }
  server = await h.startServer({
    args: ['--push-allow-loopback', '--push-contact', CONTACT, ...db],
    env: { LINKWARD_TEST_PUSH_BACKOFF_MS: '200' },
  });
  const r = await h.api(server.url, 'GET', '/v1/push/vapid-key');
  vapidKey = h.expectStatus(r, 200).public_key;
});
after(async () => {
  try {
    await server?.stop();
  } finally {
    await rx?.close();
  }
});

const endpointFor = (name) => `http://127.0.0.1:${rx.port}/push/${name}`;

async function subscribe(primary, name) {
  const keys = subscriptionKeys();
  const endpoint = endpointFor(name);
  const r = await primary.post('/v1/push/subscriptions', {
    endpoint, expirationTime: null, keys: { p256dh: h.b64e(keys.p256dh), auth: h.b64e(keys.auth) },
  });
  h.expectStatus(r, 201);
  return { ...keys, endpoint, path: `/push/${name}` };
}

const pushesTo = (sub) => rx.got.filter((g) => g.path === sub.path);

function open(sub, g) {
  assert.equal(g.method, 'POST');
  assert.equal(g.headers['content-encoding'], 'aes128gcm');
  assert.ok(Number(g.headers.ttl) > 0, `TTL ${g.headers.ttl}`);
  assert.ok(['very-low', 'low', 'normal', 'high'].includes(g.headers.urgency), `Urgency ${g.headers.urgency}`);
  checkVapid(g.headers.authorization, `http://127.0.0.1:${rx.port}`, vapidKey);
  const pt = ece.decrypt(g.body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
  return JSON.parse(pt.toString('utf8'));
}

describe('Web Push', () => {
  test('the VAPID key is a P-256 public key, kept 0600 in the data directory', () => {
    const raw = h.b64d(vapidKey);
    assert.equal(raw.length, 65);
    assert.equal(raw[0], 0x04);
    const st = fs.statSync(path.join(server.dataDir, 'vapid.key'));
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('an alert reaches the subscription: exactly its id and kind, encrypted, with a VAPID JWT', async () => {
    const primary = await h.registerPrimary(server.url, 'pusha');
    const sub = await subscribe(primary, 'a');
    const list = h.expectStatus(await primary.get('/v1/push/subscriptions'), 200).subscriptions;
    assert.deepEqual(list.map((s) => s.endpoint), [sub.endpoint]);
    await h.linkCompanionApi(server.url, primary); // raises device.linked
    await h.pollUntil(() => pushesTo(sub).length >= 1, { timeout: h.T(10000), what: 'a push' });
    const alerts = await primary.alerts();
    const linked = alerts.find((a) => a.kind === 'device.linked');
    assert.ok(linked, JSON.stringify(alerts));
    const msgs = pushesTo(sub).map((g) => open(sub, g));
    assert.deepEqual(msgs, [{ alert_id: linked.id, kind: 'device.linked' }]);
    // Padded: the length does not tell the kind.
    assert.equal(pushesTo(sub)[0].body.length, 128 + 103);
    // A companion has no subscriptions of its own to make.
    const comp = await h.linkCompanionApi(server.url, primary);
    const keys = subscriptionKeys();
    const r = await comp.post('/v1/push/subscriptions', {
      endpoint: endpointFor('comp'), keys: { p256dh: h.b64e(keys.p256dh), auth: h.b64e(keys.auth) } });
    assert.equal(r.status, 403, h.show(r));
  });

  test('410 Gone drops the subscription: the next alert sends nothing to it', async () => {
    const primary = await h.registerPrimary(server.url, 'pushb');
    const sub = await subscribe(primary, 'b');
    rx.plan.set(sub.path, [410]);
    await h.linkCompanionApi(server.url, primary);
    await h.pollUntil(() => pushesTo(sub).length >= 1, { timeout: h.T(10000), what: 'the push answered 410' });
    await h.pollUntil(async () => h.expectStatus(await primary.get('/v1/push/subscriptions'), 200)
      .subscriptions.length === 0, { timeout: h.T(5000), what: 'the subscription dropped' });
    await h.linkCompanionApi(server.url, primary);
    await h.tick(h.T(1000));
    assert.equal(pushesTo(sub).length, 1, 'nothing after the 410');
  });

  test('500 then 201: the push is retried and arrives once', async () => {
    const primary = await h.registerPrimary(server.url, 'pushc');
    const sub = await subscribe(primary, 'c');
    rx.plan.set(sub.path, [500, 201]);
    await h.linkCompanionApi(server.url, primary);
    await h.pollUntil(() => pushesTo(sub).length >= 2, { timeout: h.T(10000), what: 'the retry' });
    await h.tick(h.T(600));
    const got = pushesTo(sub);
    assert.deepEqual(got.map((g) => g.status), [500, 201]);
    assert.deepEqual(open(sub, got[1]), open(sub, got[0]), 'the same message');
    const list = h.expectStatus(await primary.get('/v1/push/subscriptions'), 200).subscriptions;
    assert.equal(list.length, 1);
    assert.equal(list[0].failures, 0);
    const metrics = (await h.api(server.url, 'GET', '/metrics')).text;
    assert.match(metrics, /^linkward_push_sent_total\S* [1-9]/m);
    assert.match(metrics, /^linkward_push_retries_total\S* [1-9]/m);
    assert.match(metrics, /^linkward_push_failed_total\{reason="gone"\} [1-9]/m);
  });

  test('without --push-allow-loopback, a name that resolves to loopback gets nothing (no connection)', async () => {
    let db = [];
    if (PG) db = ['--db', pg.freshDb('push2')];
    const other = await h.startServer({ args: ['--push-contact', CONTACT, ...db] });
    try {
      const primary = await h.registerPrimary(other.url, 'pushe');
      const keys = subscriptionKeys();
      const endpoint = `https://localhost:${rx.port}/push/e`;
      // http://127.0.0.1 is refused outright; a name is accepted and checked when it is resolved.
      h.expectError(await primary.post('/v1/push/subscriptions', {
        endpoint: endpointFor('e'), keys: { p256dh: h.b64e(keys.p256dh), auth: h.b64e(keys.auth) } }), 400, 'invalid_request');
      h.expectStatus(await primary.post('/v1/push/subscriptions', {
        endpoint, keys: { p256dh: h.b64e(keys.p256dh), auth: h.b64e(keys.auth) } }), 201);
      const accepted = rx.got.length;
      await h.linkCompanionApi(other.url, primary);
      await h.pollUntil(async () => /^linkward_push_failed_total\{reason="address"\} 1$/m
        .test((await h.api(other.url, 'GET', '/metrics')).text), { timeout: h.T(10000), what: 'the refusal counted' });
      assert.equal(rx.got.length, accepted, 'the receiver heard nothing');
      const metrics = (await h.api(other.url, 'GET', '/metrics')).text;
      assert.doesNotMatch(metrics, /^linkward_push_retries_total\S* [1-9]/m, 'not retried');
    } finally {
      await other.stop();
    }
  });

  test('every field of a PushSubscription is validated with a clear 400; DELETE unsubscribes', async () => {
    const primary = await h.registerPrimary(server.url, 'pushd');
    const keys = subscriptionKeys();
    const good = { endpoint: endpointFor('d'), keys: { p256dh: h.b64e(keys.p256dh), auth: h.b64e(keys.auth) } };
    const bad = [
      [{ keys: good.keys }, 'endpoint'],
      [{ ...good, endpoint: 42 }, 'endpoint'],
      [{ ...good, endpoint: 'http://push.example.net/x' }, 'endpoint'],
      [{ ...good, endpoint: 'https://user@push.example.net/x' }, 'endpoint'],
      [{ ...good, endpoint: `https://push.example.net/${'a'.repeat(2100)}` }, 'endpoint'],
      [{ endpoint: good.endpoint }, 'keys'],
      [{ ...good, keys: { auth: good.keys.auth } }, 'p256dh'],
      [{ ...good, keys: { ...good.keys, p256dh: h.b64e(keys.p256dh.subarray(1)) } }, 'p256dh'],
      [{ ...good, keys: { ...good.keys, p256dh: h.b64e(Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)])) } }, 'p256dh'],
      [{ ...good, keys: { p256dh: good.keys.p256dh } }, 'auth'],
      [{ ...good, keys: { ...good.keys, auth: 'not base64!' } }, 'auth'],
      [{ ...good, keys: { ...good.keys, auth: h.b64e(crypto.randomBytes(15)) } }, 'auth'],
    ];
    for (const [body, field] of bad) {
      const r = await primary.post('/v1/push/subscriptions', body);
      const err = h.expectError(r, 400, 'invalid_request');
      assert.ok(err.message.includes(field), `${field}: ${err.message}`);
    }
    h.expectStatus(await primary.post('/v1/push/subscriptions', good), 201);
    // Bounded per phone.
    for (let i = 1; i < 4; i++) {
      h.expectStatus(await primary.post('/v1/push/subscriptions', { ...good, endpoint: endpointFor(`d${i}`) }), 201);
    }
    h.expectError(await primary.post('/v1/push/subscriptions', { ...good, endpoint: endpointFor('d9') }), 409, 'push_limit');
    h.expectStatus(await primary.del('/v1/push/subscriptions', { body: { endpoint: good.endpoint } }), 204);
    h.expectError(await primary.del('/v1/push/subscriptions', { body: { endpoint: good.endpoint } }), 404, 'not_found');
    const list = h.expectStatus(await primary.get('/v1/push/subscriptions'), 200).subscriptions;
    assert.equal(list.length, 3);
    // Ending the phone's session (deleting the account) takes them away; nothing secret in the log.
    h.expectStatus(await primary.raw('DELETE', '/v1/account', { body: {} }), [200, 204]);
    h.expectError(await primary.get('/v1/push/subscriptions'), 401, ['session_ended', 'unauthenticated']);
    assert.ok(!server.stderr().includes(good.keys.auth), 'the auth secret is never logged');
    // Let the relay hear its own notices of the deletion before the server is stopped (PostgreSQL).
    await h.tick(h.T(300));
  });
});
