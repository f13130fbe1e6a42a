// Single-use steps are consumed atomically (PRODUCT §8): when two requests
// race for the same step, exactly one wins and the other gets a clean 409.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const ROUNDS = 5;
let server;
before(async () => {
  server = await h.startServer({ args: ['--max-companions', '100'] });
});
after(async () => {
  await server?.stop();
});

function statuses(results) {
  return results.map((r) => r.status).sort((a, b) => a - b);
}

test('two concurrent approvals of one scanned request: exactly one 200, one 409', async () => {
  const primary = await h.registerPrimary(server.url, 'alice');
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    const results = await Promise.all([
      h.approve(primary, req.id, req.key.pub),
      h.approve(primary, req.id, req.key.pub),
    ]);
    assert.deepEqual(statuses(results), [200, 409], results.map(h.show).join('\n'));
    h.expectError(results.find((r) => r.status === 409), 409, 'not_pending');
    h.expectStatus(await h.complete(req), 201);
  }
});

test('two concurrent approvals with a PIN (verified off the event loop): exactly one wins', async () => {
  const primary = await h.registerPrimary(server.url, 'bob');
  h.expectStatus(await primary.post('/v1/pin', { new_pin: '482913' }), 200);
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    const results = await Promise.all([
      h.approve(primary, req.id, req.key.pub, { pin: '482913' }),
      h.approve(primary, req.id, req.key.pub, { pin: '482913' }),
    ]);
    assert.deepEqual(statuses(results), [200, 409], results.map(h.show).join('\n'));
    h.expectStatus(await h.complete(req), 201);
  }
});

test('approve and deny racing: exactly one takes effect', async () => {
  const primary = await h.registerPrimary(server.url, 'carol');
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    const [a, d] = await Promise.all([h.approve(primary, req.id, req.key.pub), h.deny(primary, req.id)]);
    assert.deepEqual(statuses([a, d]), [200, 409], `${h.show(a)}\n${h.show(d)}`);
    const c = await h.complete(req);
    if (a.status === 200) h.expectStatus(c, 201);
    else h.expectError(c, 409, 'not_pending');
  }
});

test('two concurrent completions: exactly one 201 and one session', async () => {
  const primary = await h.registerPrimary(server.url, 'dave');
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
    const results = await Promise.all([h.complete(req), h.complete(req)]);
    assert.deepEqual(statuses(results), [201, 409], results.map(h.show).join('\n'));
    h.expectError(results.find((r) => r.status === 409), 409, 'not_pending');
  }
  const companions = (await primary.devices()).filter((d) => d.role === 'companion');
  assert.equal(companions.length, ROUNDS, 'one session per request');
});

test('two primaries scanning the same payload at once: exactly one gets it', async () => {
  const p1 = await h.registerPrimary(server.url, 'erin');
  const p2 = await h.registerPrimary(server.url, 'frank');
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    const results = await Promise.all([h.scan(p1, req.payload), h.scan(p2, req.payload)]);
    assert.deepEqual(statuses(results), [200, 409], results.map(h.show).join('\n'));
    h.expectError(results.find((r) => r.status === 409), 409, 'already_scanned');
  }
});

test('two registrations of one handle at once: one 201, one 409 handle_taken', async () => {
  for (let i = 0; i < ROUNDS; i++) {
    const handle = `racer${i}`;
    const [a, b] = await Promise.all([0, 1].map(() => h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle, public_key: h.newDeviceKey().pubB64 } })));
    assert.deepEqual(statuses([a, b]), [201, 409], `${h.show(a)}\n${h.show(b)}`);
    h.expectError(a.status === 409 ? a : b, 409, 'handle_taken');
  }
});

test('concurrent refreshes of one credential: exactly one new credential', async () => {
  const primary = await h.registerPrimary(server.url, 'gina');
  for (let i = 0; i < ROUNDS; i++) {
    const c = await h.linkCompanionApi(server.url, primary);
    const sig = h.b64e(c.key.sign(h.refreshMessage(c.deviceId, c.challenge)));
    const results = await Promise.all([0, 1].map(() =>
      h.api(server.url, 'POST', '/v1/session/refresh', { token: c.token, body: { signature: sig } })));
    const ok = results.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, results.map(h.show).join('\n'));
    const loser = results.find((r) => r.status !== 200);
    assert.equal(loser.status, 401, h.show(loser));
    // Whatever the loser caused, the winner's credential is the only one that can be valid.
    const w = await h.api(server.url, 'GET', '/v1/session', { token: ok[0].json.token });
    const old = await h.api(server.url, 'GET', '/v1/session', { token: c.token });
    assert.equal(old.status, 401, h.show(old));
    assert.ok([200, 401].includes(w.status), h.show(w));
  }
});

test('logout-all racing a link completion leaves no session behind the primary\'s back', async () => {
  const primary = await h.registerPrimary(server.url, 'hank');
  for (let i = 0; i < ROUNDS; i++) {
    const req = await h.createLinkRequest(server.url);
    h.expectStatus(await h.scan(primary, req.payload), 200);
    h.expectStatus(await h.approve(primary, req.id, req.key.pub), 200);
    const [c, la] = await Promise.all([h.complete(req), primary.post('/v1/devices/logout-all', {})]);
    h.expectStatus(la, 200);
    if (c.status === 201) {
      const dev = h.companionFrom(req, c.json);
      const s = await dev.raw('GET', '/v1/session');
      // Either the completion came first and logout-all ended it, or it came after and is live.
      if (la.json.device_ids.includes(c.json.device_id)) assert.equal(s.status, 401, h.show(s));
      else assert.equal(s.status, 200, h.show(s));
    }
  }
});
