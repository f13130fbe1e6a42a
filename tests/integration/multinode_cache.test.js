// Several nodes on one PostgreSQL, the session cache (issue 13, part 5): a
// node checks credentials from memory while its relay is healthy (its own
// heartbeats heard back through LISTEN), kept exact by the notifications of
// every revocation; while it is not, every check reads the store. Needs the
// PostgreSQL fixture (tests/tools/pg_start.sh), as integration.multinode.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';
import { PgNodes, pgProxy } from '../lib/pgnodes.js';

const HEALTHY_MS = 1500; // LW_RELAY_HEALTHY_MS (src/server/bus/relay.h)
const pg = new PgNodes('mc');

/** Two nodes on one database with one server key; listenA: node A's --db-listen (or none). */
async function pair(name, listenA = () => null) {
  return pg.cluster(2, name, [], async (i, db) => {
    const la = i === 0 ? await listenA(db) : null;
    return la ? ['--db-listen', la] : [];
  });
}

/** The node's id, as its relay logs it at start. */
function nodeId(server) {
  const m = /LISTEN\/NOTIFY \(node ([A-Za-z0-9_-]{22})/.exec(server.stderr());
  assert.ok(m, 'the relay logs its node id');
  return m[1];
}

/** Terminates the backend of one node's LISTEN connection (application_name "linkward-listen <node id>"). */
function terminateListener(server) {
  return pg.psql(
    `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'linkward-listen ${nodeId(server)}'`);
}

async function metrics(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const num = (re) => Number(re.exec(text)?.[1] ?? 0);
  return {
    healthy: num(/^linkward_relay_healthy (\d+)$/m),
    reads: (why) => num(new RegExp(`^linkward_session_store_reads_total\\{why="${why}"\\} (\\d+)$`, 'm')),
    storeOps: num(/^linkward_store_duration_seconds_count (\d+)$/m),
  };
}

const healthy = async (server) => (await metrics(server)).healthy === 1;
const waitHealthy = (server) => h.pollUntil(() => healthy(server), { timeout: h.T(5000), what: 'the relay to be healthy' });

/** GET /v1/session on url with token until it is refused (or the deadline); {res, ms, tries}. */
async function untilRefused(url, token, deadline) {
  const t = h.stopwatch();
  for (let tries = 1; ; tries++) {
    const res = await h.api(url, 'GET', '/v1/session', { token });
    if (res.status !== 200 || t() > deadline) return { res, ms: t(), tries };
  }
}

before(() => pg.open());

after(() => pg.stopAll());

test('a warm cache on a healthy node: N checks read the store not once', async () => {
  const [A, B] = await pair('warm');
  const phone = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
  const c = await h.linkCompanionApi(B.url, phone);
  await waitHealthy(A);
  h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200); // fills A's cache
  const m0 = await metrics(A);
  const N = 200;
  for (let i = 0; i < N; i++) h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
  const m1 = await metrics(A);
  const ops = m1.storeOps - m0.storeOps;
  console.log(`${N} checks on a healthy node: ${ops} store operations, ` +
    `reads miss +${m1.reads('miss') - m0.reads('miss')} unhealthy +${m1.reads('unhealthy') - m0.reads('unhealthy')} ` +
    `recheck +${m1.reads('recheck') - m0.reads('recheck')}`);
  assert.equal(m1.reads('unhealthy') - m0.reads('unhealthy'), 0);
  assert.equal(m1.reads('miss') - m0.reads('miss'), 0);
  assert.ok(m1.reads('recheck') - m0.reads('recheck') <= 1, 'at most one periodic re-read');
  // Before the cache, every check was a store read: N operations. Now only a
  // coalesced last-active write or a periodic re-read may happen.
  assert.ok(ops <= 2, `${ops} store operations for ${N} checks`);
});

