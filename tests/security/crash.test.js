// The kill loop (issue 5, "Atomicity"; PRODUCT §8 "every multi-step change in
// one transaction"): linking, registration, logout-all, remote logout, use
// and refresh run against the server, which is killed with SIGKILL at a random
// moment and started again on the same data directory, round after round.
// After each restart the store must be whole:
//   - read-only SQL on the database file (sqlite3 CLI): no session half
//     written, every companion born of a completed link request and every
//     completed request with its session, no active session without its
//     credential, every logout-all all-or-none, no link request in an
//     impossible state, one active primary per account, integrity_check ok;
//   - through the API: every session whose completion was answered before the
//     kill still authenticates, every end that was answered is still an end,
//     steps whose answer the kill swallowed landed entirely or not at all, and
//     what `linkward admin stats` and GET /v1/devices say matches the file.
// The seed of the random choices is printed (LW_KILL_SEED replays the choices;
// the interleaving of the traffic with the kill is up to the machine).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import * as s from './lib.js';

const { h } = s;
const run = promisify(execFile);

const ROUNDS = Number(process.env.LW_KILL_ROUNDS || 15);
const MIN_ROUNDS = 5;
const BUDGET_MS = 25000; // soft, not scaled: no new round after this (at least MIN_ROUNDS run), so slow builds do fewer rounds
const SEED = Number(process.env.LW_KILL_SEED || (Date.now() % 2 ** 31));
const rnd = s.prng(SEED);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const between = (a, b) => a + rnd() * (b - a);

let server;
after(async () => {
  await server?.stop({ signal: 'SIGKILL' });
});

// ---------------------------------------------------------------------------
// The store, read-only

