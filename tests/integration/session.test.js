// Session lifetime (PRODUCT §3): persistence across restarts, device-bound
// credential refresh, theft detection, the companion token command, and
// expiry by inactivity, absolute age and primary inactivity.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const servers = [];
async function start(args = [], opts = {}) {
  const s = await h.startServer({ args, ...opts });
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

describe('persistence', () => {
  let S;
  before(async () => {
    S = await start();
  });

  test('sessions survive a server restart', async () => {
    const phone = new h.PhoneCli(S);
    await phone.register('alice');
    const companion = new h.CompanionCli(S);
    const { deviceId } = await h.linkCompanionCli(phone, companion);
    const primary = await h.registerPrimary(S.url, 'bob');
    const apiCompanion = await h.linkCompanionApi(S.url, primary);
    const keyBefore = h.expectStatus(await h.api(S.url, 'GET', '/v1/server'), 200).server_key;
    const statsBefore = await h.adminStats(S);

    await S.stop();
    assert.equal(S.exitInfo.code, 0, `SIGTERM exits 0: ${JSON.stringify(S.exitInfo)}\n${S.stderr().slice(-2000)}`);
    await S.restart();

    // Same server key, so pinned phones still trust its payloads.
    assert.equal(h.expectStatus(await h.api(S.url, 'GET', '/v1/server'), 200).server_key, keyBefore);
    // The CLI companion is still linked.
    const who = await companion.whoami();
    assert.equal(who.device.id, deviceId);
    assert.equal(who.device.state, 'active');
    // The API companion's credential is still valid as is.
    const sess = h.expectStatus(await apiCompanion.raw('GET', '/v1/session'), 200);
    assert.equal(sess.device.id, apiCompanion.deviceId);
    // The phone still sees its companion, and can link another one.
    assert.ok((await phone.devices()).some((d) => d.id === deviceId));
    await h.linkCompanionCli(phone, new h.CompanionCli(S));
    const statsAfter = await h.adminStats(S);
    assert.equal(statsAfter.accounts, statsBefore.accounts);
  });

  test('a running companion watch rides across a server restart and still ends with the right reason', async () => {
    const phone = new h.PhoneCli(S);
    await phone.register(h.uniqueHandle('ride'));
    const companion = new h.CompanionCli(S);
    const { deviceId } = await h.linkCompanionCli(phone, companion);
    const watch = companion.spawnWatch();
    try {
      await watch.waitForLine('hello');
      const hellos = () => watch.json.filter((o) => o.event === 'hello').length;
      // SIGTERM tells the socket to reconnect (1012); the CLI retries until the new server listens.
      await S.stop();
      await S.restart();
      await h.pollUntil(() => hellos() >= 2, { timeout: 15000, interval: 50, what: 'watch to reconnect after the restart' });
      assert.equal(watch.proc.exitCode, null, `watch must not exit across a restart: ${watch.stderr()}`);
      // The same session, not a new link: the phone's logout of that device ends the watch.
      h.expectStatus(await h.api(S.url, 'GET', '/v1/health'), 200);
      const out = await phone.run(['logout', deviceId]);
      assert.equal(out.code, 0, h.describe(out));
      const ended = await watch.waitForLine('session.ended');
      assert.equal(ended.reason, 'remote_logout');
      assert.equal((await watch.waitExit()).code, 0);
    } finally {
      watch.kill('SIGKILL');
    }
  });

  test('companion token prints a credential accepted as Bearer', async () => {
    const phone = new h.PhoneCli(S);
    await phone.register('carol');
    const companion = new h.CompanionCli(S);
    const { deviceId } = await h.linkCompanionCli(phone, companion);
    const token = await companion.token();
    assert.match(token, /^lws_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const sess = h.expectStatus(await h.api(S.url, 'GET', '/v1/session', { token }), 200);
    assert.equal(sess.device.id, deviceId);
    assert.equal(sess.device.role, 'companion');
  });

  test('the session credential also works as the lw_session cookie', async () => {
    const primary = await h.registerPrimary(S.url, 'dora');
    const c = await h.linkCompanionApi(S.url, primary);
    const r = await h.api(S.url, 'GET', '/v1/session', { headers: { cookie: `lw_session=${c.token}` } });
    assert.equal(h.expectStatus(r, 200).device.id, c.deviceId);
    h.expectError(await h.api(S.url, 'GET', '/v1/session', { headers: { cookie: 'lw_session=lws_nope.nope' } }),
      401, 'unauthenticated');
  });
});

describe('device-bound credentials', () => {
  let S;
  let theftServer;
  before(async () => {
    S = await start(['--credential-ttl', '1s']);
    theftServer = await start();
  });

  test('an expired credential answers 401 credential_expired; a refresh signed by the device key renews it', async () => {
    const primary = await h.registerPrimary(S.url, 'alice');
    assert.equal(primary.tokenExpiresIn, 1);
    const c = await h.linkCompanionApi(S.url, primary);
    assert.equal(c.tokenExpiresIn, 1);
    const ws = await c.ws();
    try {
      await ws.next('hello');
      const first = await ws.next('proof.challenge');
      assert.equal(first.challenge, c.challenge);

      const oldToken = c.token;
      const oldChallenge = c.challenge;
      const expired = await h.pollUntil(async () => {
        const r = await c.raw('GET', '/v1/session');
        if (r.status === 200) return false;
        return r;
      }, { timeout: 5000, interval: 100, maxTries: 60, what: 'the credential to expire' });
      h.expectError(expired, 401, 'credential_expired');

      const r = await c.refresh();
      const j = h.expectStatus(r, 200);
      assert.notEqual(j.token, oldToken);
      assert.notEqual(j.challenge, oldChallenge);
      assert.equal(j.token_expires_in, 1);
      assert.equal(h.expectStatus(await c.raw('GET', '/v1/session'), 200).device.id, c.deviceId);
      // The socket is told the new challenge.
      const pc = await ws.next((m) => m.event === 'proof.challenge' && m.challenge === j.challenge, 3000);
      assert.ok(pc.token_expires_in > 0);
      // The old credential is dead, and cannot be refreshed again.
      const old = await h.api(S.url, 'GET', '/v1/session', { token: oldToken });
      assert.equal(old.status, 401, h.show(old));
      const sig = h.b64e(c.key.sign(h.refreshMessage(c.deviceId, j.challenge)));
      const replay = await h.api(S.url, 'POST', '/v1/session/refresh', { token: oldToken, body: { signature: sig } });
      assert.equal(replay.status, 401, `refresh with the replaced credential: ${h.show(replay)}`);
    } finally {
      await ws.close();
    }
  });

  test('the CLIs refresh their credentials by themselves', async () => {
    const phone = new h.PhoneCli(S);
    await phone.register('bob');
    const companion = new h.CompanionCli(S);
    const { deviceId } = await h.linkCompanionCli(phone, companion);
    const t1 = await companion.token();
    await h.pollUntil(async () => (await h.api(S.url, 'GET', '/v1/session', { token: t1 })).status === 401,
      { timeout: 5000, interval: 100, maxTries: 60, what: 'the companion credential to expire' });
    const t2 = await companion.token();
    assert.notEqual(t2, t1, 'companion token refreshed an expired credential');
    h.expectStatus(await h.api(S.url, 'GET', '/v1/session', { token: t2 }), 200);
    assert.equal((await companion.whoami()).device.id, deviceId);
    // The phone's credential lapsed long ago too; it still works.
    assert.ok((await phone.devices()).some((d) => d.id === deviceId));
  });

  test('a refresh signed by the wrong key ends the session as token theft', async () => {
    const primary = await h.registerPrimary(theftServer.url, 'carol');
    const c = await h.linkCompanionApi(theftServer.url, primary);
    const pws = await primary.ws();
    const cws = await c.ws();
    try {
      await pws.next('hello');
      await cws.next('hello');
      const thief = h.newDeviceKey();
      const r = await c.refresh({ key: thief });
      h.expectError(r, 401, 'token_theft');
      const ended = await cws.next('session.ended', 2000);
      assert.equal(ended.reason, 'token_theft');
      const alert = await pws.next((m) => m.event === 'alert' && m.alert.kind === 'token.theft_suspected', 2000);
      assert.equal(alert.alert.device_id, c.deviceId);
    } finally {
      await pws.close();
      await cws.close();
    }
    h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    // Even the right key cannot bring it back.
    assert.equal((await c.refresh()).status, 401);
    const alerts = await primary.alerts();
    assert.ok(alerts.some((a) => a.kind === 'token.theft_suspected' && a.device_id === c.deviceId), JSON.stringify(alerts));
    const rec = (await primary.history()).find((d) => d.id === c.deviceId);
    assert.equal(rec?.end_reason, 'token_theft');
  });

  test('a refresh without a signature is treated the same way', async () => {
    const primary = await h.registerPrimary(theftServer.url, 'dave');
    const c = await h.linkCompanionApi(theftServer.url, primary);
    const r = await h.api(theftServer.url, 'POST', '/v1/session/refresh', { token: c.token, body: {} });
    h.expectError(r, 401, 'token_theft');
    h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    assert.equal((await primary.history()).find((d) => d.id === c.deviceId)?.end_reason, 'token_theft');
  });

  test('a signature over a stale challenge is not a valid proof', async () => {
    const primary = await h.registerPrimary(theftServer.url, 'erin');
    const c = await h.linkCompanionApi(theftServer.url, primary);
    const stale = c.challenge;
    h.expectStatus(await c.refresh(), 200);
    const r = await c.refresh({ challenge: stale });
    h.expectError(r, 401, 'token_theft');
  });
});

describe('expiry', { concurrency: true }, () => {
  test('an idle companion ends as "inactive"; one in use does not; the primary is not affected', async () => {
    const S = await start(['--inactive-ttl', '2s', '--sweep-interval', '200ms']);
    const primary = await h.registerPrimary(S.url, 'alice');
    const idle = await h.linkCompanionApi(S.url, primary);
    const busy = await h.linkCompanionApi(S.url, primary);
    const ws = await idle.ws();
    try {
      await ws.next('hello');
      const t = h.stopwatch();
      // Use `busy` every 300 ms for 4 s (twice its TTL); every request must succeed.
      const busyLoop = (async () => {
        for (let i = 0; i < 14 && t() < h.T(4000); i++) {
          h.expectStatus(await busy.raw('GET', '/v1/session'), 200);
          await h.tick(300);
        }
      })();
      const ended = await ws.next('session.ended', 8000);
      const ms = t();
      assert.equal(ended.reason, 'inactive');
      assert.ok(ms > 1000, `ended after ${ms} ms, before its 2 s TTL could pass`);
      assert.equal((await ws.closed).code, 4001);
      await busyLoop;
    } finally {
      await ws.close();
    }
    h.expectError(await idle.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    h.expectStatus(await busy.raw('GET', '/v1/session'), 200);
    h.expectStatus(await primary.get('/v1/session'), 200);
    const rec = (await primary.history()).find((d) => d.id === idle.deviceId);
    assert.equal(rec?.end_reason, 'inactive');
  });

  test('companion watch ends with "inactive" when its session expires', async () => {
    const S = await start(['--inactive-ttl', '2s', '--sweep-interval', '200ms']);
    const phone = new h.PhoneCli(S);
    await phone.register('bob');
    const companion = new h.CompanionCli(S);
    await h.linkCompanionCli(phone, companion);
    const w = companion.spawnWatch();
    try {
      const ended = await w.waitForLine('session.ended', 8000);
      assert.equal(ended.reason, 'inactive');
      const ex = await w.waitExit(5000);
      assert.equal(ex.code, 0);
    } finally {
      w.kill('SIGKILL');
    }
  });

  test('the sweeper also runs at start-up', async () => {
    const S = await start(['--inactive-ttl', '1s', '--sweep-interval', '1h']);
    const primary = await h.registerPrimary(S.url, 'carol');
    const c = await h.linkCompanionApi(S.url, primary);
    await S.stop();
    const t = h.stopwatch();
    // Time must pass while the server is down; bounded.
    await h.pollUntil(() => t() > 1500, { timeout: 3000, interval: 100, what: 'the TTL to pass' });
    await S.restart();
    h.expectError(await c.raw('GET', '/v1/session'), 401, ['session_ended', 'unauthenticated']);
    assert.equal((await primary.history()).find((d) => d.id === c.deviceId)?.end_reason, 'inactive');
  });

  test('a browser without "keep me signed in" is logged out once unused (--browser-session-idle); one in use, or kept signed in, stays', async () => {
    const S = await start(['--browser-session-idle', '3s', '--credential-ttl', '1s', '--sweep-interval', '200ms']);
    const primary = await h.registerPrimary(S.url, 'frank');
    const idle = await h.linkCompanionApi(S.url, primary, { persistent: false });
    const busy = await h.linkCompanionApi(S.url, primary, { persistent: false });
    const kept = await h.linkCompanionApi(S.url, primary); // persistent by default
    const ws = await idle.ws();
    try {
      await ws.next('hello');
      const t = h.stopwatch();
      // The busy one keeps working (refreshing its 1 s credential as it goes) until the idle one is ended.
      const endedEv = ws.next('session.ended', 8000);
      let done = false;
      endedEv.then(() => { done = true; }, () => { done = true; });
      for (let i = 0; i < 60 && !done && t() < h.T(8000); i++) {
        h.expectStatus(await busy.get('/v1/session'), 200);
        await h.tick(200);
      }
      const ev = await endedEv;
      assert.equal(ev.reason, 'inactive');
      assert.ok(t() > 2000, `ended after ${t()} ms, before it was unused for the 3 s allowed`);
      h.expectStatus(await busy.get('/v1/session'), 200);
      const live = (await primary.devices()).map((d) => d.id);
      assert.ok(live.includes(busy.deviceId) && live.includes(kept.deviceId) && !live.includes(idle.deviceId),
        `devices after the sweep: ${live.join(', ')}`);
      assert.equal((await primary.history()).find((d) => d.id === idle.deviceId)?.end_reason, 'inactive');
    } finally {
      await ws.close();
    }
  });

  test('--max-age ends even a busy session ("max_age")', async () => {
    const S = await start(['--max-age', '2s', '--sweep-interval', '200ms']);
    const primary = await h.registerPrimary(S.url, 'dave');
    const c = await h.linkCompanionApi(S.url, primary);
    const ws = await c.ws();
    try {
      await ws.next('hello');
      const t = h.stopwatch();
      let ended = null;
      for (let i = 0; i < 40 && !ended && t() < h.T(6000); i++) {
        const r = await c.raw('GET', '/v1/session');
        if (r.status !== 200) ended = r;
        else await h.tick(200);
      }
      assert.ok(ended, 'the session ended by max age while in use');
      h.expectError(ended, 401, ['session_ended', 'unauthenticated']);
      const ev = await ws.next('session.ended', 2000);
      assert.equal(ev.reason, 'max_age');
      assert.ok(t() > 1000);
    } finally {
      await ws.close();
    }
  });

  test('companions end as "primary_inactive" when the primary is not seen', async () => {
    const S = await start(['--primary-inactive', '2s', '--sweep-interval', '200ms']);
    const primary = await h.registerPrimary(S.url, 'erin');
    const c = await h.linkCompanionApi(S.url, primary);
    const ws = await c.ws();
    try {
      await ws.next('hello');
      const t = h.stopwatch();
      // The companion stays busy; only its primary is idle.
      let ended = null;
      for (let i = 0; i < 40 && !ended && t() < h.T(6000); i++) {
        const r = await c.raw('GET', '/v1/session');
        if (r.status !== 200) ended = r;
        else await h.tick(200);
      }
      assert.ok(ended, 'the companion session ended');
      const ev = await ws.next('session.ended', 2000);
      assert.equal(ev.reason, 'primary_inactive');
    } finally {
      await ws.close();
    }
  });
});
