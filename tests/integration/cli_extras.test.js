// The rest of the CLI contract (docs/cli.md): live alerts, --header and
// trusted proxies, settings, the confirmation question, exit codes 1 and 2,
// and output that a hostile device name cannot corrupt.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from '../lib/harness.js';

const servers = [];
async function start(args = []) {
  const s = await h.startServer({ args });
  servers.push(s);
  return s;
}
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

let S;
let phone;
before(async () => {
  S = await start(['--max-companions', '10']);
  phone = new h.PhoneCli(S);
  await phone.register('alice');
});

/** A state of the request as the companion sees it. */
async function requestState(req) {
  return h.expectStatus(await h.api(req.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200).state;
}

describe('live events', () => {
  test('phone alerts --follow prints new devices and alerts as JSON lines', async () => {
    const follow = h.spawnCli(['phone', '--state', phone.state, '--json', 'alerts', '--follow']);
    try {
      // Connected once the server's greeting is printed.
      await follow.waitForLine((o) => typeof o.event === 'string', 5000);
      const { deviceId } = await h.linkCompanionCli(phone, new h.CompanionCli(S));
      const linked = await follow.waitForLine((o) => o.event === 'device.linked', 5000);
      assert.equal(linked.device.id, deviceId);
      const alert = await follow.waitForLine((o) => o.event === 'alert' && o.alert?.kind === 'device.linked', 5000);
      assert.equal(alert.alert.device_id, deviceId);
      // Still following: it only stops when interrupted.
      assert.equal(follow.proc.exitCode, null);
    } finally {
      await follow.kill('SIGTERM');
    }
  });
});

describe('--header and trusted proxies', () => {
  test('with --trusted-proxies, X-Forwarded-For sent through --header is the requester address', async () => {
    const P = await start(['--trusted-proxies', '127.0.0.1/32']);
    const pphone = new h.PhoneCli(P);
    await pphone.register('bob');
    const companion = new h.CompanionCli(P);
    const link = h.spawnCli(['companion', '--server', P.url, '--state', companion.state,
      '--header', 'X-Forwarded-For: 203.0.113.7', '--json', 'link']);
    try {
      const qr = await link.waitForLine('qr');
      const res = await pphone.run(['link', qr.payload, '--yes']);
      assert.equal(res.code, 0, h.describe(res));
      assert.equal(res.lines.find((l) => l.event === 'request').request.ip, '203.0.113.7');
      const done = await link.waitForLine('linked');
      const rec = (await pphone.devices()).find((d) => d.id === done.device_id);
      assert.equal(rec.ip, '203.0.113.7');
    } finally {
      link.kill('SIGKILL');
    }
    // The rightmost address not of a trusted proxy counts; what the client wrote before it does not.
    const primary = await h.registerPrimary(P.url, 'carol');
    const req = await h.createLinkRequest(P.url, { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' } });
    assert.equal(h.expectStatus(await h.scan(primary, req.payload), 200).request.ip, '203.0.113.9');
  });

  test('without trusted proxies, X-Forwarded-For is ignored', async () => {
    const primary = await h.registerPrimary(S.url, 'dave');
    const req = await h.createLinkRequest(S.url, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(h.expectStatus(await h.scan(primary, req.payload), 200).request.ip, '127.0.0.1');
  });
});

describe('phone settings', () => {
  test('phone settings shows and changes the inactivity TTL (7..365 days)', async () => {
    const shown = await phone.run(['settings']);
    assert.equal(shown.code, 0, h.describe(shown));
    assert.equal(typeof shown.json?.inactive_ttl_days, 'number', shown.stdout);
    const set = await phone.run(['settings', '--inactive-ttl', '7']);
    assert.equal(set.code, 0, h.describe(set));
    assert.equal((await phone.whoami()).account.inactive_ttl_days, 7);
    const bad = await phone.run(['settings', '--inactive-ttl', '3']);
    assert.notEqual(bad.code, 0, h.describe(bad));
    assert.equal((await phone.whoami()).account.inactive_ttl_days, 7);
  });
});

describe('confirmation', () => {
  test('without --yes, phone link asks "Link this device? [y/N]"; y links', async () => {
    const req = await h.createLinkRequest(S.url);
    const res = await phone.runText(['link', req.payload], { input: 'y\n' });
    assert.equal(res.code, 0, h.describe(res));
    assert.match(res.stderr + res.stdout, /Link this device\? \[y\/N\]/);
    h.expectStatus(await h.complete(req), 201);
  });

  test('anything but y refuses (exit 3) and the device is not linked', async () => {
    for (const input of ['n\n', '\n']) {
      const req = await h.createLinkRequest(S.url);
      const res = await phone.runText(['link', req.payload], { input });
      assert.equal(res.code, 3, `answer ${JSON.stringify(input)}: ${h.describe(res)}`);
      assert.notEqual(await requestState(req), 'approved');
      h.expectError(await h.complete(req), 409, 'not_pending');
    }
  });

  test('no answer at all (stdin at its end, no terminal) is not a "no": exit 1, nothing sent', async () => {
    const req = await h.createLinkRequest(S.url);
    const res = await phone.runText(['link', req.payload], { input: '' });
    assert.equal(res.code, 1, h.describe(res));
    assert.match(res.stderr, /use --yes to approve or --deny/);
    assert.equal(await requestState(req), 'pending');
  });
});

describe('exit codes', () => {
  test('usage errors exit 1', async () => {
    for (const args of [
      ['phone', '--state', phone.state, 'frobnicate'],
      ['phone', '--state', phone.state, 'link'],
      ['phone', '--state', phone.state, 'logout'],
      ['companion', '--state', phone.state, 'link', '--no-such-option'],
      ['no-such-command'],
    ]) {
      const res = await h.runCli(args);
      assert.equal(res.code, 1, h.describe(res));
      assert.ok(res.stderr.length > 0, `a usage error says why: ${h.describe(res)}`);
    }
  });

  test('an unreachable server exits 2', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    const state = `${h.tempDir()}/phone.json`;
    const res = await h.runCli(['phone', '--server', `http://127.0.0.1:${port}`, '--state', state, '--json',
      'register', '--handle', 'nobody']);
    assert.equal(res.code, 2, h.describe(res));
  });

  test('a server that is not Linkward exits 2', async () => {
    const srv = net.createServer((sock) => {
      sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'));
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const state = `${h.tempDir()}/phone.json`;
      const res = await h.runCli(['phone', '--server', `http://127.0.0.1:${srv.address().port}`, '--state', state,
        '--json', 'register', '--handle', 'nobody']);
      assert.equal(res.code, 2, h.describe(res));
    } finally {
      srv.close();
    }
  });
});

describe('hostile names', () => {
  /**
   * A requester chooses its own name. Either the server refuses names that
   * are not printable text, or the phone CLI must clean them before they
   * reach the terminal. Returns the link request, or null when refused.
   */
  async function requestNamed(client) {
    const key = h.newDeviceKey();
    const r = await h.api(S.url, 'POST', '/v1/link-requests', { body: { public_key: key.pubB64, client } });
    if (r.status === 400) {
      const e = h.expectError(r, 400, 'invalid_request');
      assert.match(e.message, /client\.(name|browser)/, 'the message names the field');
      return null;
    }
    return { url: S.url, key, ...h.expectStatus(r, 201) };
  }

  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f\u202a-\u202e\u2066-\u2069]/;

  for (const [label, client] of [
    ['terminal escapes', { name: 'Chrome\u001b[2J\u001b]0;pwned\u0007 on Windows', browser: 'Chrome\u001b[31m', os: 'Windows' }],
    ['bidi overrides', { name: 'Chrome on \u202eswodniW', browser: 'Chrome', os: 'Windows' }],
  ]) {
    test(`${label} in a requester's name never reach the phone's terminal`, async () => {
      const req = await requestNamed(client);
      if (req === null) return; // refused by the server: nothing can reach the phone
      const res = await phone.runText(['link', req.payload, '--yes']);
      assert.equal(res.code, 0, h.describe(res));
      h.expectStatus(await h.complete(req), 201);
      const list = await phone.runText(['devices']);
      assert.equal(list.code, 0, h.describe(list));
      for (const out of [res.stdout, res.stderr, list.stdout, list.stderr]) {
        assert.ok(!CONTROL.test(out), `control or bidi characters printed: ${JSON.stringify(out.slice(0, 400))}`);
      }
      assert.match(list.stdout, /Chrome/, 'the (cleaned) name is still shown');
    });
  }
});
