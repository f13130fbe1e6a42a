// A database the server cannot write. At start (a file the --user the
// server drops to may only read) the server refuses to start with a sentence
// naming the file and the user. At run time (the disk fills up) every write
// is answered 503 store_unavailable with Retry-After, never 500, nothing is
// half-written, /v1/health answers 503 "degraded" while writes fail, and
// both recover once the disk has room again, with no restart.
//
// Both need root, as CI runs (Debian 12): dropping to `nobody` for the first,
// mounting a tiny tmpfs for the second (a real ENOSPC, which SQLite reports
// as SQLITE_FULL). Elsewhere they are skipped, saying why.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as h from '../lib/harness.js';

const ROOT = process.getuid?.() === 0;
const NOBODY = 65534;
// Big enough for a fresh database and a few accounts, small enough to fill
// in a moment.
const TMPFS_SIZE = '4m';
const FILL_CHUNK = 64 * 1024;
// Writes tried once the disk is full: the WAL file may still have room for
// a few small commits before one needs a new page from the disk.
const WRITES_UNTIL_FULL = 200;

const mounts = [];
after(() => {
  for (const m of mounts) {
    try { execFileSync('umount', ['-l', m]); } catch { /* already gone */ }
  }
});

/** Mounts a tmpfs of TMPFS_SIZE; null (with the reason) when not allowed here. */
function tinyDisk() {
  if (!ROOT) return { why: 'needs root to mount a tmpfs' };
  const dir = h.tempDir('lw-tinydisk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return { why: `mount -t tmpfs is not permitted here (${String(e.stderr || e.message).trim()})` };
  }
  mounts.push(dir);
  return { dir };
}

/** Writes a filler file until the disk says ENOSPC; returns its path. */
function fillDisk(dir) {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(FILL_CHUNK, 0x5a);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if (e.code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
  // Whatever is left below one chunk: byte by byte is too slow, a smaller
  // chunk finishes it.
  const fd2 = fs.openSync(file, 'a');
  try {
    for (;;) fs.writeSync(fd2, Buffer.alloc(512, 0x5a));
  } catch (e) {
    if (e.code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd2);
  }
  return file;
}

const health = (server) => h.api(server.url, 'GET', '/v1/health');

test('a database the --user may only read: the server refuses to start, naming the file and the user',
  { skip: ROOT ? false : 'needs root: the server drops to nobody, for whom a root-owned 0644 file is read-only' },
  async () => {
    const dir = h.tempDir('lw-ro-');
    // First as root: the database (root-owned, 0644) and the key exist, with an account.
    const first = await h.startServer({ dataDir: dir });
    await h.registerPrimary(first.url, h.uniqueHandle('ro'));
    await first.stop();
    const db = path.join(dir, 'linkward.db');
    assert.equal(fs.statSync(db).uid, 0);
    assert.equal(fs.statSync(db).mode & 0o777, 0o644);
    // nobody may use the folder and read its key; the database stays root's.
    fs.chownSync(dir, NOBODY, NOBODY);
    fs.chownSync(path.join(dir, 'server.key'), NOBODY, NOBODY);
    const before = fs.readFileSync(db);

    const res = await h.runCli(['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--user', 'nobody',
      '--rate', 'off'], { timeout: 10000 });
    assert.notEqual(res.code, 0, h.describe(res));
    assert.doesNotMatch(res.stdout, /listening/, 'it never listened');
    assert.match(res.stderr, new RegExp(`refusing to start: the database ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ` +
      'cannot be written as user nobody'), h.describe(res));
    assert.deepEqual(fs.readFileSync(db), before, 'the database is untouched');
  });

test('a full disk at run time: writes answer 503 store_unavailable (never 500), health says degraded, both recover',
  async (t) => {
    const disk = tinyDisk();
    if (!disk.dir) {
      t.skip(disk.why);
      return;
    }
    const dir = path.join(disk.dir, 'data');
    const server = await h.startServer({ dataDir: dir });
    try {
      const alice = await h.registerPrimary(server.url, h.uniqueHandle('full'));
      assert.equal((await health(server)).status, 200);
      assert.deepEqual((await health(server)).json, { status: 'ok' });

      const filler = fillDisk(disk.dir);
      // Registrations until one needs room the disk does not have.
      let refused = null;
      const handles = [];
      for (let i = 0; i < WRITES_UNTIL_FULL && !refused; i++) {
        const handle = h.uniqueHandle('full');
        const res = await h.api(server.url, 'POST', '/v1/accounts',
          { body: { handle, public_key: h.newDeviceKey().pubB64 } });
        assert.ok(res.status === 201 || res.status === 503, `never a 500: ${h.show(res)}`);
        if (res.status === 503) refused = { res, handle };
        else handles.push(handle);
      }
      assert.ok(refused, `a write was refused within ${WRITES_UNTIL_FULL} tries on a full disk`);
      h.expectError(refused.res, 503, 'store_unavailable');
      assert.equal(refused.res.headers.get('retry-after'), '1');

      // Health says so, with 503, while the disk is full.
      const deg = await health(server);
      assert.equal(deg.status, 503, h.show(deg));
      assert.equal(deg.json.status, 'degraded');
      assert.equal(deg.json.store, 'unavailable');
      // Other writes are refused the same way; reads still answer.
      const rename = await alice.raw('PATCH', `/v1/devices/${alice.deviceId}`, { body: { name: 'Full phone' } });
      assert.ok(rename.status === 503 || rename.status === 200, `never a 500: ${h.show(rename)}`);
      if (rename.status === 503) h.expectError(rename, 503, 'store_unavailable');
      h.expectStatus(await alice.raw('GET', '/v1/session'), 200);
      h.expectStatus(await h.api(server.url, 'GET', '/v1/server'), 200);

      // Room again: health finds out by itself (its own write probe, at most
      // once a second), and writes succeed.
      fs.rmSync(filler);
      await h.pollUntil(async () => (await health(server)).status === 200,
        { timeout: 5000, interval: 100, what: '/v1/health to answer 200 again' });
      assert.deepEqual((await health(server)).json, { status: 'ok' });
      // Nothing of the refused registration was written: its handle is free.
      await h.registerPrimary(server.url, refused.handle);
      // And the ones that succeeded before are there.
      for (const handle of handles.slice(0, 3)) {
        const again = await h.api(server.url, 'POST', '/v1/accounts',
          { body: { handle, public_key: h.newDeviceKey().pubB64 } });
        h.expectError(again, 409, 'handle_taken');
      }
      assert.doesNotMatch(server.stderr(), /"level":"error","sub":"api","msg":"store failure/,
        'no store failure was answered as an internal error');
    } finally {
      await server.stop();
    }
  });
