// The companion limit (PRODUCT §2.7): at --max-companions, approval fails with
// a message naming the limit; ending a session frees a slot.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer({ args: ['--max-companions', '2'] });
});
after(async () => {
  await server?.stop();
});

test('GET /v1/server reports the limit', async () => {
  const info = h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200);
  assert.equal(info.max_companions, 2);
});

test('over the API: the third approval is refused with device_limit; a remote logout frees a slot', async () => {
  const primary = await h.registerPrimary(server.url, 'alice');
  const c1 = await h.linkCompanionApi(server.url, primary);
  await h.linkCompanionApi(server.url, primary);

  const req = await h.createLinkRequest(server.url);
  h.expectStatus(await h.scan(primary, req.payload), 200);
  const compWs = await h.connectWs(server.url, req.token);
  await compWs.next('hello');
  const refused = await h.approve(primary, req.id, req.key.pub);
  const err = h.expectError(refused, 409, 'device_limit');
  assert.match(err.message, /\b2\b/, `the message names the limit: ${err.message}`);
  // The companion is told at once, with the sentence, and the request is over.
  const denied = await compWs.next('link.denied', 3000);
  assert.equal(denied.reason, 'limit');
  assert.equal(denied.limit, 2);
  assert.match(denied.message, /already has 2 linked devices, the limit\. Log one out/);
  await compWs.closed;
  const st = h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
  assert.equal(st.state, 'denied');
  // Nothing was created.
  assert.equal((await primary.devices()).filter((d) => d.role === 'companion').length, 2);
  h.expectError(await h.complete(req), 409, 'not_pending');

  // Free a slot: remote logout of the first companion; the device links again with a new request.
  h.expectStatus(await primary.del(`/v1/devices/${c1.deviceId}`), 200);
  h.expectError(await h.approve(primary, req.id, req.key.pub), 409, 'not_pending');
  const again = await h.createLinkRequest(server.url, { key: req.key });
  h.expectStatus(await h.scan(primary, again.payload), 200);
  h.expectStatus(await h.approve(primary, again.id, again.key.pub), 200);
  const c3 = h.companionFrom(again, h.expectStatus(await h.complete(again), 201));
  const ids = (await primary.devices()).filter((d) => d.role === 'companion').map((d) => d.id);
  assert.equal(ids.length, 2);
  assert.ok(ids.includes(c3.deviceId) && !ids.includes(c1.deviceId));
});

test('the limit is counted per account', async () => {
  const other = await h.registerPrimary(server.url, 'bob');
  await h.linkCompanionApi(server.url, other);
  await h.linkCompanionApi(server.url, other);
});

test('the limit is also enforced at completion, when two approvals race for the last slot', async () => {
  const primary = await h.registerPrimary(server.url, 'carol');
  await h.linkCompanionApi(server.url, primary);
  // Two requests approved while one slot is free: only one can complete.
  const r1 = await h.createLinkRequest(server.url);
  const r2 = await h.createLinkRequest(server.url);
  for (const r of [r1, r2]) h.expectStatus(await h.scan(primary, r.payload), 200);
  h.expectStatus(await h.approve(primary, r1.id, r1.key.pub), 200);
  h.expectStatus(await h.approve(primary, r2.id, r2.key.pub), 200);
  const [a, b] = await Promise.all([h.complete(r1), h.complete(r2)]);
  const statuses = [a.status, b.status].sort();
  assert.deepEqual(statuses, [201, 409], `${h.show(a)}\n${h.show(b)}`);
  const loser = a.status === 409 ? a : b;
  h.expectError(loser, 409, 'device_limit');
  // The losing request is over, not left approved.
  const lost = loser === a ? r1 : r2;
  const st = h.expectStatus(await h.api(server.url, 'GET', `/v1/link-requests/${lost.id}`, { token: lost.token }), 200);
  assert.equal(st.state, 'denied');
  assert.equal((await primary.devices()).filter((d) => d.role === 'companion').length, 2);
});

test('with the CLI: phone link exits 3 naming the limit; phone logout frees a slot', async () => {
  const phone = new h.PhoneCli(server);
  await phone.register('dave');
  const first = await h.linkCompanionCli(phone, new h.CompanionCli(server));
  await h.linkCompanionCli(phone, new h.CompanionCli(server));

  const req = await h.createLinkRequest(server.url);
  const res = await phone.run(['link', req.payload, '--yes']);
  assert.equal(res.code, 3, h.describe(res));
  assert.match(h.refusalText(res), /\b2\b/, `message names the limit: ${h.describe(res)}`);
  assert.match(h.refusalText(res), /limit|device_limit/i);

  const out = await phone.run(['logout', first.deviceId]);
  assert.equal(out.code, 0, h.describe(out));
  const third = await h.linkCompanionCli(phone, new h.CompanionCli(server));
  const ids = (await phone.devices()).filter((d) => d.role === 'companion').map((d) => d.id);
  assert.ok(ids.includes(third.deviceId), `third companion listed: ${ids}`);
  assert.equal(ids.length, 2);
  assert.ok(!ids.includes(first.deviceId));
});

test('companion link at the limit: ends at once with the sentence, exit 3, {"event":"denied","reason":"limit"}', async () => {
  const phone = new h.PhoneCli(server);
  await phone.register(h.uniqueHandle('full'));
  await h.linkCompanionCli(phone, new h.CompanionCli(server));
  await h.linkCompanionCli(phone, new h.CompanionCli(server));

  for (const json of [true, false]) {
    const comp = new h.CompanionCli(server);
    const link = json ? comp.spawnLink()
      : h.spawnCli(['companion', '--server', server.url, '--state', comp.state, 'link']);
    try {
      let code;
      if (json) {
        code = (await link.waitForLine('qr')).code;
      } else {
        await h.pollUntil(() => /Code: +\S+/.test(link.lines.join('\n')), { what: 'the code printed' });
        code = /Code: +(\S+)/.exec(link.lines.join('\n'))[1];
      }
      const res = await phone.run(['link', '--code', code, '--yes']);
      assert.equal(res.code, 3, h.describe(res));
      // Well before the request's 160 s expiry.
      const exit = await link.waitExit(5000);
      assert.equal(exit.code, 3, link.stderr());
      assert.match(link.stderr(), /already has 2 linked devices, the limit\. Log one out from the phone/);
      if (json) {
        const ev = link.json.find((l) => l.event === 'denied');
        assert.ok(ev, `a denied line: ${link.lines.join('\n')}`);
        assert.equal(ev.reason, 'limit');
        assert.match(ev.message, /the limit/);
        assert.equal(ev.limit, 2);
      }
    } finally {
      link.kill('SIGKILL');
    }
  }
});
