// PostgreSQL calls off the event loop (issue 13, part 5): a request whose
// store call waits runs on a fiber, its call on a store worker thread, and
// the loop goes on serving everyone else. The wait is made real: a second
// connection holds an exclusive lock on the accounts table, so a registration
// blocks inside PostgreSQL until the test lets it go. Before, the one loop
// thread sat in libpq for as long, and no other request was answered.
// Needs the PostgreSQL fixture (tests/tools/pg_start.sh), as integration.multinode.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as h from '../lib/harness.js';
import { PgNodes } from '../lib/pgnodes.js';

const pg = new PgNodes('so');

before(() => pg.open());
after(() => pg.stopAll());

/** A psql session holding LOCK TABLE accounts until release() (which commits). */
async function lockAccounts(db) {
  const p = spawn('psql', [db, '-qAtX', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const locked = new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => { out += d; if (out.includes('locked')) resolve(); });
    p.on('exit', (code) => reject(new Error(`psql exited (${code}) before taking the lock: ${err}`)));
  });
  p.stdin.write('BEGIN;\nLOCK TABLE accounts IN ACCESS EXCLUSIVE MODE;\n\\echo locked\n');
  await h.withTimeout(locked, h.T(10000), 'psql to lock the accounts table');
  const exited = new Promise((resolve) => p.on('exit', resolve));
  return {
    async release() {
      p.stdin.end('COMMIT;\n');
      await h.withTimeout(exited, h.T(10000), 'psql to commit and exit');
    },
  };
}

/** Linkward's store connections waiting for a lock right now. */
function lockWaiters() {
  return Number(pg.psql(
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'linkward' AND wait_event_type = 'Lock'"));
}

async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

test('a store call that waits in PostgreSQL does not stop the loop: others are answered meanwhile', async () => {
  const [A] = await pg.cluster(1, 'wait');
  const alice = await h.registerPrimary(A.url, h.uniqueHandle('so'));
  await alice.session(); // renders and caches alice's view: her next check needs no store
  const waits0 = await metric(A, 'linkward_fiber_waits_total');
  assert.ok(waits0 > 0, 'requests on PostgreSQL wait on fibers');

  const lock = await lockAccounts(dbOf(A));
  let blocked;
  try {
    blocked = h.api(A.url, 'POST', '/v1/accounts',
      { body: { handle: h.uniqueHandle('so'), public_key: h.newDeviceKey().pubB64 } });
    await h.pollUntil(() => lockWaiters() >= 1, { timeout: h.T(10000), what: 'the registration to wait for the lock' });

    // The registration is inside PostgreSQL now. The loop still answers:
    const t = h.stopwatch();
    h.expectStatus(await h.api(A.url, 'GET', '/v1/server', { timeout: 5000 }), 200);
    h.expectStatus(await alice.raw('GET', '/v1/session', { timeout: 5000 }), 200);
    const ms = t();
    console.log(`two requests answered in ${ms} ms while a registration waited for a lock`);
    assert.equal(lockWaiters(), 1, 'the registration still waits: the answers did not wait for it');
  } finally {
    await lock.release();
  }
  const j = h.expectStatus(await blocked, 201);
  assert.ok(j.token, 'the registration completes once the lock is gone');
});

test('a client that leaves while its request waits in PostgreSQL: nothing breaks, nothing is lost', async () => {
  const [A] = await pg.cluster(1, 'leave');
  const alice = await h.registerPrimary(A.url, h.uniqueHandle('so'));
  const lock = await lockAccounts(dbOf(A));
  const handle = h.uniqueHandle('so');
  const ac = new AbortController();
  let gone;
  try {
    gone = fetch(`${A.url}/v1/accounts`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ handle, public_key: h.newDeviceKey().pubB64 }),
    }).catch((e) => e);
    await h.pollUntil(() => lockWaiters() >= 1, { timeout: h.T(10000), what: 'the registration to wait for the lock' });
    ac.abort(); // the client closes its connection; h2o frees the request
    assert.equal((await gone).name, 'AbortError');
    // A request on a new connection is served while the first one still waits.
    h.expectStatus(await h.api(A.url, 'GET', '/v1/server', { timeout: 5000 }), 200);
  } finally {
    await lock.release();
  }
  // The abandoned registration finished on its own (its answer had nowhere to
  // go): the handle is taken, and the server serves on.
  await h.pollUntil(() => lockWaiters() === 0, { timeout: h.T(10000), what: 'the lock waiters to finish' });
  const again = await h.api(A.url, 'POST', '/v1/accounts',
    { body: { handle, public_key: h.newDeviceKey().pubB64 } });
  h.expectError(again, 409, 'handle_taken');
  h.expectStatus(await alice.raw('GET', '/v1/devices'), 200);
});

