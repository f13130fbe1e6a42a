// The client library as an integrator gets it (docs/client-library.md):
// installed with `cmake --install`, found with pkg-config, its header the only
// one the program sees. tests/integration/client_api.c is compiled from that
// install tree with -std=c11 -Wall -Wextra -Werror and then registers a
// primary, links a companion and uses its token against a real server, with
// nothing but the public API.
//
// Environment (set by CTest): LINKWARD_BUILD_DIR (the build tree to install
// from; default: the folder of the linkward binary), LINKWARD_CC (the C
// compiler; default cc).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as h from '../lib/harness.js';

const run = promisify(execFile);
const BUILD = process.env.LINKWARD_BUILD_DIR || path.dirname(h.linkwardBin());
const CC = process.env.LINKWARD_CC || 'cc';
const SANITIZE = /^(1|on|true|yes)$/i.test(process.env.LINKWARD_SANITIZE || '');
const SOURCE = path.join(h.REPO, 'tests', 'integration', 'client_api.c');

let prefix; // the install tree
let pcDir; // where linkward-client.pc lies in it
let program; // the integrator's binary
let server;

function findPc(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const found = findPc(p);
      if (found) return found;
    } else if (e.name === 'linkward-client.pc') {
      return dir;
    }
  }
  return null;
}

async function pkgConfig(...args) {
  const { stdout } = await run('pkg-config', [...args, 'linkward-client'], {
    env: { ...process.env, PKG_CONFIG_PATH: pcDir },
  });
  return stdout.trim().split(/\s+/).filter(Boolean);
}

before(async () => {
  prefix = h.tempDir('lw-prefix-');
  await run('cmake', ['--install', BUILD, '--prefix', prefix]);
  pcDir = findPc(prefix);
  server = await h.startServer();
});

after(async () => {
  await server?.stop();
});

test('the install tree holds the header, the library and linkward-client.pc', async () => {
  assert.ok(pcDir, `no linkward-client.pc under ${prefix}`);
  assert.ok(fs.existsSync(path.join(prefix, 'include', 'linkward', 'client.h')), 'include/linkward/client.h');
  const libdir = path.dirname(pcDir);
  assert.ok(fs.existsSync(path.join(libdir, 'liblinkward-client.a')), `liblinkward-client.a in ${libdir}`);
  // Only the installed include folder (and the dependencies' own) is given to
  // the compiler: nothing of the source tree.
  const cflags = await pkgConfig('--cflags');
  assert.ok(cflags.includes(`-I${path.join(prefix, 'include')}`) ||
            cflags.some((f) => f.startsWith('-I') && path.resolve(f.slice(2)) === path.join(prefix, 'include')),
  `cflags: ${cflags.join(' ')}`);
  for (const f of cflags) assert.ok(!f.includes(h.REPO), `cflags name the source tree: ${f}`);
  // The protocol only: no QR rendering or decoding, no PCRE2, no YAML.
  const libs = (await pkgConfig('--libs')).join(' ');
  assert.match(libs, /-llinkward-client\b/);
  assert.doesNotMatch(libs, /qrencode|zbar|pcre2|yaml|png/, libs);
});

test('a program built from the public header alone compiles and links', async () => {
  const out = path.join(h.tempDir('lw-integrator-'), 'client_api');
  const cflags = await pkgConfig('--cflags');
  const libs = await pkgConfig('--libs');
  // The library of a sanitizer build is instrumented; the program links the runtime.
  const san = SANITIZE ? ['-fsanitize=address,undefined'] : [];
  const args = ['-std=c11', '-Wall', '-Wextra', '-Werror', ...san, ...cflags, '-o', out, SOURCE, ...libs];
  try {
    await run(CC, args);
  } catch (e) {
    assert.fail(`${CC} ${args.join(' ')}\n${e.stderr || e.message}`);
  }
  program = out;
});

test('with it, a primary registers and links a companion whose token works', async () => {
  assert.ok(program, 'the program was not built');
  const dir = h.tempDir('lw-integrator-state-');
  let res;
  try {
    res = await run(program, [server.url, dir], { timeout: h.T(60000) });
  } catch (e) {
    assert.fail(`client_api failed (${e.code ?? e.signal}):\n${e.stderr}\n${e.stdout}\nserver:\n${server.stderr().slice(-2000)}`);
  }
  const line = JSON.parse(res.stdout.trim().split('\n').pop());
  // The companion's credential, used from outside the library.
  const me = h.expectStatus(await h.api(server.url, 'GET', '/v1/session', { token: line.token }), 200);
  assert.equal(me.device.id, line.device_id);
  assert.equal(me.account.id, line.account_id);
  assert.equal(me.account.handle, 'integrator');
  // The primary sees it among the account's devices.
  const devices = h.expectStatus(await h.api(server.url, 'GET', '/v1/devices', { token: line.primary_token }), 200);
  assert.ok(devices.devices.some((d) => d.id === line.device_id), JSON.stringify(devices));
  // The state files are the library's, private to the user.
  for (const f of ['primary.json', 'companion.json']) {
    assert.equal(fs.statSync(path.join(dir, f)).mode & 0o077, 0, `${f} is readable by others`);
  }
});
