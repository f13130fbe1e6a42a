// The core issue's "Done means", as a person types it: `linkward companion
// link` in one terminal, `linkward phone register` + `phone link` in another,
// `phone devices --json`, then `phone logout --all` ending the companion's
// `watch` with logout_all. No --server and no --state: the state files go to
// the default place (~/.config/linkward/), and the server is the one `make
// run` serves unless LINKWARD_SERVER names another (here: the test's).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

let server;
let env;

before(async () => {
  server = await h.startServer();
  const home = h.tempDir('lw-home-');
  env = { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), LINKWARD_SERVER: server.url };
});

after(async () => {
  await server?.stop();
});

test('companion link, phone register + link, devices, logout --all ends watch: with the default state files', async () => {
  const t = h.stopwatch();
  const link = h.spawnCli(['companion', '--json', 'link', '--name', 'Laptop'], { env });
  const offer = await link.waitForLine((o) => o.event === 'link_request' || typeof o.payload === 'string');
  assert.match(link.stderr(), new RegExp(`no --server given; using ${server.url.replace(/[.]/g, '\\.')} \\(LINKWARD_SERVER\\)`));

  const reg = await h.runCli(['phone', '--json', 'register', '--handle', h.uniqueHandle('done')], { env });
  assert.equal(reg.code, 0, h.describe(reg));
  const approve = await h.runCli(['phone', '--json', 'link', offer.payload, '--yes'], { env });
  assert.equal(approve.code, 0, h.describe(approve));
  const linked = await link.waitForLine('linked');
  assert.equal((await link.waitExit()).code, 0);
  console.log(`done-means link flow: ${t().toFixed(0)} ms`);

  // Both state files are where a person would look for them, private.
  for (const f of ['phone.json', 'companion.json']) {
    const st = fs.statSync(path.join(env.XDG_CONFIG_HOME, 'linkward', f));
    assert.equal(st.mode & 0o777, 0o600, f);
  }

  const devices = await h.runCli(['phone', '--json', 'devices'], { env });
  assert.equal(devices.code, 0, h.describe(devices));
  const row = JSON.parse(devices.stdout).find((d) => d.id === linked.device_id);
  assert.equal(row?.name, 'Laptop');
  assert.equal(row.state, 'active');

  const watch = h.spawnCli(['companion', '--json', 'watch'], { env });
  await watch.waitForLine('hello');
  const t2 = h.stopwatch();
  const out = await h.runCli(['phone', '--json', 'logout', '--all'], { env });
  assert.equal(out.code, 0, h.describe(out));
  const ended = await watch.waitForLine('session.ended');
  assert.equal(ended.reason, 'logout_all');
  assert.equal((await watch.waitExit()).code, 0);
  console.log(`done-means logout --all -> watch ended: ${t2().toFixed(0)} ms after the command started`);
});

test('without LINKWARD_SERVER the CLI says it uses http://127.0.0.1:8080, where make run serves', async () => {
  const { LINKWARD_SERVER, ...plain } = env;
  const home = h.tempDir('lw-home-');
  const res = await h.runCli(['phone', 'register', '--handle', 'nobody'],
    { env: { ...plain, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') } });
  assert.match(res.stderr, /no --server given; using http:\/\/127\.0\.0\.1:8080\n/);
});
