// Every limit crossed by one more than allowed (PRODUCT §8, issue 5): rate
// limits answer 429 with Retry-After (and tell the targeted account), bodies,
// headers, WebSocket messages and connections are bounded.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import * as h from '../lib/harness.js';

const servers = [];
async function start(args, opts = {}) {
  const s = await h.startServer({ args, rateLimits: true, ...opts });
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.stop();
});

function expect429(res) {
  h.expectError(res, 429, 'rate_limited');
  const ra = Number(res.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1, `Retry-After: ${res.headers.get('retry-after')}`);
  return ra;
}

describe('rate limits', () => {
  test('registrations per address: the default 10 a minute, the 11th refused', async () => {
    const s = await start([]);
    for (let i = 0; i < 10; i++) await h.registerPrimary(s.url, h.uniqueHandle('reg'));
    const key = h.newDeviceKey();
    expect429(await h.api(s.url, 'POST', '/v1/accounts', { body: { handle: h.uniqueHandle('reg'), public_key: key.pubB64 } }));
  });

  test('link requests per address, and pending requests per address', async () => {
    const s = await start(['--rate', 'link=3/m']);
    for (let i = 0; i < 3; i++) await h.createLinkRequest(s.url);
    const key = h.newDeviceKey();
    expect429(await h.api(s.url, 'POST', '/v1/link-requests', { body: { public_key: key.pubB64 } }));

    const p = await start(['--rate', 'off', '--max-pending-links-per-ip', '2']);
    await h.createLinkRequest(p.url);
    await h.createLinkRequest(p.url);
    const third = await h.api(p.url, 'POST', '/v1/link-requests', { body: { public_key: key.pubB64 } });
    expect429(third);
    assert.match(third.json.error.message, /waiting/);
  });

  test('scans per account: refused past the limit, and the holder is told (link.rate_limited)', async () => {
    const s = await start(['--rate', 'scan=2/m']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('scan'));
    const ws = await h.connectWs(s.url, phone.token);
    try {
      await ws.next('hello');
      for (let i = 0; i < 2; i++) {
        const req = await h.createLinkRequest(s.url);
        h.expectStatus(await h.scan(phone, req.payload), 200);
      }
      const req = await h.createLinkRequest(s.url);
      expect429(await h.scan(phone, req.payload));
      const ev = await ws.next((e) => e.event === 'alert' && e.alert.kind === 'link.rate_limited', 3000);
      assert.equal(ev.alert.details.limit, 'scan');
    } finally {
      await ws.close();
    }
  });

  test('pairing-code guesses per address', async () => {
    const s = await start(['--rate', 'code=3/m,scan=0']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('code'));
    for (let i = 0; i < 3; i++) h.expectError(await h.scan(phone, { code: `AAAA-AAA${i}` }), 404, 'invalid_code');
    expect429(await h.scan(phone, { code: 'AAAA-AAA9' }));
    // Even the right code waits: guessing cannot be interleaved with real attempts.
    const req = await h.createLinkRequest(s.url);
    expect429(await h.scan(phone, { code: req.code }));
  });

  test('credential refreshes per device', async () => {
    const s = await start(['--rate', 'refresh=2/m']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('refresh'));
    for (let i = 0; i < 2; i++) h.expectStatus(await phone.refresh(), 200);
    expect429(await phone.refresh());
  });
});

