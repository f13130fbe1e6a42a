// What the device CLIs keep and ask (issue 12, item 13): --cacert is kept in
// the state file; `phone link` with nobody to ask sends nothing; a phone whose
// server was reset is told so, with its state file and how to start over.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const servers = [];
async function start(opts) {
  const s = await h.startServer(opts);
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.stop().catch(() => {});
});

const makeCerts = h.makeTestCerts;

test('--cacert given at register and at the first link is kept: later commands need not repeat it', async () => {
  const c = makeCerts();
  const s = await start({ args: ['--tls-cert', c.cert, '--tls-key', c.key] });
  const dir = h.tempDir('lw-ca-');
  const phone = ['phone', '--state', `${dir}/p.json`, '--json'];
  const reg = await h.runCli(['phone', '--server', s.url, '--cacert', c.ca, '--state', `${dir}/p.json`, '--json',
    'register', '--handle', h.uniqueHandle('ca')]);
  assert.equal(reg.code, 0, h.describe(reg));
  const who = await h.runCli([...phone, 'whoami']);
  assert.equal(who.code, 0, h.describe(who));
  assert.equal(JSON.parse(fs.readFileSync(`${dir}/p.json`, 'utf8')).ca_file, c.ca);

  const link = h.spawnCli(['companion', '--server', s.url, '--cacert', c.ca, '--state', `${dir}/c.json`, '--json', 'link']);
  try {
    const qr = await link.waitForLine('qr');
    const ok = await h.runCli([...phone, 'link', qr.payload, '--yes']);
    assert.equal(ok.code, 0, h.describe(ok));
    await link.waitForLine('linked');
  } finally {
    link.kill('SIGKILL');
  }
  for (const args of [['companion', '--state', `${dir}/c.json`, '--json', 'whoami'], [...phone, 'devices']]) {
    const res = await h.runCli(args);
    assert.equal(res.code, 0, h.describe(res));
  }
  // A --cacert that names no file is refused with its name, before anything is sent.
  const bad = await h.runCli([...phone, '--cacert', `${dir}/nope.pem`, 'whoami']);
  assert.equal(bad.code, 1, h.describe(bad));
  assert.match(bad.stderr, /--cacert .*nope\.pem: No such file/);
});

test('phone link with no terminal and no --yes/--deny refuses and sends nothing; --deny denies', async () => {
  const s = await start();
  const phone = new h.PhoneCli(s);
  await phone.register(h.uniqueHandle('tty'));
  const comp = new h.CompanionCli(s);
  const link = comp.spawnLink();
  try {
    const qr = await link.waitForLine('qr');
    // stdin is at its end (runCli closes it) and there is no terminal.
    for (const target of [[qr.payload], ['--code', qr.code]]) {
      const res = await phone.runText(['link', ...target]);
      assert.equal(res.code, 1, h.describe(res));
      assert.match(res.stderr, /use --yes to approve or --deny/);
    }
    // Nothing was sent: the request is still pending, so another phone may
    // scan it (a scanned one answers already_scanned to any other phone).
    const other = await h.registerPrimary(s.url, h.uniqueHandle('tty'));
    const scanned = h.expectStatus(await h.scan(other, qr.payload), 200);
    h.expectStatus(await h.deny(other, scanned.request.id), 200);
    await link.waitForLine('denied');
  } finally {
    link.kill('SIGKILL');
  }

  const link2 = comp.spawnLink();
  try {
    const qr = await link2.waitForLine('qr');
    const res = await phone.run(['link', '--code', qr.code, '--deny']);
    assert.equal(res.code, 0, h.describe(res));
    assert.ok(res.lines.some((l) => l.event === 'denied'), h.describe(res));
    await link2.waitForLine('denied');
    assert.equal((await link2.waitExit()).code, 3);
  } finally {
    link2.kill('SIGKILL');
  }
  const both = await phone.run(['link', 'lw1:x', '--yes', '--deny']);
  assert.equal(both.code, 1, h.describe(both));
});

test('a server reset (new key, or new database) is named as such, with the state file and how to start over', async () => {
  const s = await start();
  const port = s.port;
  const dir = h.tempDir('lw-reset-');
  const phone = new h.PhoneCli(s, dir);
  const handle = h.uniqueHandle('reset');
  await phone.register(handle);
  const key = fs.readFileSync(path.join(s.dataDir, 'server.key'));

  // 1. A new database with the same key: the server no longer knows this phone.
  await s.stop();
  const sameKey = h.tempDir('lw-data-');
  fs.writeFileSync(path.join(sameKey, 'server.key'), key, { mode: 0o600 });
  const s2 = await start({ dataDir: sameKey, port });
  let req = await h.createLinkRequest(s2.url);
  let res = await phone.runText(['link', '--code', req.code, '--yes']);
  assert.equal(res.code, 3, h.describe(res));
  assert.match(res.stderr, /no longer knows this phone \(its database was reset\)/);
  assert.ok(res.stderr.includes(phone.state), res.stderr);
  assert.match(res.stderr, /--state NEW_FILE/);
  await s2.stop();

  // 2. A new server key (a fresh data directory): the QR code does not verify
  // with the pinned key, and the phone says why instead of only "phishing".
  const s3 = await start({ port });
  req = await h.createLinkRequest(s3.url);
  res = await phone.run(['link', req.payload, '--yes']);
  assert.equal(res.code, 3, h.describe(res));
  assert.equal(res.lines.find((l) => l.event === 'error')?.code, 'server_reset');
  assert.match(res.stderr, /has a new server key \(it was reset or replaced\)/);
  assert.ok(res.stderr.includes(phone.state), res.stderr);
  const st = h.expectStatus(await h.api(s3.url, 'GET', `/v1/link-requests/${req.id}`, { token: req.token }), 200);
  assert.equal(st.state, 'pending', 'nothing was sent');

  // register refuses on that state file, naming it and the reset.
  res = await phone.runText(['--server', s3.url, 'register', '--handle', handle]);
  assert.equal(res.code, 1, h.describe(res));
  assert.match(res.stderr, /has a new server key/);
  assert.ok(res.stderr.includes(phone.state), res.stderr);
  // Starting over as told works.
  fs.renameSync(phone.state, `${phone.state}.old`);
  const again = await phone.runText(['--server', s3.url, 'register', '--handle', handle]);
  assert.equal(again.code, 0, h.describe(again));

  // A state that holds a phone of a server that was not reset: register names the file.
  res = await phone.runText(['--server', s3.url, 'register', '--handle', h.uniqueHandle('reset')]);
  assert.equal(res.code, 1, h.describe(res));
  assert.ok(res.stderr.includes(phone.state), res.stderr);
  assert.match(res.stderr, /already holds a registered phone/);
});
