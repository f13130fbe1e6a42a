// `linkward companion` as people and scripts see it (docs/cli.md):
// - `link` without --json draws the QR code in the terminal with block
//   characters (stderr), prints the payload and the pairing code (stdout), and
//   the drawing is a QR code of that very payload (decoded here by the phone
//   CLI from a PNG made of the drawing);
// - `watch` without --json prints the end of its session in words and exits 0;
// - `token` prints an access token that other routes accept too: GET
//   /v1/devices, /v1/alerts, /v1/history, a rename, and the WebSocket upgrade
//   (Authorization: Bearer).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as h from '../lib/harness.js';

let server;
let phone;
let companion;
let linked; // {deviceId, payload, code}
before(async () => {
  server = await h.startServer();
  phone = new h.PhoneCli(server);
  await phone.register('alice');
  companion = new h.CompanionCli(server);
});
after(async () => {
  await server?.stop();
});

// ---- a PNG from the terminal drawing ----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** An 8-bit grayscale PNG of rows (arrays of 0..255). */
function png(rows) {
  const w = rows[0].length;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(rows.length, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.concat(rows.map((r) => Buffer.from([0, ...r])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * The modules of a terminal drawing: each character is one module wide and
 * two high (upper half, lower half); a drawn half is light, a blank one dark
 * (light glyphs on a dark terminal). Scaled up, with a light margin.
 */
function drawingToPng(lines, scale = 6, margin = 8) {
  const modules = [];
  for (const line of lines) {
    const chars = [...line];
    modules.push(chars.map((c) => (c === '\u2588' || c === '\u2580' ? 255 : 0)));
    modules.push(chars.map((c) => (c === '\u2588' || c === '\u2584' ? 255 : 0)));
  }
  const w = Math.max(...modules.map((r) => r.length));
  const rows = [];
  const blank = () => new Array((w + 2 * margin) * scale).fill(255);
  for (let i = 0; i < margin * scale; i++) rows.push(blank());
  for (const r of modules) {
    const px = [];
    for (let i = 0; i < margin * scale; i++) px.push(255);
    for (let x = 0; x < w; x++) for (let i = 0; i < scale; i++) px.push(r[x] ?? 255);
    for (let i = 0; i < margin * scale; i++) px.push(255);
    for (let i = 0; i < scale; i++) rows.push(px);
  }
  for (let i = 0; i < margin * scale; i++) rows.push(blank());
  return png(rows);
}

const DRAWING = /^[\u2588\u2580\u2584 ]+$/;

test('companion link (human output): a QR drawing of the payload, the payload and the code; exits 0 once linked', async () => {
  const link = h.spawnCli(['companion', '--server', server.url, '--state', companion.state, 'link', '--name', 'build-bot']);
  try {
    const payloadLine = await h.pollUntil(() => link.lines.find((l) => l.startsWith('Payload: ')),
      { timeout: 10000, what: 'the Payload line on stdout' });
    const codeLine = await h.pollUntil(() => link.lines.find((l) => l.startsWith('Code: ')),
      { timeout: 5000, what: 'the Code line on stdout' });
    const payload = payloadLine.slice('Payload: '.length).trim();
    const code = codeLine.slice('Code: '.length).trim();
    assert.match(payload, /^lw1:[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, payloadLine);
    assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/, codeLine);
    // stdout holds the data only: those two lines.
    assert.deepEqual(link.lines.filter((l) => l.trim()), [payloadLine, codeLine]);

    // stderr: the drawing, then the words around it.
    const err = await h.pollUntil(() => (/\(expires in \d+ s\)/.test(link.stderr()) ? link.stderr() : null),
      { timeout: 5000, what: 'the expiry line on stderr' });
    assert.match(err, /Scan this QR code with Linkward on your phone/);
    assert.match(err, new RegExp(`or enter the code ${code}`));
    assert.match(err, /\(expires in (160|159) s\)/, "the whole request's lifetime");
    const drawing = err.split('\n').filter((l) => l.length >= 21 && DRAWING.test(l));
    assert.ok(drawing.length >= 11, `a QR drawing of block characters on stderr:\n${err}`);
    assert.ok(drawing.every((l) => [...l].length === [...drawing[0]].length), 'a square drawing: lines of equal width');
    assert.ok(drawing.some((l) => l.includes('\u2580')) && drawing.some((l) => l.includes('\u2584')),
      'half blocks: two modules per character');
    assert.ok(Math.abs([...drawing[0]].length - 2 * drawing.length) <= 2,
      `as wide as tall: ${[...drawing[0]].length} characters × ${drawing.length} lines of two modules`);

    // The drawing is a QR code of the payload: the phone reads it from a PNG of it, and links.
    const file = path.join(companion.dir, 'drawing.png');
    fs.writeFileSync(file, drawingToPng(drawing));
    const res = await phone.run(['link', '--image', file, '--yes']);
    assert.equal(res.code, 0, h.describe(res));
    const exit = await link.waitExit(15000);
    assert.equal(exit.code, 0, link.stderr());
    assert.match(link.stderr(), /Scanned/);
    const m = /Linked to alice\. This device's id is ([A-Za-z0-9_-]+)\./.exec(link.stderr());
    assert.ok(m, `the linked line on stderr:\n${link.stderr()}`);
    linked = { deviceId: m[1], payload, code };
    assert.equal((await companion.whoami()).device.id, linked.deviceId);
  } finally {
    link.kill('SIGKILL');
  }
});

test('companion token: a valid access token for other routes and the WebSocket', async () => {
  assert.ok(linked, 'the companion is linked (previous test)');
  const token = await companion.token();
  assert.match(token, /^lws_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'one line, the credential only');
  const json = await companion.run(['token']);
  assert.equal(json.code, 0, h.describe(json));
  assert.equal(json.json.token, token, 'the same token in JSON');
  assert.ok(json.json.expires_in >= 60 && json.json.expires_in <= 600, `expires_in ${json.json.expires_in}`);

  const devices = h.expectStatus(await h.api(server.url, 'GET', '/v1/devices', { token }), 200).devices;
  assert.deepEqual(devices.map((d) => d.id).sort(), [linked.deviceId, phone.deviceId].sort());
  assert.equal(devices.find((d) => d.id === linked.deviceId).name, 'build-bot');
  const alerts = h.expectStatus(await h.api(server.url, 'GET', '/v1/alerts', { token }), 200).alerts;
  assert.ok(Array.isArray(alerts) && alerts.some((a) => a.kind === 'device.linked'), JSON.stringify(alerts));
  assert.ok(Array.isArray(h.expectStatus(await h.api(server.url, 'GET', '/v1/history', { token }), 200).sessions));
  h.expectStatus(await h.api(server.url, 'PATCH', `/v1/devices/${linked.deviceId}`, { token, body: { name: 'renamed-bot' } }), 200);
  assert.ok((await phone.devices()).some((d) => d.id === linked.deviceId && d.name === 'renamed-bot'));

  // The WebSocket upgrade with Authorization: Bearer <token>.
  const ws = await h.connectWs(server.url, token);
  try {
    const hello = await ws.next('hello');
    assert.equal(hello.device_id, linked.deviceId);
    ws.send({ event: 'ping' });
    await ws.next('pong');
  } finally {
    await ws.close();
  }
  // (self-check) the same routes refuse a token that is not one.
  h.expectError(await h.api(server.url, 'GET', '/v1/devices', { token: `${token.slice(0, -2)}xx` }), 401, 'unauthenticated');
  const bad = await h.tryConnectWs(server.url, `${token.slice(0, -2)}xx`);
  assert.equal(bad.status, 401);
});

test('companion watch (human output): prints the end of its session in words and exits 0', async () => {
  assert.ok(linked, 'the companion is linked (previous test)');
  const watch = h.spawnCli(['companion', '--state', companion.state, 'watch']);
  try {
    await h.pollUntil(() => /Watching events for device/.test(watch.stderr()), { timeout: 5000, what: 'watch to start' });
    // Its socket is open once it prints an event: link another device.
    const other = await h.createLinkRequest(server.url, { client: { name: 'second-bot' } });
    const ok = await phone.run(['link', other.payload, '--yes']);
    assert.equal(ok.code, 0, h.describe(ok));
    h.expectStatus(await h.complete(other), 201);
    await h.pollUntil(() => watch.lines.find((l) => /^A new device was linked: second-bot/.test(l)),
      { timeout: 5000, what: 'the device.linked line' });

    const out = await phone.run(['logout', linked.deviceId]);
    assert.equal(out.code, 0, h.describe(out));
    const exit = await watch.waitExit(10000);
    assert.equal(exit.code, 0, watch.stderr());
    const last = watch.lines.filter((l) => l.trim()).at(-1);
    assert.equal(last, "This device's session ended (remote_logout): You were logged out from your phone.",
      `stdout:\n${watch.lines.join('\n')}`);
  } finally {
    watch.kill('SIGKILL');
  }
  // Started after the end, it says so and exits 0 too.
  const again = await companion.runText(['watch'], { timeout: 10000 });
  assert.equal(again.code, 0, h.describe(again));
  assert.match(again.stdout, /This device's session has already ended \(remote_logout\): \S/);
});
