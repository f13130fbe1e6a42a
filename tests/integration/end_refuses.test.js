// Every way of ending a session goes through one entry point
// (lw_sessions_end_where, docs/architecture.md "How a request flows"), which
// drops the session from the credential cache: a credential used once (so it
// is cached) is refused on the very next request, whatever ended it — remote
// logout, logout-all, the sweeper, account deletion, the control socket, a
// theft on refresh — on SQLite and on PostgreSQL. The PostgreSQL half needs
// the postgres CTest fixture (LINKWARD_TEST_PG, as integration.multinode).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as h from '../lib/harness.js';

const PG_FILE = process.env.LINKWARD_TEST_PG;
const servers = [];

function freshPg(name) {
  const base = fs.readFileSync(PG_FILE, 'utf8').trim();
  const schema = `er_${name}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  execFileSync('psql', [base, '-qc', `CREATE SCHEMA ${schema}`], { stdio: 'pipe' });
  return `${base}&options=-csearch_path%3D${schema}`;
}

async function start(engine, name, args = []) {
  const db = engine === 'postgres' ? ['--db', freshPg(name)] : [];
  const s = await h.startServer({ args: [...db, ...args] });
  servers.push(s);
  return s;
}

/** A device whose credential has just been checked once, so it is cached. */
async function warm(dev) {
  h.expectStatus(await dev.raw('GET', '/v1/session'), 200);
  return dev;
}

/** The next request with the device's (cached) credential is refused. */
async function refused(dev, what) {
  const res = await dev.raw('GET', '/v1/session');
  assert.equal(res.status, 401, `${what}: the cached credential still works: ${h.show(res)}`);
  assert.ok(['session_ended', 'unauthenticated'].includes(res.json?.error?.code), h.show(res));
  return res;
}

after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
});

for (const engine of ['sqlite', 'postgres']) {
  describe(`a cached session is refused after it ends (${engine})`, { skip: engine === 'postgres' && !PG_FILE && 'no PostgreSQL fixture (LINKWARD_TEST_PG)' }, () => {
    let S;
    before(async () => {
      S = await start(engine, 'main');
    });

    test('remote logout by the phone', async () => {
      const primary = await warm(await h.registerPrimary(S.url, h.uniqueHandle('rl')));
      const c = await warm(await h.linkCompanionApi(S.url, primary));
      h.expectStatus(await primary.del(`/v1/devices/${c.deviceId}`), 200);
      const res = await refused(c, 'remote logout');
      assert.equal(res.json.error.reason, 'remote_logout');
      h.expectStatus(await primary.raw('GET', '/v1/session'), 200);
    });

    test('logout-all', async () => {
      const primary = await warm(await h.registerPrimary(S.url, h.uniqueHandle('la')));
      const a = await warm(await h.linkCompanionApi(S.url, primary));
      const b = await warm(await h.linkCompanionApi(S.url, primary));
      h.expectStatus(await primary.post('/v1/devices/logout-all', {}), 200);
      for (const c of [a, b]) assert.equal((await refused(c, 'logout-all')).json.error.reason, 'logout_all');
      h.expectStatus(await primary.raw('GET', '/v1/session'), 200);
    });

    test('account deletion', async () => {
      const primary = await warm(await h.registerPrimary(S.url, h.uniqueHandle('ad')));
      const c = await warm(await h.linkCompanionApi(S.url, primary));
      h.expectStatus(await primary.raw('DELETE', '/v1/account', { body: {} }), 200);
      await refused(c, 'account deletion');
      await refused(primary, 'account deletion');
    });

    test('the control socket: one device, and an account', async () => {
      const primary = await warm(await h.registerPrimary(S.url, h.uniqueHandle('cs')));
      const one = await warm(await h.linkCompanionApi(S.url, primary));
      const rest = await warm(await h.linkCompanionApi(S.url, primary));
      const r1 = await h.controlRequest(S, { cmd: 'end_sessions', device: one.deviceId });
      assert.equal(r1.ended, 1, JSON.stringify(r1));
      assert.equal((await refused(one, 'control socket (device)')).json.error.reason, 'admin_logout');
      h.expectStatus(await rest.raw('GET', '/v1/session'), 200);
      const r2 = await h.controlRequest(S, { cmd: 'end_sessions', account: primary.handle });
      assert.equal(r2.ended, 1, JSON.stringify(r2));
      assert.equal((await refused(rest, 'control socket (account)')).json.error.reason, 'admin_logout');
      h.expectStatus(await primary.raw('GET', '/v1/session'), 200);
    });

    test('theft: a refresh with a wrong proof', async () => {
      const primary = await warm(await h.registerPrimary(S.url, h.uniqueHandle('th')));
      const c = await warm(await h.linkCompanionApi(S.url, primary));
      h.expectError(await c.refresh({ key: h.newDeviceKey() }), 401, 'token_theft');
      assert.equal((await refused(c, 'theft')).json.error.reason, 'token_theft');
      const alerts = await primary.alerts();
      assert.ok(alerts.some((a) => a.kind === 'token.theft_suspected'), JSON.stringify(alerts.map((a) => a.kind)));
    });

    test('the sweeper (inactivity)', async () => {
      const T = await start(engine, 'sweep', ['--inactive-ttl', '1s', '--sweep-interval', '1h']);
      const primary = await warm(await h.registerPrimary(T.url, h.uniqueHandle('sw')));
      const c = await warm(await h.linkCompanionApi(T.url, primary));
      await h.tick(1300);
      const r = await h.controlRequest(T, { cmd: 'purge' });
      assert.ok(r.ended >= 1, JSON.stringify(r));
      assert.equal((await refused(c, 'sweep')).json.error.reason, 'inactive');
    });
  });
}