async function sql(dbFile, query) {
  const { stdout } = await run('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 5000', dbFile, query],
    { timeout: h.T(15000), maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim() ? JSON.parse(stdout) : [];
}

const END_REASONS = "('logout','remote_logout','logout_all','inactive','primary_inactive','max_age','token_theft','account_reset','admin_logout','account_deleted')";

/** Rows {kind, detail}, one per broken invariant; none when the store is whole. */
const INVARIANTS = `
SELECT 'companion without a completed link request' AS kind, s.id AS detail FROM sessions s
  WHERE s.role = 'companion' AND NOT EXISTS (SELECT 1 FROM link_requests r
    WHERE r.device_id = s.id AND r.state = 'completed' AND r.account_id = s.account_id
      AND r.public_key = s.public_key AND r.account_sig = s.account_sig)
UNION ALL SELECT 'completed link request without its session', r.id FROM link_requests r
  WHERE r.state = 'completed' AND NOT EXISTS (SELECT 1 FROM sessions s
    WHERE s.id = r.device_id AND s.role = 'companion' AND s.account_id = r.account_id)
UNION ALL SELECT 'two requests name one device', device_id FROM link_requests
  WHERE device_id <> '' GROUP BY device_id HAVING count(*) > 1
UNION ALL SELECT 'unfinished request names a device', id FROM link_requests
  WHERE state <> 'completed' AND device_id <> ''
UNION ALL SELECT 'pending request with an owner', id FROM link_requests
  WHERE state = 'pending' AND (account_id <> '' OR scanned_by <> '')
UNION ALL SELECT 'pending request without ref or code', id FROM link_requests
  WHERE state = 'pending' AND (code_hash IS NULL OR ref_hash IS NULL)
UNION ALL SELECT 'answered request without its scanner', id FROM link_requests
  WHERE state IN ('scanned', 'approved', 'completed', 'denied') AND (account_id = '' OR scanned_by = '')
UNION ALL SELECT 'request scanned by a device that is not the primary of its account', r.id FROM link_requests r
  WHERE r.scanned_by <> '' AND NOT EXISTS (SELECT 1 FROM sessions p
    WHERE p.id = r.scanned_by AND p.role = 'primary' AND p.account_id = r.account_id)
UNION ALL SELECT 'approved request without an account signature', id FROM link_requests
  WHERE state IN ('approved', 'completed') AND account_sig = zeroblob(64)
UNION ALL SELECT 'active session without its credential', id FROM sessions
  WHERE state = 'active' AND (length(cred_selector) <> 22 OR cred_hash = zeroblob(32) OR cred_expires_at <= 0
    OR challenge = zeroblob(32) OR public_key = zeroblob(32) OR linked_at <= 0)
UNION ALL SELECT 'companion without an account signature', id FROM sessions
  WHERE role = 'companion' AND account_sig = zeroblob(64)
UNION ALL SELECT 'active session marked ended', id FROM sessions
  WHERE state = 'active' AND (ended_at <> 0 OR end_reason <> '')
UNION ALL SELECT 'ended session without time or reason', id FROM sessions
  WHERE state = 'ended' AND (ended_at <= 0 OR end_reason NOT IN ${END_REASONS})
UNION ALL SELECT 'two active sessions share a selector', cred_selector FROM sessions
  WHERE state = 'active' GROUP BY cred_selector HAVING count(*) > 1
UNION ALL SELECT 'account without exactly one active primary', a.id FROM accounts a
  WHERE (SELECT count(*) FROM sessions p WHERE p.account_id = a.id AND p.role = 'primary' AND p.state = 'active') <> 1
UNION ALL SELECT 'logout-all left a companion linked before it active',
    c.id || ' (account ' || c.account_id || ', logout-all at ' || la.t || ')'
  FROM (SELECT DISTINCT account_id, ended_at AS t FROM sessions WHERE end_reason = 'logout_all') la
  JOIN sessions c ON c.account_id = la.account_id AND c.role = 'companion'
  WHERE c.linked_at < la.t AND (c.state = 'active' OR c.ended_at > la.t)
`;

const COUNTS = `SELECT
  (SELECT count(*) FROM accounts) AS accounts,
  (SELECT count(*) FROM sessions WHERE state = 'active') AS sessions_active,
  (SELECT count(*) FROM sessions WHERE state = 'ended') AS sessions_ended,
  (SELECT count(*) FROM link_requests WHERE state IN ('pending', 'scanned', 'approved')) AS link_requests_pending,
  (SELECT count(*) FROM alerts) AS alerts`;

// ---------------------------------------------------------------------------
// What the clients know: only what the server answered counts as done.

const model = {
  accounts: [], // Device (primary), confirmed registered
  devices: new Map(), // id -> {dev, account, state: 'active'|'ended'|'lost', reason, uncertainEnd, refreshInFlight}
  requests: [], // {req, account, stage, inflight}
  // Ends answered for devices whose own link answer had not been read yet
  // (the two answers raced in the client): id -> reason.
  endedEarly: new Map(),
  // Accounts with a logout-all sent and not answered yet: a device whose link
  // is answered meanwhile may or may not be among those it ends.
  logoutAllInFlight: new Set(),
};

/** A companion whose completion was answered. */
function addDevice(dev, account) {
  const early = model.endedEarly.get(dev.deviceId);
  const uncertainEnd = model.logoutAllInFlight.has(account.accountId) ? 'logout_all' : null;
  const d = early ? { dev, account, state: 'ended', reason: early }
    : { dev, account, state: 'active', uncertainEnd };
  d.trail = [];
  model.devices.set(dev.deviceId, d);
  trace(d, `linked (${early ? `ended early: ${early}` : 'active'}${uncertainEnd ? ', logout-all in flight' : ''})`);
}

// What each device saw, for the message of a failed check: a failure of this
// test depends on an interleaving that a seed alone does not replay.
let roundNo = 0;
const serverLogs = [];
const selectorOf = (token) => token.slice(4).split('.')[0];
function trace(d, what) {
  d.trail?.push(`round ${roundNo} +${elapsedMs().toFixed(0)} ms: ${what} [holds ${d.dev ? selectorOf(d.dev.token) : '-'}]`);
}
const t0 = performance.now();
const elapsedMs = () => performance.now() - t0;

/** The device's trail and the servers' log lines that name it. */
function story(id, d) {
  const lines = serverLogs.join('').split('\n').filter((l) => l.includes(id.slice(0, 8)));
  return `\n  client trail:\n    ${(d.trail || []).join('\n    ')}\n  server log:\n    ${lines.join('\n    ')}`;
}

/** A request cut by the kill: fetch fails, or the answer stops half-way. */
const isNetworkError = (e) => e?.name === 'TypeError' && /^(fetch failed|terminated)$/.test(e.message);

/** Runs a worker; resolves with its error, or null when it ended by the kill. */
function worker(fn) {
  return fn().then(() => null, (e) => (isNetworkError(e) ? null : e));
}

function activeOf(account) {
  return [...model.devices.values()].filter((d) => d.account === account && d.state === 'active' && !d.uncertainEnd);
}

/** create -> scan -> approve -> complete, recording each answered step. */
async function linker(stop, account) {
  while (!stop.flag) {
    const rec = { req: null, account, stage: 'creating', inflight: null };
    rec.req = await h.createLinkRequest(server.url);
    rec.stage = 'pending';
    model.requests.push(rec);
    if (rnd() < 0.1 || stop.flag) continue; // left pending
    rec.inflight = 'scan';
    h.expectStatus(await h.scan(account, rec.req.payload), 200);
    rec.stage = 'scanned';
    rec.inflight = null;
    if (rnd() < 0.1 || stop.flag) continue; // left scanned
    rec.inflight = 'approve';
    h.expectStatus(await h.approve(account, rec.req.id, rec.req.key.pub), 200);
    rec.stage = 'approved';
    rec.inflight = null;
    if (rnd() < 0.15 || stop.flag) continue; // left approved: completed after the restart
    rec.inflight = 'complete';
    const c = await h.complete(rec.req);
    const j = h.expectStatus(c, 201);
    rec.stage = 'completed';
    rec.inflight = null;
    rec.deviceId = j.device_id;
    addDevice(h.companionFrom(rec.req, j), account);
  }
}

/** logout-all and remote logouts on random accounts. */
async function ender(stop, accounts) {
  while (!stop.flag) {
    await h.tick(between(5, 40));
    if (stop.flag) break;
    const account = pick(accounts);
    const before = activeOf(account);
    if (rnd() < 0.7) {
      for (const d of before) {
        d.uncertainEnd = 'logout_all';
        trace(d, 'logout-all sent');
      }
      model.logoutAllInFlight.add(account.accountId);
      const r = await account.raw('POST', '/v1/devices/logout-all', { body: {} });
      const j = h.expectStatus(r, 200);
      model.logoutAllInFlight.delete(account.accountId);
      for (const d of before) {
        assert.ok(j.device_ids.includes(d.dev.deviceId),
          `logout-all answered without ${d.dev.deviceId}, whose link was answered before it was sent: ${h.show(r)}`);
      }
      for (const id of j.device_ids) {
        const d = model.devices.get(id);
        if (!d) model.endedEarly.set(id, 'logout_all');
        // Only what the clients hold as active: a device whose credential was
        // lost with a refresh answer, or whose end was checked, stays as it is.
        else if (d.state === 'active') {
          Object.assign(d, { state: 'ended', reason: 'logout_all', uncertainEnd: null });
          trace(d, 'logout-all answered: ended');
        }
      }
      // Whatever it did not end is still active, including devices linked meanwhile.
      for (const d of model.devices.values()) {
        if (d.account === account && d.state === 'active' && d.uncertainEnd === 'logout_all') {
          d.uncertainEnd = null;
          trace(d, 'logout-all answered: not ended');
        }
      }
    } else if (before.length) {
      const d = pick(before);
      d.uncertainEnd = 'remote_logout';
      trace(d, 'remote logout sent');
      const r = await account.raw('DELETE', `/v1/devices/${d.dev.deviceId}`);
      h.expectStatus(r, 200);
      Object.assign(d, { state: 'ended', reason: 'remote_logout', uncertainEnd: null });
      trace(d, 'remote logout answered');
    }
  }
}

/** Companions use their sessions and refresh them with their keys. */
async function user(stop) {
  while (!stop.flag) {
    await h.tick(between(2, 15));
    // A device never refreshes twice at once (a real client serialises its
    // refreshes: a second one would sign a challenge the first replaced).
    const live = [...model.devices.values()].filter((d) => d.state === 'active' && !d.uncertainEnd && !d.refreshInFlight);
    if (!live.length || stop.flag) continue;
    const d = pick(live);
    if (rnd() < 0.4) {
      d.refreshInFlight = { oldToken: d.dev.token };
      trace(d, 'refresh sent');
      const r = await d.dev.refresh();
      trace(d, `refresh answered ${r.status}`);
      if (r.status === 200) d.refreshInFlight = null;
      else {
        // Only a logout racing the refresh may refuse it.
        h.expectError(r, 401, 'session_ended');
        d.refreshInFlight = null;
      }
    } else {
      const r = await d.dev.raw('GET', '/v1/session');
      if (r.status !== 200) h.expectError(r, 401, 'session_ended');
    }
  }
}

/** New accounts now and then. */
async function registrar(stop) {
  while (!stop.flag) {
    await h.tick(between(20, 80));
    if (stop.flag) break;
    model.accounts.push(await h.registerPrimary(server.url, h.uniqueHandle('crash')));
  }
}

// ---------------------------------------------------------------------------
// After a restart

/** GET with one retry on a dead keep-alive connection left over from before the restart. */
async function get(dev, p) {
  try {
    return await dev.raw('GET', p);
  } catch (e) {
    if (!isNetworkError(e)) throw e;
    return dev.raw('GET', p);
  }
}

async function checkStore(round) {
  const db = path.join(server.dataDir, 'linkward.db');
  const integrity = await sql(db, 'PRAGMA integrity_check');
  assert.deepEqual(integrity, [{ integrity_check: 'ok' }], `round ${round}: integrity_check`);
  assert.deepEqual(await sql(db, 'PRAGMA foreign_key_check'), [], `round ${round}: foreign_key_check`);
  const broken = await sql(db, INVARIANTS);
  assert.deepEqual(broken, [], `round ${round} (seed ${SEED}): broken invariants in the store`);

  const sessions = new Map((await sql(db, 'SELECT id, account_id, role, state, end_reason, cred_selector FROM sessions'))
    .map((r) => [r.id, r]));
  const requests = new Map((await sql(db, 'SELECT id, state, device_id FROM link_requests')).map((r) => [r.id, r]));

  // Every device the clients know of.
  for (const [id, d] of model.devices) {
    const row = sessions.get(id);
    if (d.state === 'lost' || d.state === 'checked-ended') continue;
    const sel = d.dev.token.slice(4).split('.')[0];
    // An ended session still answers its last credential with the reason; a
    // credential a refresh replaced (its answer lost in the kill) is unknown.
    const endedAnswer = async () => h.expectError(await get(d.dev, '/v1/session'), 401,
      row.cred_selector === sel ? 'session_ended' : 'unauthenticated');
    assert.ok(row, `round ${round}: device ${id}, answered as linked, is not in the store`);
    if (d.state === 'ended' && !d.uncertainEnd) {
      assert.equal(row.state, 'ended', `round ${round}: device ${id}, answered as ended (${d.reason}), is ${row.state}`);
      assert.equal(row.end_reason, d.reason, `round ${round}: device ${id}`);
      if (!d.refreshInFlight) {
        assert.equal(row.cred_selector, sel, `round ${round}: device ${id} credential (the store has another)${story(id, d)}`);
      }
      await endedAnswer();
      d.state = 'checked-ended';
      continue;
    }
    if (d.uncertainEnd && row.state === 'ended') {
      // The kill swallowed the answer, not the end.
      assert.equal(row.end_reason, d.uncertainEnd, `round ${round}: device ${id}`);
      await endedAnswer();
      Object.assign(d, { state: 'checked-ended', uncertainEnd: null });
      continue;
    }
    d.uncertainEnd = null;
    assert.equal(row.state, 'active', `round ${round}: device ${id}, linked and never ended, is ${row.state} (${row.end_reason})`);
    if (d.refreshInFlight) {
      // The refresh either landed (the old credential is replaced) or did not (it still works).
      const r = await get(d.dev, '/v1/session');
      if (row.cred_selector === sel) h.expectStatus(r, 200);
      else {
        h.expectError(r, 401, 'unauthenticated');
        d.state = 'lost'; // its new credential went down with the answer
        trace(d, 'lost: the refresh landed, its answer did not');
      }
      d.refreshInFlight = null;
      continue;
    }
    assert.equal(row.cred_selector, sel, `round ${round}: device ${id} holds another credential than the store${story(id, d)}`);
    const r = await get(d.dev, '/v1/session');
    assert.equal(h.expectStatus(r, 200).device.id, id, `round ${round}: a session committed before the kill`);
  }

  // Every request the clients know of: the answered steps happened, the
  // swallowed one happened entirely or not at all.
  const next = { pending: 'scanned', scanned: 'approved', approved: 'completed' };
  for (const rec of model.requests) {
    if (rec.stage === 'creating' || rec.checkedFinal) continue;
    const row = requests.get(rec.req.id);
    assert.ok(row, `round ${round}: link request ${rec.req.id} (${rec.stage}) is gone`);
    const allowed = rec.inflight ? [rec.stage, next[rec.stage]] : [rec.stage];
    assert.ok(allowed.includes(row.state),
      `round ${round}: request ${rec.req.id} answered as ${rec.stage}${rec.inflight ? ` (${rec.inflight} in flight)` : ''} is ${row.state}`);
    const seen = await h.api(server.url, 'GET', `/v1/link-requests/${rec.req.id}`, { token: rec.req.token });
    assert.equal(h.expectStatus(seen, 200).state, row.state, `round ${round}: the API and the store disagree`);
    if (row.state === 'completed' && rec.stage !== 'completed') {
      // Completed, but the credential went down with the answer.
      model.devices.set(row.device_id, { state: 'lost', account: rec.account });
    }
    rec.stage = row.state;
    rec.inflight = null;
    if (row.state === 'completed') rec.checkedFinal = true;
  }

  // The counters of the control socket and each account's device list match the file.
  const counts = (await sql(db, COUNTS))[0];
  const stats = await h.adminStats(server);
  for (const k of Object.keys(counts)) assert.equal(stats[k], counts[k], `round ${round}: admin stats ${k}`);
  for (const p of model.accounts) {
    const listed = h.expectStatus(await get(p, '/v1/devices'), 200).devices.map((d) => d.id).sort();
    const stored = [...sessions.values()].filter((r) => r.account_id === p.accountId && r.state === 'active')
      .map((r) => r.id).sort();
    assert.deepEqual(listed, stored, `round ${round}: GET /v1/devices of ${p.handle}`);
  }
}

/** Requests the kill left half-way go on after the restart: what was answered holds. */
async function carryOn(round) {
  for (const rec of model.requests) {
    if (rec.stage === 'creating' || rec.req.carried) continue;
    if (rec.stage === 'scanned' && rnd() < 0.5) {
      h.expectStatus(await h.approve(rec.account, rec.req.id, rec.req.key.pub), 200);
      rec.stage = 'approved';
    }
    if (rec.stage === 'approved') {
      const j = h.expectStatus(await h.complete(rec.req), 201);
      rec.stage = 'completed';
      rec.checkedFinal = true;
      addDevice(h.companionFrom(rec.req, j), rec.account);
    }
    rec.req.carried = true;
  }
}

test('(self-check) the invariants notice half-linked devices, partial logout-alls, missing credentials and impossible states', async () => {
  const srv = await h.startServer({ args: ['--max-companions', '10'] });
  let copy;
  try {
    const p = await h.registerPrimary(srv.url, h.uniqueHandle('self'));
    const out = [];
    for (let i = 0; i < 3; i++) out.push(await h.linkCompanionApi(srv.url, p));
    h.expectStatus(await p.post('/v1/devices/logout-all', {}), 200);
    const live = await h.linkCompanionApi(srv.url, p);
    const scanned = await h.createLinkRequest(srv.url);
    h.expectStatus(await h.scan(p, scanned.payload), 200);
    assert.deepEqual(await sql(path.join(srv.dataDir, 'linkward.db'), INVARIANTS), [], 'a sound store passes');
    copy = path.join(h.tempDir('lw-self-'), 'copy.db');
    await run('sqlite3', ['-readonly', path.join(srv.dataDir, 'linkward.db'), `.backup '${copy}'`], { timeout: h.T(15000) });
    await run('sqlite3', [copy, `
      UPDATE link_requests SET state = 'approved', device_id = '' WHERE device_id = '${live.deviceId}';
      DELETE FROM sessions WHERE id = '${out[0].deviceId}';
      UPDATE sessions SET state = 'active', ended_at = 0, end_reason = '' WHERE id = '${out[1].deviceId}';
      UPDATE sessions SET cred_hash = zeroblob(32) WHERE id = '${live.deviceId}';
      UPDATE link_requests SET state = 'pending' WHERE id = '${scanned.id}';
      UPDATE sessions SET state = 'ended', ended_at = 1, end_reason = 'logout' WHERE role = 'primary';`], { timeout: h.T(15000) });
  } finally {
    await srv.stop();
  }
  const kinds = new Set((await sql(copy, INVARIANTS)).map((r) => r.kind));
  for (const k of ['companion without a completed link request', 'completed link request without its session',
    'logout-all left a companion linked before it active', 'active session without its credential',
    'pending request with an owner', 'account without exactly one active primary']) {
    assert.ok(kinds.has(k), `the invariants missed: ${k} (found: ${[...kinds].join('; ')})`);
  }
});

test('SIGKILL at random moments during linking and logout-all loses nothing committed and leaves nothing half-done', async () => {
  console.log(`# kill loop: seed ${SEED} (LW_KILL_SEED=${SEED} replays the choices), up to ${ROUNDS} rounds`);
  const dataDir = h.tempDir('lw-crash-');
  const args = ['--max-companions', '1000', '--log-level', 'debug'];
  server = await h.startServer({ dataDir, args });
  const port = server.port;
  for (let i = 0; i < 3; i++) model.accounts.push(await h.registerPrimary(server.url, h.uniqueHandle('crash')));
  const linkers = model.accounts.slice(0, 3);
  const elapsed = h.stopwatch();
  let rounds = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    roundNo = round;
    if (round > MIN_ROUNDS && elapsed() > BUDGET_MS) {
      console.log(`# kill loop: time budget spent after ${rounds} rounds`);
      break;
    }
    const stop = { flag: false };
    const before = { devices: model.devices.size, requests: model.requests.length, accounts: model.accounts.length };
    const workers = [
      ...linkers.map((a) => worker(() => linker(stop, a))),
      worker(() => ender(stop, linkers)),
      worker(() => user(stop)),
      worker(() => registrar(stop)),
    ];
    const delay = h.T(between(30, 400));
    await h.tick(delay); // pacing: how long the traffic runs before the kill
    const killed = server.stop({ signal: 'SIGKILL' });
    stop.flag = true;
    const failures = (await h.withTimeout(Promise.all(workers), h.T(10000), 'the traffic workers to stop after the kill'))
      .filter(Boolean);
    const exit = await killed;
    serverLogs.push(server.stderr());
    if (failures.length) throw failures[0];
    assert.equal(exit.signal, 'SIGKILL', `round ${round}: the server was killed (${JSON.stringify(exit)})`);

    server = await h.startServer({ dataDir, args, port });
    console.log(`# round ${round}: killed after ${delay.toFixed(0)} ms; ` +
      `+${model.requests.length - before.requests} link requests, +${model.devices.size - before.devices} devices, ` +
      `+${model.accounts.length - before.accounts} accounts; in flight: ` +
      `${model.requests.filter((r) => r.inflight).map((r) => r.inflight).join(', ') || 'no link step'}`);
    await checkStore(round);
    model.logoutAllInFlight.clear(); // what the kill left in flight is settled by now
    await carryOn(round);
    rounds = round;
  }
  assert.ok(rounds >= MIN_ROUNDS, `only ${rounds} rounds ran`);
  const counts = (await sql(path.join(dataDir, 'linkward.db'), COUNTS))[0];
  console.log(`# kill loop: ${rounds} rounds in ${(elapsed() / 1000).toFixed(1)} s; store: ${JSON.stringify(counts)}`);
  await server.stop();
  server = null;
});
