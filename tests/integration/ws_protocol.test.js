// The WebSocket at /v1/ws speaks RFC 6455 by itself (src/server/transport/wsframe.c,
// ws.c): these tests talk to it over a raw TCP socket, frame by frame, so that
// every protocol rule and limit is crossed exactly (a library client would
// refuse to send most of these frames).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import * as h from '../lib/harness.js';

let server;
let phone;
before(async () => {
  server = await h.startServer({ args: ['--rate', 'off'] });
  phone = await h.registerPrimary(server.url, h.uniqueHandle('wsraw'));
});
after(async () => {
  await server?.stop();
});

const MAX_IN = 4096; // LW_WS_MAX_IN_MSG

/** A client frame: masked unless opts.mask === false; b0 defaults to FIN + opcode. */
function frame(opcode, payload = Buffer.alloc(0), opts = {}) {
  const body = Buffer.from(payload);
  const b0 = opts.b0 ?? ((opts.fin === false ? 0 : 0x80) | opcode);
  const mask = opts.mask !== false;
  const len = opts.announce ?? body.length;
  let head;
  if (len < 126) head = Buffer.from([b0, (mask ? 0x80 : 0) | len]);
  else if (len <= 0xffff) head = Buffer.from([b0, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = (mask ? 0x80 : 0) | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!mask) return Buffer.concat([head, body]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(body.map((c, i) => c ^ key[i & 3]));
  return Buffer.concat([head, key, masked]);
}

const TEXT = 1, BINARY = 2, CLOSE = 8, PING = 9, PONG = 10;

/**
 * Opens /v1/ws by hand. Returns {sock, handshake, frames, next(pred), ended}:
 * frames are the server's, parsed ({fin, opcode, payload}); ended resolves
 * when the server closes the TCP connection.
 */
async function rawWs(token = phone.token) {
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const key = crypto.randomBytes(16).toString('base64');
  sock.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  let handshake = null;
  const frames = [];
  let waiters = [];
  const wake = () => { for (const w of [...waiters]) w(); };
  const ended = new Promise((resolve) => sock.on('close', () => { resolve(); wake(); }));
  sock.on('error', () => {});
  let onHandshake;
  const gotHandshake = new Promise((resolve) => { onHandshake = resolve; });
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (!handshake) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      handshake = buf.subarray(0, end + 2).toString('latin1'); // each header line ends in CRLF
      buf = buf.subarray(end + 4);
      onHandshake();
    }
    for (;;) {
      if (buf.length < 2) break;
      assert.equal(buf[1] & 0x80, 0, 'server frames are never masked');
      let len = buf[1] & 0x7f, pos = 2;
      if (len === 126) { if (buf.length < 4) break; len = buf.readUInt16BE(2); pos = 4; }
      else if (len === 127) { if (buf.length < 10) break; len = Number(buf.readBigUInt64BE(2)); pos = 10; }
      if (buf.length < pos + len) break;
      frames.push({ fin: (buf[0] & 0x80) !== 0, opcode: buf[0] & 0x0f, payload: buf.subarray(pos, pos + len) });
      buf = buf.subarray(pos + len);
    }
    wake();
  });
  await h.withTimeout(gotHandshake, h.T(5000), 'the WebSocket handshake');
  const taken = new Set();
  let isEnded = false;
  ended.then(() => { isEnded = true; });
  return {
    sock,
    handshake,
    key,
    frames,
    ended,
    send: (...bufs) => sock.write(Buffer.concat(bufs)),
    /** The first frame not yet taken matching pred (an opcode or a function). */
    next(pred, what = 'a frame') {
      const p = typeof pred === 'number' ? (f) => f.opcode === pred : pred;
      return h.withTimeout(new Promise((resolve, reject) => {
        const check = () => {
          const i = frames.findIndex((f, k) => !taken.has(k) && p(f));
          if (i >= 0) {
            taken.add(i);
            waiters = waiters.filter((w) => w !== check);
            resolve(frames[i]);
          } else if (isEnded) {
            waiters = waiters.filter((w) => w !== check);
            reject(new Error(`${what}: the server hung up first; frames: ${frames.map((f) => f.opcode).join(',')}`));
          }
        };
        waiters.push(check);
        check();
      }), h.T(5000), what);
    },
  };
}

