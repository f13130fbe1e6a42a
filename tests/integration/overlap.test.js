// Two servers on one SQLite file, as during a restart without downtime
// (docs/operations.md: the new server starts on the same port and data
// directory before the old one is told to stop). Each keeps a session cache;
// a session ended through one must be refused by the other at once, and the
// other's sockets of that session closed, although no notification passes
// between them (session.c, check_foreign_writes).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as h from '../lib/harness.js';

let a;
let b;

before(async () => {
  a = await h.startServer();
  // Same data directory (the server key and the credential hash key), its own
  // port and control socket: the two processes of an overlap.
  b = await h.startServer({ dataDir: a.dataDir, args: ['--control', path.join(h.tempDir('lw-ctl-'), 'control.sock')] });
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

test('a logout through one server is refused by the other at once and closes its sockets', async () => {
  const phone = await h.registerPrimary(a.url, h.uniqueHandle('overlap'));
  const c1 = await h.linkCompanionApi(a.url, phone);
  const c2 = await h.linkCompanionApi(a.url, phone);
  // B has both credentials in its cache and holds their sockets.
  for (const c of [c1, c2]) h.expectStatus(await h.api(b.url, 'GET', '/v1/session', { token: c.token }), 200);
  const ws1 = await h.connectWs(b.url, c1.token);
  const ws2 = await h.connectWs(b.url, c2.token);
  try {
    // Remote logout of c1 through A: B refuses its very next request.
    h.expectStatus(await h.api(a.url, 'DELETE', `/v1/devices/${c1.deviceId}`, { token: phone.token }), 200);
    const r1 = h.expectError(await h.api(b.url, 'GET', '/v1/session', { token: c1.token }), 401, 'session_ended');
    assert.equal(r1.reason, 'remote_logout');
    // …and closes its socket with the reason, without any request on it.
    const ev1 = await ws1.next((m) => m.event === 'session.ended', 3000);
    assert.equal(ev1.reason, 'remote_logout');
    // c2 was not touched: still fine on B, its socket still open.
    h.expectStatus(await h.api(b.url, 'GET', '/v1/session', { token: c2.token }), 200);

    // Logout-all through A: the same for c2.
    h.expectStatus(await h.api(a.url, 'POST', '/v1/devices/logout-all', { token: phone.token, body: {} }), 200);
    const r2 = h.expectError(await h.api(b.url, 'GET', '/v1/session', { token: c2.token }), 401, 'session_ended');
    assert.equal(r2.reason, 'logout_all');
    const ev2 = await ws2.next((m) => m.event === 'session.ended', 3000);
    assert.equal(ev2.reason, 'logout_all');
  } finally {
    ws1.close();
    ws2.close();
  }
});

test('a server alone on its file keeps its cache: its own writes are not taken for another process', async () => {
  const solo = await h.startServer();
  try {
    const phone = await h.registerPrimary(solo.url, h.uniqueHandle('solo'));
    for (let i = 0; i < 3; i++) {
      const c = await h.linkCompanionApi(solo.url, phone);
      h.expectStatus(await h.api(solo.url, 'GET', '/v1/session', { token: c.token }), 200);
      h.expectStatus(await h.api(solo.url, 'DELETE', `/v1/devices/${c.deviceId}`, { token: phone.token }), 200);
    }
    // An online backup reads through a connection of its own; it writes nothing.
    const res = await h.runCli(['admin', '--control', solo.controlSock, 'backup', path.join(h.tempDir('lw-bk-'), 'copy.db')]);
    assert.equal(res.code, 0, h.describe(res));
    h.expectStatus(await h.api(solo.url, 'GET', '/v1/session', { token: phone.token }), 200);
    assert.doesNotMatch(solo.stderr(), /another process wrote to the store/);
  } finally {
    await solo.stop();
  }
});