test("the steps after a job off the loop (a link's signatures, a PIN check) go on on the request's fiber", async () => {
  const [A] = await pg.cluster(1, 'jobs');
  const phone = await h.registerPrimary(A.url, h.uniqueHandle('so'));
  h.expectStatus(await phone.post('/v1/pin', { new_pin: '246810' }), 200); // an Argon2id job, then the store
  const waits0 = await metric(A, 'linkward_fiber_waits_total');
  const onLoop0 = await metric(A, 'linkward_store_waits_on_loop_total');
  // A link: creation (QR drawn by the crypto worker), approval (its signature
  // verified there, then the PIN by the PIN workers), completion (verified
  // there too); each continuation reads and writes the store.
  const req = await h.createLinkRequest(A.url);
  h.expectStatus(await h.scan(phone, req.payload), 200);
  h.expectError(await h.approve(phone, req.id, req.key.pub, { pin: '000000' }), 403, 'wrong_pin');
  h.expectStatus(await h.approve(phone, req.id, req.key.pub, { pin: '246810' }), 200);
  const c = h.companionFrom(req, h.expectStatus(await h.complete(req), 201));
  h.expectStatus(await c.get('/v1/session'), 200);
  const devices = await phone.devices();
  assert.equal(devices.length, 2, 'the companion is linked');
  const waits1 = await metric(A, 'linkward_fiber_waits_total');
  console.log(`a PIN set and a link with a wrong and a right PIN: ${waits1 - waits0} waits off the loop`);
  assert.ok(waits1 - waits0 >= 10, 'the continuations waited on fibers');
  const onLoop1 = await metric(A, 'linkward_store_waits_on_loop_total');
  assert.equal(onLoop1 - onLoop0, 0, 'no store call of the whole flow waited on the loop itself');
  // The wrong PIN was counted (the continuation of the PIN job ran): one failure alert.
  const alerts = await phone.alerts();
  assert.ok(alerts.some((a) => a.kind === 'pin.failed'), 'pin.failed raised');
  // Deleting the account with the PIN: a PIN job whose continuation ends every session.
  h.expectStatus(await phone.raw('DELETE', '/v1/account', { body: { pin: '246810' } }), 200);
  h.expectError(await c.raw('GET', '/v1/session'), 401, 'unauthenticated');
});

test('what another node tells (an end, with a last-active time to write) is applied on a fiber, in order', async () => {
  const [A, B] = await pg.cluster(2, 'relay');
  await h.pollUntil(async () => (await metric(A, 'linkward_relay_healthy')) === 1,
    { timeout: h.T(5000), what: 'A to be healthy' });
  const phone = await h.registerPrimary(B.url, h.uniqueHandle('so'));
  const c = await h.linkCompanionApi(B.url, phone);
  // Used on A: cached there, with a last-active time not written yet.
  h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
  h.expectStatus(await h.api(A.url, 'GET', '/v1/session', { token: c.token }), 200);
  const onLoop0 = await metric(A, 'linkward_store_waits_on_loop_total');
  h.expectStatus(await phone.del(`/v1/devices/${c.deviceId}`), 200);
  await h.pollUntil(async () => (await h.api(A.url, 'GET', '/v1/session', { token: c.token })).status === 401,
    { timeout: h.T(5000), what: 'A to refuse the ended session' });
  const onLoop1 = await metric(A, 'linkward_store_waits_on_loop_total');
  assert.equal(onLoop1 - onLoop0, 0, 'A applied the end (and wrote the last-active time) off the loop');
});

/** The --db URL a node was started with. */
function dbOf(server) {
  const args = server.args ?? [];
  const i = args.indexOf('--db');
  assert.ok(i >= 0, 'the node was started with --db');
  return args[i + 1];
}
