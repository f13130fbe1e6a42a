// `linkward admin` over the server's control socket, and invite-only
// registration (docs/cli.md `linkward admin`, `--registration invite`).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

let server;
before(async () => {
  server = await h.startServer({ args: ['--registration', 'invite'] });
});
after(async () => {
  await server?.stop();
});

/** `admin invite --json` -> the code. */
async function newInvite(extra = []) {
  const res = await h.adminCli(server, ['invite', ...extra]);
  assert.equal(res.code, 0, h.describe(res));
  const code = res.json?.code;
  assert.ok(typeof code === 'string' && code.length >= 8, `invite code: ${res.stdout}`);
  if (res.json.expires_at) assert.match(res.json.expires_at, h.RFC3339);
  return code;
}

describe('control socket', () => {
  test('the control socket is in the data directory', () => {
    const st = fs.statSync(server.controlSock);
    assert.ok(st.isSocket(), `${server.controlSock} is a socket`);
  });

  test('admin stats --json reports the store counters', async () => {
    const stats = await h.adminStats(server);
    for (const f of ['accounts', 'sessions_active', 'sessions_ended', 'link_requests_pending', 'alerts']) {
      assert.equal(typeof stats[f], 'number', `stats.${f}: ${JSON.stringify(stats)}`);
    }
  });

  test('stats follow what happens', async () => {
    const before = await h.adminStats(server);
    const primary = await h.registerPrimary(server.url, 'statsy', { invite: await newInvite() });
    await h.createLinkRequest(server.url);
    const c = await h.linkCompanionApi(server.url, primary);
    h.expectStatus(await c.del('/v1/session'), 200);
    const after = await h.adminStats(server);
    assert.equal(after.accounts, before.accounts + 1);
    assert.equal(after.sessions_active, before.sessions_active + 1, 'the primary');
    assert.equal(after.sessions_ended, before.sessions_ended + 1, 'the companion that logged out');
    assert.equal(after.link_requests_pending, before.link_requests_pending + 1, 'the request never scanned');
  });

  test('the control protocol: one JSON object per line each way', async () => {
    const stats = await h.controlRequest(server, { cmd: 'stats' });
    assert.equal(stats.ok, true);
    assert.equal(typeof stats.stats.accounts, 'number');
    const inv = await h.controlRequest(server, { cmd: 'invite', ttl_ms: 60000 });
    assert.equal(inv.ok, true);
    assert.equal(typeof inv.code, 'string');
    assert.match(inv.expires_at, h.RFC3339);
    const exp = Date.parse(inv.expires_at) - Date.now();
    assert.ok(exp > 30000 && exp <= 61000, `expires in ${exp} ms for ttl_ms 60000`);
    const bad = await h.controlRequest(server, { cmd: 'no-such-command' });
    assert.equal(bad.ok, false);
    assert.equal(typeof bad.error.code, 'string');
    assert.equal(typeof bad.error.message, 'string');
    const junk = await h.controlRequest(server, 'this is not json').catch((e) => ({ thrown: e.message }));
    assert.ok(junk.thrown || junk.ok === false, JSON.stringify(junk));
  });

  test('admin purge and backup', async () => {
    const purge = await h.adminCli(server, ['purge']);
    assert.equal(purge.code, 0, h.describe(purge));
    const file = path.join(h.tempDir('lw-backup-'), 'copy.db');
    const backup = await h.adminCli(server, ['backup', file]);
    assert.equal(backup.code, 0, h.describe(backup));
    const head = fs.readFileSync(file).subarray(0, 16).toString('latin1');
    assert.equal(head, 'SQLite format 3\u0000', 'the backup is an SQLite database');
    // The copy holds the accounts: a server started on it, with the server
    // key kept beside the backups (docs/operations.md), knows them. (Without
    // the key it refuses to start: server_key.test.js.)
    const dir = h.tempDir('lw-restored-');
    fs.copyFileSync(file, path.join(dir, 'linkward.db'));
    fs.copyFileSync(path.join(server.dataDir, 'server.key'), path.join(dir, 'server.key'));
    const restored = await h.startServer({ dataDir: dir, args: ['--registration', 'invite'] });
    try {
      const after = await h.adminStats(restored);
      assert.ok(after.accounts >= 1, JSON.stringify(after));
    } finally {
      await restored.stop();
    }
  });

  test('admin without a reachable server exits 2', async () => {
    const res = await h.runCli(['admin', '--control', path.join(h.tempDir(), 'none.sock'), '--json', 'stats']);
    assert.equal(res.code, 2, h.describe(res));
    assert.ok(res.stderr.length > 0, 'says why on stderr');
  });

  test('admin usage errors exit 1', async () => {
    const res = await h.adminCli(server, ['frobnicate']);
    assert.equal(res.code, 1, h.describe(res));
  });
});