test('revoked on B, refused on A as soon as the notification arrives: remote logout, logout-all, account deletion, refresh', async () => {
  const [A, B] = await pair('revoke');
  await waitHealthy(A);
  const lines = [];
  const warm = async (c) => {
    h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
    h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200); // from the cache
  };
  const check = async (what, token, code) => {
    assert.ok(await healthy(A), 'A is healthy: the refusal comes from a notification, not a store read');
    const before = await metrics(A);
    return { what, token, code, before };
  };
  const expectRefusal = async ({ what, token, code, before }, answeredAt) => {
    const { res, ms, tries } = await untilRefused(A.url, token, h.T(1000));
    const since = performance.now() - answeredAt;
    h.expectError(res, 401, code);
    const after = await metrics(A);
    lines.push(`${what}: refused on A ${since.toFixed(1)} ms after B's answer (${tries} tr${tries === 1 ? 'y' : 'ies'}, ` +
      `${(after.reads('unhealthy') - before.reads('unhealthy'))} unhealthy reads)`);
    assert.ok(since < 50 * h.SCALE, `${what}: refused after ${since} ms`);
  };
  // Remote logout.
  const p1 = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
  const c1 = await h.linkCompanionApi(B.url, p1);
  await warm(c1);
  let chk = await check('remote logout', c1.token, 'session_ended');
  h.expectStatus(await p1.del(`/v1/devices/${c1.deviceId}`), 200);
  await expectRefusal(chk, performance.now());
  // Logout-all (a batched "ends").
  const p2 = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
  const c2 = [await h.linkCompanionApi(B.url, p2), await h.linkCompanionApi(B.url, p2)];
  for (const c of c2) await warm(c);
  chk = await check('logout-all', c2[1].token, 'session_ended');
  h.expectStatus(await p2.post('/v1/devices/logout-all', {}), 200);
  await expectRefusal(chk, performance.now());
  h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: c2[0].token }), 401, 'session_ended');
  // Account deletion (the rows are gone).
  const p3 = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
  const c3 = await h.linkCompanionApi(B.url, p3);
  await warm(c3);
  await warm(p3);
  chk = await check('account deletion', c3.token, 'unauthenticated');
  h.expectStatus(await p3.raw('DELETE', '/v1/account', { body: {} }), 200);
  await expectRefusal(chk, performance.now());
  h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: p3.token }), 401, 'unauthenticated');
  // Refresh on B: the old credential stops working on A as on B; the new one works on A.
  const p4 = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
  const c4 = await h.linkCompanionApi(B.url, p4);
  await warm(c4);
  const old = c4.token;
  chk = await check('refresh', old, 'unauthenticated');
  h.expectStatus(await c4.refresh(), 200);
  const answered = performance.now();
  h.expectError(await h.api(B.url, 'GET', '/v1/session', { token: old }), 401, 'unauthenticated');
  await expectRefusal(chk, answered);
  h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c4.token }), 200);
  for (const l of lines) console.log(l);
});

test("a node whose LISTEN connection is cut refuses a credential revoked meanwhile (fail closed), and trusts its cache again once it hears", async () => {
  let proxy;
  const [A, B] = await pair('cut', async (db) => (proxy = await pgProxy(db)).url);
  try {
    const phone = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
    const gone = await h.linkCompanionApi(B.url, phone);
    const stays = await h.linkCompanionApi(B.url, phone);
    await waitHealthy(A);
    for (const c of [gone, stays]) h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
    // A goes deaf: its listener's backend is terminated and reconnecting is refused.
    proxy.refuse();
    assert.equal(terminateListener(A), '1', "A's listener backend, found by its application_name");
    await h.pollUntil(() => /lost the PostgreSQL LISTEN connection/.test(A.stderr()), { timeout: h.T(3000), what: 'A to lose LISTEN' });
    assert.equal((await metrics(A)).healthy, 0, 'unhealthy at once, not after the horizon');
    // Revoked on B while A cannot hear it: A refuses it on the very next request.
    h.expectStatus(await phone.del(`/v1/devices/${gone.deviceId}`), 200);
    h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: gone.token }), 401, 'session_ended');
    // Unhealthy, every check reads the store.
    const m0 = await metrics(A);
    for (let i = 0; i < 20; i++) h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: stays.token }), 200);
    const m1 = await metrics(A);
    console.log(`20 checks on a deaf node: +${m1.reads('unhealthy') - m0.reads('unhealthy')} unhealthy store reads`);
    assert.equal(m1.reads('unhealthy') - m0.reads('unhealthy'), 20);
    assert.match(A.stderr(), /LISTEN failed/, 'A stayed deaf meanwhile');
    // A hears again: it resynchronises, then trusts its cache again.
    proxy.restore();
    await waitHealthy(A);
    h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: stays.token }), 200);
    const m2 = await metrics(A);
    for (let i = 0; i < 20; i++) h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: stays.token }), 200);
    const m3 = await metrics(A);
    assert.equal(m3.reads('unhealthy') - m2.reads('unhealthy'), 0);
    h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: gone.token }), 401, 'session_ended');
  } finally {
    proxy?.close();
  }
});

test('a LISTEN connection gone silent (half-open): the node stops trusting its cache within the health horizon', async () => {
  let proxy;
  const [A, B] = await pair('silent', async (db) => (proxy = await pgProxy(db)).url);
  try {
    const phone = await h.registerPrimary(B.url, h.uniqueHandle('mc'));
    const c = await h.linkCompanionApi(B.url, phone);
    await waitHealthy(A);
    h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
    // Nothing closes, nothing answers: only the missing heartbeats tell.
    proxy.freeze();
    const t = h.stopwatch();
    await h.pollUntil(async () => !(await healthy(A)), { timeout: h.T(5000), interval: 20, what: 'A to be unhealthy' });
    const after = t();
    console.log(`a silent LISTEN connection: the cache distrusted ${after.toFixed(0)} ms after it went silent`);
    assert.ok(after <= HEALTHY_MS + 100 * h.SCALE, `unhealthy after ${after} ms`);
    h.expectStatus(await phone.del(`/v1/devices/${c.deviceId}`), 200);
    h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 401, 'session_ended');
    proxy.restore();
    await waitHealthy(A);
    h.expectError(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 401, 'session_ended');
  } finally {
    proxy?.close();
  }
});
