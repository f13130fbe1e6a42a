// `make run`, the README's first command, as a newcomer meets it: one short
// build line, the banner that says what to do next, then the server's own
// lines, and a server that answers. The build's own output (make's
// "Entering directory" lines, CMake's "Built target" progress) goes to
// BUILD/build.log instead of the terminal.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import * as h from '../lib/harness.js';

const LISTENING = /^linkward listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/;
// What a terminal shows before the server listens: a build line, the six-line
// banner, the server's start-up log lines (key, GeoIP, listening).
const MAX_LINES_BEFORE_LISTENING = 16;

test('make run shows one build line and the banner, then serves', async (t) => {
  const build = path.dirname(h.linkwardBin());
  const varDir = h.tempDir('lw-make-run-');
  // As from a terminal: not a sub-make of whatever started the tests (make
  // prints "Entering directory" for sub-makes by itself).
  const env = { ...process.env };
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKE_TERMOUT', 'MAKE_TERMERR']) delete env[k];
  const proc = spawn('make', ['run', `BUILD=${build}`, 'LISTEN=127.0.0.1:0', `VAR=${varDir}`], {
    cwd: h.REPO, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
  });

  const lines = [];
  let url = null;
  await h.withTimeout(new Promise((resolve, reject) => {
    let pending = '';
    const take = (chunk) => {
      pending += chunk;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        lines.push(line);
        const m = LISTENING.exec(line);
        if (m && !url) { url = m[1]; resolve(); }
      }
    };
    proc.stdout.setEncoding('utf8').on('data', take);
    proc.stderr.setEncoding('utf8').on('data', take);
    proc.once('exit', (code) => reject(new Error(`make run exited with ${code}:\n${lines.join('\n')}`)));
  }), h.T(120000), 'make run to start the server');

  const shown = lines.join('\n');
  assert.doesNotMatch(shown, /Entering directory|Leaving directory/, `make's directory lines reached the terminal:\n${shown}`);
  assert.doesNotMatch(shown, /Built target|Building C object|\[\s*\d+%\]/, `build progress reached the terminal:\n${shown}`);
  assert.equal(lines.filter((l) => /^Linkward: building /.test(l)).length, 1, shown);
  assert.match(shown, /^Linkward: building .* done$/m);
  assert.match(shown, /^Linkward: starting on http:\/\/127\.0\.0\.1:0 /m);
  assert.match(shown, /companion --server .* link$/m);
  assert.ok(lines.length <= MAX_LINES_BEFORE_LISTENING,
    `${lines.length} lines before the server listened (at most ${MAX_LINES_BEFORE_LISTENING}):\n${shown}`);

  const res = await fetch(`${url}/v1/health`);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).status, 'ok');
});