describe('invite-only registration', () => {
  test('the server says registration is by invite', async () => {
    const info = h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200);
    assert.equal(info.registration, 'invite');
  });

  test('without an invite: 403 invite_required; the CLI exits 3', async () => {
    const r = await h.api(server.url, 'POST', '/v1/accounts', { body: { handle: 'nobody', public_key: h.newDeviceKey().pubB64 } });
    h.expectError(r, 403, 'invite_required');
    const phone = new h.PhoneCli(server);
    const res = await h.runCli(['phone', '--server', server.url, '--state', phone.state, '--json', 'register', '--handle', 'nobody']);
    assert.equal(res.code, 3, h.describe(res));
    assert.match(h.refusalText(res), /invit/i);
  });

  test('a made-up invite: 403 invalid_invite', async () => {
    const r = await h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle: 'faker', public_key: h.newDeviceKey().pubB64, invite: 'NOT-A-REAL-INVITE' } });
    h.expectError(r, 403, 'invalid_invite');
  });

  test('with an invite the phone registers; the same invite is then used up', async () => {
    const code = await newInvite(['--ttl', '1h']);
    const phone = new h.PhoneCli(server);
    await phone.register('invited', ['--invite', code]);
    assert.equal((await phone.whoami()).account.handle, 'invited');

    const again = await h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle: 'second', public_key: h.newDeviceKey().pubB64, invite: code } });
    h.expectError(again, 403, 'invalid_invite');
    const phone2 = new h.PhoneCli(server);
    const res = await h.runCli(['phone', '--server', server.url, '--state', phone2.state, '--json',
      'register', '--handle', 'second', '--invite', code]);
    assert.equal(res.code, 3, h.describe(res));
  });

  test('a refused registration does not use up the invite', async () => {
    const code = await newInvite();
    // Handle taken: refused before the invite is consumed.
    const taken = await h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle: 'invited', public_key: h.newDeviceKey().pubB64, invite: code } });
    h.expectError(taken, 409, 'handle_taken');
    const ok = await h.registerPrimary(server.url, 'latecomer', { invite: code });
    assert.equal(ok.handle, 'latecomer');
  });

  test('two registrations racing for one invite: exactly one wins', async () => {
    const code = await newInvite();
    const results = await Promise.all(['racer-a', 'racer-b'].map((handle) => h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle, public_key: h.newDeviceKey().pubB64, invite: code } })));
    assert.deepEqual(results.map((r) => r.status).sort(), [201, 403], results.map(h.show).join('\n'));
  });

  test('an expired invite is refused', async () => {
    const code = await newInvite(['--ttl', '300ms']);
    const t = h.stopwatch();
    await h.pollUntil(() => t() > 500, { timeout: 2000, interval: 50, what: 'the invite TTL to pass' });
    const r = await h.api(server.url, 'POST', '/v1/accounts',
      { body: { handle: 'tardy', public_key: h.newDeviceKey().pubB64, invite: code } });
    h.expectError(r, 403, 'invalid_invite');
  });
});
