// Ending sessions (PRODUCT §3): remote logout, logout-all, self logout; the
// very next request is refused, live sockets hear why within milliseconds;
// history keeps the reason and can be cleaned up.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

/** Starts `companion watch --json` and waits (bounded) for it to be connected. */
async function startWatch(companion) {
  const w = companion.spawnWatch();
  // watch prints live events; the server greets every socket (hello / proof.challenge).
  await w.waitForLine((o) => typeof o.event === 'string', 5000);
  return w;
}

/** Waits for a watch to print session.ended and exit 0; returns the last line. */
async function watchEnds(w) {
  const ended = await w.waitForLine('session.ended', 5000);
  const ex = await w.waitExit(5000);
  assert.equal(ex.code, 0, `watch exit ${ex.code}: ${w.stderr()}`);
  const last = w.json[w.json.length - 1];
  assert.equal(last.event, 'session.ended', `last line: ${JSON.stringify(last)}`);
  return ended;
}

describe('with the CLIs', () => {
  let phone;
  const c = {};
  before(async () => {
    phone = new h.PhoneCli(server);
    await phone.register('alice');
  });

  test('phone logout <id>: the watching companion ends with "remote_logout", its token is refused', async () => {
    c.one = new h.CompanionCli(server);
    const { deviceId } = await h.linkCompanionCli(phone, c.one, { name: 'one' });
    c.one.id = deviceId;
    const token = await c.one.token();
    h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token }), 200);
    const w = await startWatch(c.one);
    try {
      const res = await phone.run(['logout', deviceId]);
      assert.equal(res.code, 0, h.describe(res));
      const ended = await watchEnds(w);
      assert.equal(ended.reason, 'remote_logout');
    } finally {
      w.kill('SIGKILL');
    }
    const after = await h.api(server.url, 'GET', '/v1/session', { token });
    h.expectError(after, 401, ['session_ended', 'unauthenticated']);
    assert.ok(!(await phone.devices()).some((d) => d.id === deviceId), 'no longer listed as active');
    const rec = (await phone.history()).find((d) => d.id === deviceId);
    assert.ok(rec, 'in history');
    assert.equal(rec.state, 'ended');
    assert.equal(rec.end_reason, 'remote_logout');
    assert.match(rec.ended_at, h.RFC3339);
    assert.equal(rec.name, 'one');
  });

  test('a watch started after the session ended says so and exits 0', async () => {
    const w = c.one.spawnWatch();
    try {
      const ex = await w.waitExit(5000);
      assert.equal(ex.code, 0, `watch exit ${ex.code}: ${w.stderr()}`);
      const last = w.json[w.json.length - 1];
      assert.equal(last?.event, 'session.ended', `lines: ${w.lines.join('\n')}`);
    } finally {
      w.kill('SIGKILL');
    }
    const who = await c.one.run(['whoami']);
    assert.equal(who.code, 3, `whoami on an ended session: ${h.describe(who)}`);
  });

  test('phone logout --all: every watching companion ends with "logout_all"', async () => {
    c.two = new h.CompanionCli(server);
    c.three = new h.CompanionCli(server);
    c.two.id = (await h.linkCompanionCli(phone, c.two)).deviceId;
    c.three.id = (await h.linkCompanionCli(phone, c.three)).deviceId;
    const w2 = await startWatch(c.two);
    const w3 = await startWatch(c.three);
    try {
      const t = h.stopwatch();
      const res = await phone.run(['logout', '--all']);
      assert.equal(res.code, 0, h.describe(res));
      const [e2, e3] = await Promise.all([watchEnds(w2), watchEnds(w3)]);
      console.log(`logout --all (CLI): both watches ended ${t().toFixed(0)} ms after the command started`);
      assert.equal(e2.reason, 'logout_all');
      assert.equal(e3.reason, 'logout_all');
    } finally {
      w2.kill('SIGKILL');
      w3.kill('SIGKILL');
    }
    // The phone itself stays signed in; its list holds only itself.
    const devices = await phone.devices();
    assert.deepEqual(devices.map((d) => d.id), [phone.deviceId]);
    const hist = await phone.history();
    for (const id of [c.two.id, c.three.id]) {
      assert.equal(hist.find((d) => d.id === id)?.end_reason, 'logout_all', id);
    }
  });

  test('companion logout ends its own session ("logout") and forgets it', async () => {
    c.four = new h.CompanionCli(server);
    c.four.id = (await h.linkCompanionCli(phone, c.four)).deviceId;
    const token = await c.four.token();
    const res = await c.four.run(['logout']);
    assert.equal(res.code, 0, h.describe(res));
    h.expectError(await h.api(server.url, 'GET', '/v1/session', { token }), 401, ['session_ended', 'unauthenticated']);
    const who = await c.four.run(['whoami']);
    assert.notEqual(who.code, 0, `whoami after logout: ${h.describe(who)}`);
    const rec = (await phone.history()).find((d) => d.id === c.four.id);
    assert.equal(rec?.end_reason, 'logout');
  });

  test('history delete one, then all', async () => {
    const before = await phone.history();
    assert.equal(before.length, 4, JSON.stringify(before.map((d) => [d.id, d.end_reason])));
    const one = await phone.run(['history', 'delete', c.one.id]);
    assert.equal(one.code, 0, h.describe(one));
    const mid = await phone.history();
    assert.equal(mid.length, 3);
    assert.ok(!mid.some((d) => d.id === c.one.id));
    const again = await phone.run(['history', 'delete', c.one.id]);
    assert.notEqual(again.code, 0, `deleting it twice: ${h.describe(again)}`);
    const all = await phone.run(['history', 'delete', '--all']);
    assert.equal(all.code, 0, h.describe(all));
    assert.deepEqual(await phone.history(), []);
    // Deleting history does not touch active sessions.
    assert.deepEqual((await phone.devices()).map((d) => d.id), [phone.deviceId]);
  });
});

