// A device key has at most one active session (issue 12): linking the same
// key again replaces the old session (ended "relinked"), in the completion's
// transaction, whatever the client; the CLI says a state file is already
// linked and relinks only when asked.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer({ args: ['--max-companions', '2'] });
});
after(async () => {
  await server?.stop();
});

test('over the API: the same key linked again ends its old session (relinked), even at the limit', async () => {
  const primary = await h.registerPrimary(server.url, h.uniqueHandle('re'));
  const phoneWs = await primary.ws();
  await phoneWs.next('hello');
  const first = await h.linkCompanionApi(server.url, primary);
  await h.linkCompanionApi(server.url, primary); // the limit (2) is reached
  const oldWs = await first.ws();
  await oldWs.next('hello');
  try {
    // The same key asks again: approval does not count its own old session...
    const again = await h.linkCompanionApi(server.url, primary, { key: first.key });
    // ...and completion replaces it: one active session per key.
    const ended = await oldWs.next('session.ended', 3000);
    assert.equal(ended.reason, 'relinked');
    assert.match(ended.message, /linked again/);
    const gone = await phoneWs.next((e) => e.event === 'device.ended' && e.device_id === first.deviceId, 3000);
    assert.equal(gone.reason, 'relinked');
    const active = (await primary.devices()).filter((d) => d.role === 'companion');
    assert.equal(active.length, 2);
    assert.equal(active.filter((d) => d.public_key === first.key.pubB64).length, 1);
    assert.ok(active.some((d) => d.id === again.deviceId));
    // The old one is history, with its own reason, and its credential is refused.
    const hist = (await primary.history()).find((d) => d.id === first.deviceId);
    assert.equal(hist?.end_reason, 'relinked');
    const res = await first.raw('GET', '/v1/session');
    assert.equal(res.status, 401);
    assert.equal(res.json.error.reason, 'relinked');
    h.expectStatus(await again.get('/v1/session'), 200);
  } finally {
    await oldWs.close();
    await phoneWs.close();
  }
});

test('over the API: two requests with one key approved together leave one active session', async () => {
  const primary = await h.registerPrimary(server.url, h.uniqueHandle('re'));
  const key = h.newDeviceKey();
  const r1 = await h.createLinkRequest(server.url, { key });
  const r2 = await h.createLinkRequest(server.url, { key });
  for (const r of [r1, r2]) {
    h.expectStatus(await h.scan(primary, r.payload), 200);
    h.expectStatus(await h.approve(primary, r.id, key.pub), 200);
  }
  const [a, b] = await Promise.all([h.complete(r1), h.complete(r2)]);
  h.expectStatus(a, 201);
  h.expectStatus(b, 201);
  const active = (await primary.devices()).filter((d) => d.role === 'companion');
  assert.equal(active.length, 1, JSON.stringify(active.map((d) => d.id)));
  assert.ok([a.json.device_id, b.json.device_id].includes(active[0].id));
  const hist = await primary.history();
  assert.equal(hist.filter((d) => d.end_reason === 'relinked').length, 1);
});

test('companion link twice on one state file: refused without --relink, replaced with it', async () => {
  const phone = new h.PhoneCli(server);
  await phone.register(h.uniqueHandle('re'));
  const comp = new h.CompanionCli(server);
  const first = await h.linkCompanionCli(phone, comp);
  const before = fs.readFileSync(comp.state, 'utf8');

  // Again without --relink: says so, names the state file and the way out; nothing is sent.
  const refused = await comp.run(['link']);
  assert.equal(refused.code, 1, h.describe(refused));
  assert.match(refused.stderr, /already holds a linked session/);
  assert.ok(refused.stderr.includes(comp.state), refused.stderr);
  assert.match(refused.stderr, /--relink/);
  assert.equal(refused.lines.find((l) => l.event === 'error')?.code, 'already_linked');
  assert.equal(fs.readFileSync(comp.state, 'utf8'), before);
  assert.equal((await phone.devices()).filter((d) => d.role === 'companion').length, 1);

  // With --relink: the new session replaces the old one.
  const second = await h.linkCompanionCli(phone, comp, { companionArgs: ['--relink'] });
  assert.notEqual(second.deviceId, first.deviceId);
  const companions = (await phone.devices()).filter((d) => d.role === 'companion');
  assert.deepEqual(companions.map((d) => d.id), [second.deviceId]);
  assert.equal((await phone.history()).find((d) => d.id === first.deviceId)?.end_reason, 'relinked');
  assert.equal((await comp.whoami()).device.id, second.deviceId);
});
