// Several stateless nodes on one PostgreSQL (PRODUCT §10, issue 7): events and
// revocations cross nodes through LISTEN/NOTIFY, a node that dies loses no
// session. Needs the PostgreSQL fixture (tests/tools/pg_start.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as h from '../lib/harness.js';

const PG_FILE = process.env.LINKWARD_TEST_PG;
let base;     // the server's URL
let nodes = [];

/** A fresh schema on the test server, reached through search_path. */
function freshDb(name) {
  const schema = `mn_${name}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  execFileSync('psql', [base, '-qc', `CREATE SCHEMA ${schema}`], { stdio: 'pipe' });
  return `${base}&options=-csearch_path%3D${schema}`;
}

/** N nodes on one database; they share the server key, as an operator would copy it. */
async function cluster(n, name, args = []) {
  const db = freshDb(name);
  const first = await h.startServer({ args: ['--db', db, ...args] });
  const started = [first];
  for (let i = 1; i < n; i++) {
    const dir = h.tempDir('lw-node-');
    fs.copyFileSync(path.join(first.dataDir, 'server.key'), path.join(dir, 'server.key'));
    fs.chmodSync(path.join(dir, 'server.key'), 0o600);
    started.push(await h.startServer({ dataDir: dir, args: ['--db', db, '--public-origin', first.url, ...args] }));
  }
  // Every node names the first node's origin in its QR codes: one site behind a load balancer.
  nodes.push(...started);
  return started;
}

before(() => {
  assert.ok(PG_FILE, 'LINKWARD_TEST_PG is set by the postgres CTest fixture');
  base = fs.readFileSync(PG_FILE, 'utf8').trim();
});

after(async () => {
  for (const s of nodes) await s.stop().catch(() => {});
});

test('a link on node A while the phone talks to node B: each side hears every step', async () => {
  const [A, B] = await cluster(2, 'link');
  const phone = await h.registerPrimary(B.url, h.uniqueHandle('mn'));
  const phoneWs = await h.connectWs(B.url, phone.token);
  await phoneWs.next('hello');
  const req = await h.createLinkRequest(A.url);
  const compWs = await h.connectWs(A.url, req.token);
  try {
    await compWs.next('hello');
    h.expectStatus(await h.scan(phone, req.payload), 200);
    await compWs.next('link.scanned', 3000);
    h.expectStatus(await h.approve(phone, req.id, req.key.pub), 200);
    await compWs.next('link.approved', 3000);
    const c = h.companionFrom(req, h.expectStatus(await h.complete(req), 201));
    const linked = await phoneWs.next('device.linked', 3000);
    assert.equal(linked.device.id, c.deviceId);
    // The companion's credential works on every node.
    h.expectStatus(await h.api(B.url, 'GET', '/v1/session', { token: c.token }), 200);
  } finally {
    await compWs.close();
    await phoneWs.close();
  }
});

test('logout-all on B closes the sockets on A and C within 50 ms; their credentials are refused everywhere at once', async () => {
  const [A, B, C] = await cluster(3, 'logout', ['--max-companions', '10']);
  const phone = await h.registerPrimary(B.url, h.uniqueHandle('mn'));
  const comps = [];
  for (let i = 0; i < 4; i++) comps.push(await h.linkCompanionApi(i % 2 ? C.url : A.url, phone));
  const socks = [];
  for (let i = 0; i < comps.length; i++) {
    const ws = await h.connectWs(i % 2 ? C.url : A.url, comps[i].token);
    await ws.next('hello');
    // Warm each node's cache with the credential before it is revoked elsewhere.
    h.expectStatus(await h.api(i % 2 ? C.url : A.url, 'GET', '/v1/session', { token: comps[i].token }), 200);
    socks.push(ws);
  }
  const r = h.expectStatus(await phone.post('/v1/devices/logout-all', {}), 200);
  const answered = performance.now();
  assert.equal(r.ended, 4);
  // The very next request with a revoked credential is refused on every node.
  for (const n of [A, B, C]) {
    h.expectError(await h.api(n.url, 'GET', '/v1/session', { token: comps[0].token }), 401, 'session_ended');
  }
  const delays = [];
  for (const ws of socks) {
    const ev = await ws.next('session.ended', 2000);
    assert.equal(ev.reason, 'logout_all');
    delays.push(Math.max(0, ws.timeOf(ev) - answered));
  }
  delays.sort((a, b) => a - b);
  console.log(`cross-node logout-all: sockets told ${delays.map((d) => d.toFixed(1)).join(', ')} ms after the answer`);
  assert.ok(delays[delays.length - 1] < 50 * h.SCALE, `slowest socket ${delays[delays.length - 1]} ms`);
});

test('a node killed mid-flow: its devices reconnect to another node without relinking', async () => {
  const [A, B] = await cluster(2, 'kill');
  const phone = await h.registerPrimary(A.url, h.uniqueHandle('mn'));
  const c = await h.linkCompanionApi(A.url, phone);
  const ws = await h.connectWs(A.url, c.token);
  await ws.next('hello');
  await A.stop({ signal: 'SIGKILL' });
  await h.withTimeout(ws.closed, 3000, 'the socket to drop with its node');
  const ws2 = await h.connectWs(B.url, c.token);
  assert.equal((await ws2.next('hello')).device_id, c.deviceId);
  const devices = h.expectStatus(await h.api(B.url, 'GET', '/v1/devices', { token: phone.token }), 200).devices;
  assert.ok(devices.some((d) => d.id === c.deviceId));
  await ws2.close();
});

test('alerts raised on one node reach devices connected to another', async () => {
  const [A, B] = await cluster(2, 'alerts');
  const phone = await h.registerPrimary(A.url, h.uniqueHandle('mn'));
  const c = await h.linkCompanionApi(A.url, phone);
  const ws = await h.connectWs(B.url, c.token);
  await ws.next('hello');
  h.expectStatus(await phone.post('/v1/pin', { new_pin: '112233' }), 200);
  const req = await h.createLinkRequest(A.url);
  h.expectStatus(await h.scan(phone, req.payload), 200);
  h.expectError(await h.approve(phone, req.id, req.key.pub, { pin: '999999' }), 403, 'wrong_pin');
  const ev = await ws.next((e) => e.event === 'alert' && e.alert.kind === 'pin.failed', 3000);
  assert.equal(ev.alert.details.failures, 1);
  await ws.close();
});

test('PostgreSQL restarts during traffic: the nodes recover by themselves, events cross nodes again', async () => {
  // Its own server, so the restart disturbs no other test.
  const dir = h.tempDir('lw-pg-own-');
  const tools = path.join(h.REPO, 'tests', 'tools');
  execFileSync('bash', [path.join(tools, 'pg_start.sh'), dir], { stdio: 'pipe' });
  try {
    const saved = base;
    base = fs.readFileSync(path.join(dir, 'url'), 'utf8').trim();
    const [A, B] = await cluster(2, 'pgrestart');
    base = saved;
    const phone = await h.registerPrimary(A.url, h.uniqueHandle('mn'));
    const c = await h.linkCompanionApi(A.url, phone);
    let ok = 0, failed = 0, stop = false;
    const loop = (async () => {
      for (let i = 0; i < 3000 && !stop; i++) {
        const r = await h.api(i % 2 ? A.url : B.url, 'GET', '/v1/session', { token: c.token }).catch(() => null);
        if (r?.status === 200) ok++; else failed++;
      }
    })();
    await h.pollUntil(() => ok > 10, { timeout: 3000, what: 'traffic' });
    execFileSync('bash', [path.join(tools, 'pg_restart.sh'), dir], { stdio: 'pipe' });
    // Both nodes answer again by themselves...
    const mark = ok;
    await h.pollUntil(() => ok > mark + 20, { timeout: 10000, what: 'requests to succeed again after the restart' });
    stop = true;
    await loop;
    console.log(`during the PostgreSQL restart: ${ok} answered, ${failed} refused or failed`);
    // ...and events cross nodes again (the listeners reconnected).
    const ws = await h.connectWs(B.url, c.token);
    await ws.next('hello');
    await h.pollUntil(async () => {
      h.expectStatus(await h.api(A.url, 'PATCH', `/v1/devices/${c.deviceId}`, { token: phone.token, body: { name: `n${Date.now()}` } }), 200);
      return true;
    }, { timeout: 3000, what: 'a write on A' });
    h.expectStatus(await h.api(A.url, 'DELETE', `/v1/devices/${c.deviceId}`, { token: phone.token }), 200);
    const ended = await ws.next('session.ended', 5000);
    assert.equal(ended.reason, 'remote_logout');
  } finally {
    execFileSync('bash', [path.join(tools, 'pg_stop.sh'), dir], { stdio: 'pipe' });
  }
});

test('a node whose LISTEN connection drops resynchronises: recent alerts are pushed again, revoked sessions stay refused', async () => {
  const [A, B] = await cluster(2, 'deaf');
  const phone = await h.registerPrimary(A.url, h.uniqueHandle('mn'));
  const c = await h.linkCompanionApi(A.url, phone);
  const ws = await h.connectWs(B.url, c.token);
  await ws.next('hello');
  h.expectStatus(await phone.post('/v1/pin', { new_pin: '445566' }), 200);
  const live = await ws.next((e) => e.event === 'alert' && e.alert.kind === 'pin.changed', 3000);
  // Cut every node's LISTEN connection (as a network blip would).
  execFileSync('psql', [base, '-qAtc',
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'LISTEN linkward'"], { stdio: 'pipe' });
  await h.pollUntil(() => /resynchronising/.test(B.stderr()), { timeout: 5000, what: 'node B to resynchronise' });
  // What B may have missed around the cut is pushed again (clients know alerts by id).
  const again = await ws.next((e) => e.event === 'alert' && e.alert.id === live.alert.id, 5000);
  assert.equal(again.alert.kind, 'pin.changed');
  // And events cross again afterwards.
  h.expectStatus(await h.api(A.url, 'DELETE', `/v1/devices/${c.deviceId}`, { token: phone.token }), 200);
  assert.equal((await ws.next('session.ended', 5000)).reason, 'remote_logout');
  h.expectError(await h.api(B.url, 'GET', '/v1/session', { token: c.token }), 401, 'session_ended');
});