describe('over the API and WebSockets', () => {
  let bob;
  before(async () => {
    bob = await h.registerPrimary(server.url, 'bob');
  });

  test('logout-all closes every companion socket with session.ended within milliseconds', async () => {
    const companions = [];
    for (let i = 0; i < 3; i++) companions.push(await h.linkCompanionApi(server.url, bob));
    const sockets = [];
    const pws = await bob.ws();
    try {
      await pws.next('hello');
      for (const c of companions) {
        const ws = await c.ws();
        await ws.next('hello');
        sockets.push(ws);
      }
      const t0 = performance.now();
      const res = await bob.post('/v1/devices/logout-all', {});
      const t1 = performance.now();
      const j = h.expectStatus(res, 200);
      assert.equal(j.ended, 3);
      assert.deepEqual([...j.device_ids].sort(), companions.map((c) => c.deviceId).sort());

      // Each socket's session.ended, timed from the request being sent (t0)
      // and relative to the API answer arriving (t1). The server pushes the
      // events as it answers, so an event often arrives before the answer
      // does: that figure is then negative, and printed as such.
      const fromSend = [];
      const afterAnswer = [];
      for (const ws of sockets) {
        const ended = await ws.next('session.ended', 2000);
        assert.equal(ended.reason, 'logout_all');
        assert.equal(typeof ended.message, 'string');
        const closed = await h.withTimeout(ws.closed, h.T(2000), 'the server to close the socket');
        assert.equal(closed.code, 4001);
        fromSend.push(ws.timeOf(ended) - t0);
        afterAnswer.push(ws.timeOf(ended) - t1);
      }
      const signed = (x) => `${x < 0 ? '-' : '+'}${Math.abs(x).toFixed(2)}`;
      console.log(`logout-all propagation: ${fromSend.map((x) => x.toFixed(2)).join(', ')} ms after the request ` +
        `was sent (the answer came after ${(t1 - t0).toFixed(2)} ms); relative to the answer: ` +
        `${afterAnswer.map(signed).join(', ')} ms (negative: before the answer arrived)`);
      assert.ok(fromSend.every((x) => x >= 0), `an event timed before its request was sent: ${fromSend}`);
      assert.ok(Math.max(...afterAnswer) < h.T(1000), `propagation took ${Math.max(...afterAnswer)} ms after the answer`);

      // The primary hears of every end (devices that ended together come in one event).
      for (const c of companions) {
        const ev = pws.events.find((m) => m.event === 'device.ended' && (m.device_ids || [m.device_id]).includes(c.deviceId)) ||
          await pws.next((m) => m.event === 'device.ended' && (m.device_ids || [m.device_id]).includes(c.deviceId), 2000);
        assert.equal(ev.reason, 'logout_all');
      }
      // The very next request with an old credential is refused; a new socket too.
      for (const c of companions) {
        h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
        const again = await h.tryConnectWs(server.url, c.token);
        assert.equal(again.ok, false, 'an ended credential cannot open a socket');
        assert.equal(again.status, 401);
      }
      // The primary is untouched.
      h.expectStatus(await bob.get('/v1/session'), 200);
      assert.ok(pws.closeInfo === null, 'the primary socket stays open');
    } finally {
      await Promise.all([pws, ...sockets].map((ws) => ws.close()));
    }
  });

  test('remote logout: the companion socket hears remote_logout, the record moves to history', async () => {
    const c = await h.linkCompanionApi(server.url, bob);
    const ws = await c.ws();
    try {
      await ws.next('hello');
      const r = h.expectStatus(await bob.del(`/v1/devices/${c.deviceId}`), 200);
      assert.equal(r.ended, true);
      const ended = await ws.next('session.ended', 2000);
      assert.equal(ended.reason, 'remote_logout');
      assert.equal((await ws.closed).code, 4001);
    } finally {
      await ws.close();
    }
    h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    // Ending it again: it is already logged out, and the answer says so.
    h.expectError(await bob.del(`/v1/devices/${c.deviceId}`), 409, 'not_active');
    const rec = (await bob.history()).find((d) => d.id === c.deviceId);
    assert.equal(rec.end_reason, 'remote_logout');
    assert.equal(rec.state, 'ended');
  });

  test('self logout: 200 with Clear-Site-Data; the primary gets device.ended (and an alert)', async () => {
    const c = await h.linkCompanionApi(server.url, bob);
    const pws = await bob.ws();
    try {
      await pws.next('hello');
      const res = await c.del('/v1/session');
      assert.equal(h.expectStatus(res, 200).ended, true);
      assert.ok(res.headers.get('clear-site-data'), 'Clear-Site-Data header');
      const ev = await pws.next((m) => m.event === 'device.ended' && m.device_id === c.deviceId, 2000);
      assert.equal(ev.reason, 'logout');
      const al = await pws.next((m) => m.event === 'alert' && m.alert.kind === 'device.ended', 2000);
      assert.equal(al.alert.device_id, c.deviceId);
    } finally {
      await pws.close();
    }
    h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    assert.equal((await bob.history()).find((d) => d.id === c.deviceId)?.end_reason, 'logout');
  });

  test('history delete over the API: one, then all; only ended records', async () => {
    const live = await h.linkCompanionApi(server.url, bob);
    const hist = await bob.history();
    assert.ok(hist.length >= 5, `bob has ended sessions: ${hist.length}`);
    for (const rec of hist) {
      assert.equal(rec.state, 'ended');
      assert.ok(rec.end_reason);
    }
    // An active session is not history.
    h.expectError(await bob.del(`/v1/history/${live.deviceId}`), 404, 'not_found');
    // A companion may read but not delete history.
    h.expectStatus(await live.get('/v1/history'), 200);
    h.expectError(await live.del(`/v1/history/${hist[0].id}`), 403, 'forbidden');
    h.expectError(await live.del('/v1/history'), 403, 'forbidden');

    assert.deepEqual(h.expectStatus(await bob.del(`/v1/history/${hist[0].id}`), 200), { deleted: 1 });
    h.expectError(await bob.del(`/v1/history/${hist[0].id}`), 404, 'not_found');
    assert.deepEqual(h.expectStatus(await bob.del('/v1/history'), 200), { deleted: hist.length - 1 });
    assert.deepEqual(await bob.history(), []);
    assert.ok((await bob.devices()).some((d) => d.id === live.deviceId), 'the live companion is untouched');
  });

  test('sessions of another account are out of reach', async () => {
    const carol = await h.registerPrimary(server.url, 'carol');
    const mine = await h.linkCompanionApi(server.url, bob);
    h.expectError(await carol.del(`/v1/devices/${mine.deviceId}`), 404, 'not_found');
    h.expectStatus(await mine.get('/v1/session'), 200);
    const logoutAll = h.expectStatus(await carol.post('/v1/devices/logout-all', {}), 200);
    assert.equal(logoutAll.ended, 0);
    h.expectStatus(await mine.get('/v1/session'), 200);
  });
});
