// Who may talk to the control socket (src/server/transport/control.c, docs/operations.md):
// only the server's own user, or root. Two layers refuse anyone else:
//   1. the file system: the socket is created 0700 (umask 077) in the data
//      directory, so another user cannot even connect (EACCES);
//   2. the peer credentials (SO_PEERCRED): should the file be opened up, the
//      server still closes a connection from another uid, unanswered, and logs
//      "refused a control connection from uid N".
// The other user is `nobody`, reached with setpriv; that needs root (as CI
// runs), so the test is skipped, saying why, otherwise.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import * as h from '../lib/harness.js';

const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : 'needs root to run a client as another user (setpriv to nobody); CI runs as root';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

let server;
let nobodyUid;
before(async () => {
  if (!ROOT) return;
  assert.ok(SETPRIV, 'setpriv (util-linux) is installed');
  nobodyUid = Number((await run([SETPRIV, '--reuid=nobody', '--regid=nogroup', '--clear-groups', '/usr/bin/id', '-u'])).stdout.trim());
  assert.ok(nobodyUid > 0, `nobody has a uid other than root's: ${nobodyUid}`);
  server = await h.startServer();
});
after(async () => {
  await server?.stop();
});

/** Runs argv to completion (bounded); resolves {code, stdout, stderr}. */
function run(argv) {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: h.T(10000), env: { ...process.env, HOME: os.tmpdir() } },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr, argv }));
  });
}

/** `linkward admin --control SOCK stats` as nobody. */
const asNobody = () => run([SETPRIV, '--reuid=nobody', '--regid=nogroup', '--clear-groups',
  h.linkwardBin(), 'admin', '--control', server.controlSock, '--json', 'stats']);

const refusedLines = () => server.stderr().split('\n').filter((l) => /refused a control connection/.test(l));

test('layer 1, the file system: the socket is 0700 and another user cannot connect (EACCES)', { skip: SKIP }, async () => {
  const st = fs.statSync(server.controlSock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o700, `control socket mode ${(st.mode & 0o777).toString(8)}`);
  assert.equal(st.uid, process.getuid(), 'owned by the server\'s user');
  const res = await asNobody();
  assert.notEqual(res.code, 0, `nobody reached the control socket: ${JSON.stringify(res)}`);
  assert.match(res.stderr, /cannot reach the server's control socket .*Permission denied/, res.stderr);
  assert.equal(res.stdout.trim(), '', 'no answer');
  // The server never saw a connection: the file system refused it first.
  assert.deepEqual(refusedLines(), [], 'no peer-credential refusal logged');
  // Root (the server's own user here) is answered.
  assert.equal(typeof (await h.adminStats(server)), 'object');
});

test('layer 2, the peer credentials: with the file opened up, the server still refuses another uid and logs it', { skip: SKIP }, async () => {
  // Open the way on purpose (the test's doing, not the server's): the data
  // directory searchable, the socket writable by anyone.
  fs.chmodSync(server.dataDir, 0o711);
  fs.chmodSync(server.controlSock, 0o777);
  try {
    const before = refusedLines().length;
    const res = await asNobody();
    assert.notEqual(res.code, 0, `nobody was answered: ${JSON.stringify(res)}`);
    assert.doesNotMatch(res.stderr, /Permission denied/, `the file system no longer refuses: ${res.stderr}`);
    assert.ok(!/"stats"|accounts/.test(res.stdout), `no answer may reach nobody: ${res.stdout}`);
    const lines = await h.pollUntil(() => (refusedLines().length > before ? refusedLines() : null),
      { timeout: 5000, what: 'the server to log the refusal' });
    assert.match(lines.at(-1), new RegExp(`refused a control connection from uid ${nobodyUid}\\b`));
    // The server goes on serving its own user.
    assert.equal(typeof (await h.adminStats(server)), 'object');
    h.expectStatus(await h.api(server.url, 'GET', '/v1/health'), 200);
  } finally {
    fs.chmodSync(server.controlSock, 0o700);
    fs.chmodSync(server.dataDir, 0o700);
  }
});