describe('sizes', () => {
  test('a route body at its limit is read; one byte more is refused (413)', async () => {
    const s = await start(['--rate', 'off']);
    const key = h.newDeviceKey();
    const json = JSON.stringify({ handle: 'padded_user', public_key: key.pubB64 });
    const atLimit = json + ' '.repeat(2048 - json.length);
    assert.equal(atLimit.length, 2048);
    h.expectStatus(await h.api(s.url, 'POST', '/v1/accounts', { raw: atLimit }), 201);
    const over = json.replace('padded_user', 'padded_user2') + ' '.repeat(2049 - json.length - 1);
    assert.equal(over.length, 2049);
    h.expectError(await h.api(s.url, 'POST', '/v1/accounts', { raw: over }), 413, 'body_too_large');
  });

  test('64 headers are fine, 65 are refused (431); so are 16 KiB of them', async () => {
    const s = await start(['--rate', 'off']);
    const headers = {};
    // fetch adds a few of its own (host, connection, accept, accept-language,
    // sec-fetch-mode, user-agent, accept-encoding): fill up to exactly 64.
    for (let i = 0; i < 57; i++) headers[`x-h${i}`] = 'v';
    const ok = await h.api(s.url, 'GET', '/v1/health', { headers });
    assert.equal(ok.status, 200, h.show(ok));
    for (let i = 57; i < 70; i++) headers[`x-h${i}`] = 'v';
    h.expectError(await h.api(s.url, 'GET', '/v1/health', { headers }), 431, 'headers_too_large');
    h.expectError(await h.api(s.url, 'GET', '/v1/health', { headers: { 'x-big': 'a'.repeat(17 * 1024) } }), 431,
      'headers_too_large');
  });
});

describe('WebSockets', () => {
  test('a socket that floods messages is closed (1008)', async () => {
    const s = await start(['--rate', 'off']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('flood'));
    const ws = await h.connectWs(s.url, phone.token);
    await ws.next('hello');
    for (let i = 0; i < 30; i++) ws.send({ event: 'ping' });
    const closed = await h.withTimeout(ws.closed, 3000, 'the flooding socket to be closed');
    assert.equal(closed.code, 1008);
  });

  test('a device holds at most 8 sockets; the 9th is refused', async () => {
    const s = await start(['--rate', 'off']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('socks'));
    const socks = [];
    try {
      for (let i = 0; i < 8; i++) {
        const ws = await h.connectWs(s.url, phone.token);
        await ws.next('hello');
        socks.push(ws);
      }
      await assert.rejects(h.connectWs(s.url, phone.token), (e) => e.status === 429);
    } finally {
      for (const ws of socks) await ws.close();
    }
  });

  test('a link request holds at most 8 sockets; the 9th is refused as a device\'s is, and a closed one frees a place', async () => {
    const s = await start(['--rate', 'off']);
    const req = await h.createLinkRequest(s.url);
    const other = await h.createLinkRequest(s.url);
    const socks = [];
    try {
      for (let i = 0; i < 8; i++) {
        const ws = await h.connectWs(s.url, req.token);
        await ws.next('hello');
        socks.push(ws);
      }
      const refused = await h.tryConnectWs(s.url, req.token);
      assert.equal(refused.ok, false);
      assert.equal(refused.status, 429);
      assert.equal(refused.json?.error?.code, 'rate_limited');
      assert.match(refused.json.error.message, /link request already has 8 live connections/);
      // The cap is per request: another request's page still connects.
      const ws = await h.connectWs(s.url, other.token);
      await ws.next('hello');
      socks.push(ws);
      // Once a socket has gone, its place is free again.
      await socks.shift().close();
      await h.pollUntil(async () => {
        const r = await h.tryConnectWs(s.url, req.token);
        if (r.ok) socks.push(r.ws);
        return r.ok;
      }, { what: 'a 9th socket once one of the 8 closed' });
    } finally {
      for (const ws of socks) await ws.close();
    }
  });
});

