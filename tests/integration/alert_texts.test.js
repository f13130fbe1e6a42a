// Every alert says what happened in a sentence (details.message), never a
// dump of its details; device.ended names the device in the third person,
// so it reads right on the phone too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => { server = await h.startServer(); });
after(async () => { await server?.stop(); });

test('device.ended names the device and is not "You were logged out" on the phone; every alert is a sentence', async () => {
  const phone = await h.registerPrimary(server.url, h.uniqueHandle('texts'));
  const one = await h.linkCompanionApi(server.url, phone, { client: { name: 'Chrome on Windows' } });
  h.expectStatus(await phone.del(`/v1/devices/${one.deviceId}`), 200);
  const ended = (await phone.alerts()).find((a) => a.kind === 'device.ended' && a.device_id === one.deviceId);
  assert.equal(ended.details.message, 'Chrome on Windows was logged out from your phone.');

  const a = await h.linkCompanionApi(server.url, phone, { client: { name: 'Firefox on Linux' } });
  const b = await h.linkCompanionApi(server.url, phone, { client: { name: 'Build server' } });
  h.expectStatus(await phone.post('/v1/devices/logout-all', {}), 200);
  const all = (await phone.alerts()).find((x) => x.kind === 'device.ended' && x.details.reason === 'logout_all');
  assert.equal(all.details.count, 2);
  assert.match(all.details.message,
    /^2 devices were logged out from your phone \(log out all devices\): (Firefox on Linux and Build server|Build server and Firefox on Linux)\.$/);
  assert.ok([a.deviceId, b.deviceId].every((id) => all.details.device_ids.includes(id)));

  const c = await h.linkCompanionApi(server.url, phone, { client: { name: 'Old laptop' } });
  h.expectError(await h.api(server.url, 'POST', '/v1/session/refresh', { token: c.token, body: {} }), 401, 'token_theft');
  const theft = (await phone.alerts()).find((x) => x.kind === 'token.theft_suspected');
  assert.equal(theft.details.message,
    'Old laptop presented its credential without a signature by its device key (from 127.0.0.1), so it was logged out.');

  for (const x of await phone.alerts()) {
    assert.equal(typeof x.details.message, 'string', `${x.kind} has a sentence`);
    assert.match(x.details.message, /^[A-Z0-9].*[.]$/, `${x.kind}: ${x.details.message}`);
    assert.doesNotMatch(x.details.message, /You were|=|\b1 (attempts|tries|seconds|minutes)\b/, x.details.message);
    assert.equal(x.count, 1);
  }
});