const json = (f) => JSON.parse(f.payload.toString('utf8'));
const closeCode = (f) => (f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null);

/** The server's close frame, then its hang-up. */
async function expectClose(ws, code, what) {
  const f = await ws.next(CLOSE, `a close frame (${what})`);
  assert.equal(closeCode(f), code, `${what}: close code (reason "${f.payload.subarray(2).toString()}")`);
  await h.withTimeout(ws.ended, h.T(5000), `the server to hang up after ${what}`);
  return f;
}

test('the handshake answers 101 with the RFC 6455 accept key; the first frame is hello, unmasked text', async () => {
  const ws = await rawWs();
  assert.match(ws.handshake, /^HTTP\/1\.1 101 /);
  const want = crypto.createHash('sha1').update(ws.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  assert.match(ws.handshake, new RegExp(`\\r\\nsec-websocket-accept: ${want.replace(/[+/]/g, '\\$&')}\\r\\n`, 'i'));
  assert.match(ws.handshake, /\r\nupgrade: websocket\r\n/i);
  const hello = await ws.next(TEXT, 'hello');
  assert.equal(hello.fin, true);
  assert.deepEqual(json(hello), { event: 'hello', device_id: phone.deviceId });
  ws.sock.destroy();
});

test('a ping is answered by a pong with the same payload; an application ping by {"event":"pong"}', async () => {
  const ws = await rawWs();
  await ws.next(TEXT, 'hello');
  ws.send(frame(PING, 'are you there?'));
  assert.equal((await ws.next(PONG, 'pong')).payload.toString(), 'are you there?');
  ws.send(frame(TEXT, '{"event":"ping"}'));
  assert.deepEqual(json(await ws.next((f) => f.opcode === TEXT && json(f).event === 'pong', 'pong event')), { event: 'pong' });
  ws.sock.destroy();
});

test('a message in fragments, with a control frame between them, is joined; one byte at a time works too', async () => {
  const ws = await rawWs();
  await ws.next(TEXT, 'hello');
  ws.send(frame(TEXT, '{"event"', { fin: false }), frame(PING, 'mid'), frame(0, ':"pi', { fin: false }), frame(0, 'ng"}'));
  assert.equal((await ws.next(PONG, 'the pong of the interleaved ping')).payload.toString(), 'mid');
  await ws.next((f) => f.opcode === TEXT && json(f).event === 'pong', 'the pong of the joined message');
  // The same message trickled byte by byte: the server waits for whole frames.
  const bytes = frame(TEXT, '{"event":"ping"}');
  for (const b of bytes) {
    ws.sock.write(Buffer.from([b]));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await ws.next((f) => f.opcode === TEXT && json(f).event === 'pong', 'the pong of the trickled message');
  ws.sock.destroy();
});

test('a message of 4,096 bytes is read; 4,097 is refused with 1009 on its header alone, before the payload', async () => {
  const ws = await rawWs();
  await ws.next(TEXT, 'hello');
  const ping = '{"event":"ping"}';
  ws.send(frame(TEXT, ping + ' '.repeat(MAX_IN - ping.length)));
  await ws.next((f) => f.opcode === TEXT && json(f).event === 'pong', 'the answer to a message at the limit');
  // Fragments add up: 4,000 + 97 bytes is one byte too many as well.
  const ws2 = await rawWs();
  await ws2.next(TEXT, 'hello');
  ws2.send(frame(TEXT, 'a'.repeat(4000), { fin: false }), frame(0, 'a'.repeat(MAX_IN - 4000 + 1)));
  await expectClose(ws2, 1009, 'fragments past the limit');
  // Only the header of a frame announcing 4,097 bytes: refused at once.
  ws.send(frame(TEXT, '', { announce: MAX_IN + 1 }).subarray(0, 8));
  await expectClose(ws, 1009, 'a header announcing 4,097 bytes');
  // A 64-bit length with the top bit set is a protocol error, not a huge message.
  const ws3 = await rawWs();
  await ws3.next(TEXT, 'hello');
  const huge = Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
  ws3.send(huge);
  await expectClose(ws3, 1002, 'a length with its top bit set');
});

for (const [name, bytes, code] of [
  ['an unmasked frame', () => frame(TEXT, '{"event":"ping"}', { mask: false }), 1002],
  ['a reserved bit set', () => frame(TEXT, 'x', { b0: 0x80 | 0x40 | TEXT }), 1002],
  ['a reserved opcode', () => frame(3, 'x'), 1002],
  ['a continuation of nothing', () => frame(0, 'x'), 1002],
  ['a fragmented control frame', () => frame(PING, 'x', { fin: false }), 1002],
  ['a control frame of 126 bytes', () => frame(PING, 'p'.repeat(126)), 1002],
  ['a new message inside a fragmented one', () => Buffer.concat([frame(TEXT, 'a', { fin: false }), frame(TEXT, 'b')]), 1002],
  ['text that is not UTF-8', () => frame(TEXT, Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 1007],
  ['an encoded surrogate (not UTF-8)', () => frame(TEXT, Buffer.from([0xed, 0xa0, 0x80])), 1007],
  ['a close frame of one byte', () => frame(CLOSE, Buffer.from([3])), 1002],
  ['a close frame with code 1005 (never sent)', () => frame(CLOSE, Buffer.from([0x03, 0xed])), 1002],
]) {
  test(`${name}: the server closes with ${code} and hangs up`, async () => {
    const ws = await rawWs();
    await ws.next(TEXT, 'hello');
    ws.send(bytes());
    await expectClose(ws, code, name);
  });
}

test('the client closes: the server echoes its code and hangs up; the device keeps its session', async () => {
  const ws = await rawWs();
  await ws.next(TEXT, 'hello');
  ws.send(frame(CLOSE, Buffer.concat([Buffer.from([0x0f, 0xa0]), Buffer.from('bye')]))); // 4000
  await expectClose(ws, 4000, 'the echo of a client close');
  h.expectStatus(await phone.raw('GET', '/v1/session'), 200);
  // A close with no body is answered with 1000.
  const ws2 = await rawWs();
  await ws2.next(TEXT, 'hello');
  ws2.send(frame(CLOSE));
  await expectClose(ws2, 1000, 'the answer to an empty close');
});

test('a session that ends: session.ended, then the close frame (4001) in that order, then the hang-up', async () => {
  const c = await h.linkCompanionApi(server.url, phone);
  const ws = await rawWs(c.token);
  await ws.next(TEXT, 'hello');
  h.expectStatus(await phone.raw('DELETE', `/v1/devices/${c.deviceId}`), 200);
  const ended = await ws.next((f) => f.opcode === TEXT && json(f).event === 'session.ended', 'session.ended');
  assert.equal(json(ended).reason, 'remote_logout');
  const close = await ws.next(CLOSE, 'the close frame');
  assert.equal(closeCode(close), 4001);
  assert.ok(ws.frames.indexOf(ended) < ws.frames.indexOf(close), 'session.ended came before the close frame');
  assert.equal(close.payload.subarray(2).toString(), 'remote_logout');
  ws.send(frame(CLOSE, close.payload.subarray(0, 2)));
  await h.withTimeout(ws.ended, h.T(5000), 'the hang-up after the close handshake');
});

test('binary messages are accepted and ignored; frames right behind the handshake are read', async () => {
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  let data = Buffer.alloc(0);
  sock.on('data', (d) => { data = Buffer.concat([data, d]); });
  sock.on('error', () => {});
  // The request and two frames in one write: the server must not lose them.
  sock.write(Buffer.concat([
    Buffer.from(`GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
      `Authorization: Bearer ${phone.token}\r\n\r\n`),
    frame(BINARY, Buffer.from([1, 2, 3])),
    frame(TEXT, '{"event":"ping"}'),
  ]));
  await h.pollUntil(() => data.includes('{"event":"pong"}'), { timeout: h.T(5000), what: 'the pong of a frame sent with the request' });
  sock.destroy();
});