describe('connections', () => {
  function openRaw(port) {
    return new Promise((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => resolve(c));
      c.on('error', reject);
    });
  }
  const ended = (c) => new Promise((resolve) => { c.on('close', resolve); c.on('end', resolve); });

  test('connections per address are capped; the next one is closed at once', async () => {
    const s = await start(['--rate', 'off', '--max-connections-per-ip', '4']);
    const held = [];
    try {
      for (let i = 0; i < 4; i++) held.push(await openRaw(s.port));
      // The server counts a connection when it accepts it: prove the four are in by a request on one.
      held[0].write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((resolve) => held[0].once('data', resolve));
      const fifth = await openRaw(s.port);
      await h.withTimeout(ended(fifth), 3000, 'the connection over the cap to be closed');
    } finally {
      for (const c of held) c.destroy();
    }
  });

  test('slow clients are dropped after the request timeout while others are served', async () => {
    const s = await start(['--rate', 'off', '--request-timeout', '1s']);
    const slow = [];
    for (let i = 0; i < 20; i++) {
      const c = await openRaw(s.port);
      c.write('GET /v1/health HTTP/1.1\r\n');
      slow.push({ c, closed: ended(c) });
    }
    // Meanwhile a normal client is answered promptly, again and again.
    const t = h.stopwatch();
    for (let i = 0; i < 10; i++) h.expectStatus(await h.api(s.url, 'GET', '/v1/health'), 200);
    assert.ok(t() < 1000, `10 requests took ${t()} ms while 20 slow clients were connected`);
    // Each slow client trickles a header line now and then; it is still dropped.
    const drip = setInterval(() => { for (const x of slow) if (!x.c.destroyed) x.c.write('X-A: b\r\n'); }, 200);
    try {
      await h.withTimeout(Promise.all(slow.map((x) => x.closed)), h.T(4000), 'slow clients to be dropped');
    } finally {
      clearInterval(drip);
      for (const x of slow) x.c.destroy();
    }
  });
});

describe('silent sockets', () => {
  test('the server pings; a peer that answers stays, one that stays silent is dropped', async () => {
    const s = await start(['--rate', 'off', '--ws-ping', '300ms']);
    const phone = await h.registerPrimary(s.url, h.uniqueHandle('ping'));
    // The ws package answers pings by itself: this socket stays open across several intervals.
    const alive = await h.connectWs(s.url, phone.token);
    await alive.next('hello');
    let pings = 0;
    alive.sock?.on?.('ping', () => { pings++; });
    // A raw socket that does the handshake and then never answers anything.
    const raw = await new Promise((resolve, reject) => {
      const c = net.connect(s.port, '127.0.0.1', () => {
        c.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${phone.token}\r\n\r\n`);
        resolve(c);
      });
      c.on('error', reject);
    });
    raw.resume(); // read (and ignore) the handshake and the pings, or 'close' never comes
    const rawClosed = new Promise((resolve) => raw.on('close', resolve));
    await h.withTimeout(rawClosed, h.T(4000), 'the silent socket to be closed');
    assert.equal(alive.closeInfo ?? null, null, 'the answering socket is still open');
    h.expectStatus(await h.api(s.url, 'GET', '/v1/health'), 200);
    await alive.close();
  });
});

describe('descriptors', () => {
  test('out of file descriptors: the server sheds connections and recovers', async () => {
    const s = await start(['--rate', 'off']);
    // Leave the server a handful of descriptors beyond what it has open now.
    const open = fs.readdirSync(`/proc/${s.proc.pid}/fd`).length;
    execFileSync('prlimit', ['--pid', String(s.proc.pid), `--nofile=${open + 8}:${open + 8}`]);
    const held = [];
    try {
      for (let i = 0; i < 40; i++) {
        const c = net.connect(s.port, '127.0.0.1');
        c.on('error', () => {});
        c.resume();
        held.push(c);
      }
      // Some are accepted, the rest are accepted and closed at once (the spare descriptor trick)
      // rather than left to spin the loop; either way the server stays responsive once they go.
      await h.pollUntil(() => held.filter((c) => c.destroyed || c.readyState === 'closed').length >= 20,
        { timeout: 5000, what: 'connections over the descriptor limit to be shed' });
    } finally {
      for (const c of held) c.destroy();
    }
    await h.pollUntil(async () => (await h.api(s.url, 'GET', '/v1/health').catch(() => ({ status: 0 }))).status === 200,
      { timeout: 5000, what: 'the server to answer again' });
    assert.match(s.stderr(), /out of file descriptors: shedding connections/);
  });
});
