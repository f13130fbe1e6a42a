// Logs name devices and accounts by id; a client address appears in them
// only as its network (/24 for IPv4, /48 for IPv6), unless the server runs at
// the debug level without --privacy country-only (docs/operations.md "Logs").
// Every log line that carries an address is driven here from behind a
// trusted proxy (X-Forwarded-For with a full address), and the server's whole
// stderr is searched.

import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as h from '../lib/harness.js';

const V4 = '203.0.113.77';
const V4_NET = '203.0.113.0/24';
const V6 = '2001:db8:1234:5678:9abc:def0:1234:77';
const V6_NET = '2001:db8:1234::/48';
// Every spelling of the full addresses a log line could use.
const FULL = [V4, V6, '2001:db8:1234:5678:9abc:def0:1234:0077', '2001:0db8:1234:5678'];

const servers = [];
async function start(args) {
  const s = await h.startServer({ args: ['--trusted-proxies', '127.0.0.1', '--rate', 'link=2/m', ...args], rateLimits: true });
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.stop();
});

const via = (ip) => ({ 'x-forwarded-for': ip });

/** Drives every logged event that names a client address, from ip. */
async function logEverything(s, ip) {
  const phone = await h.registerPrimary(s.url, h.uniqueHandle('logs'), { headers: via(ip) }); // "registered from"
  phone.headers = via(ip);
  for (let i = 0; i < 2; i++) await h.createLinkRequest(s.url, { headers: via(ip) }); // "opened from"
  const third = await h.api(s.url, 'POST', '/v1/link-requests', { body: { public_key: h.newDeviceKey().pubB64 }, headers: via(ip) });
  h.expectError(third, 429, 'rate_limited'); // "limit reached for address"
  const refresh = await phone.raw('POST', '/v1/session/refresh', { body: {} }); // "without a valid device-key proof"
  assert.equal(refresh.status, 401, h.show(refresh));
}

async function logged(s, needle) {
  return h.pollUntil(() => s.stderr().includes(needle), { what: `"${needle}" in the server's log` });
}

describe('client addresses in the logs', () => {
  test('at the default level, every line names the network, never the address', async () => {
    const s = await start([]);
    await logEverything(s, V4);
    await logEverything(s, V6);
    await logged(s, `link limit reached for address ${V6_NET}`);
    const log = s.stderr();
    for (const full of FULL) assert.ok(!log.includes(full), `${full} appears in the log:\n${log}`);
    for (const line of [`registered from ${V4_NET}`, `opened from ${V4_NET}`, `limit reached for address ${V4_NET}`,
      `proof: ending it`, `registered from ${V6_NET}`, `opened from ${V6_NET}`]) {
      assert.ok(log.includes(line), `"${line}" is logged:\n${log}`);
    }
    assert.match(log, new RegExp(`refresh of \\S+ from ${V4_NET.replace(/\./g, '\\.')} without`));
  });

  test('a refused connection (per-address cap) logs the peer\'s network', async () => {
    const s = await start(['--max-connections-per-ip', '1']);
    const first = net.connect(s.port, '127.0.0.1');
    await new Promise((resolve, reject) => { first.once('connect', resolve); first.once('error', reject); });
    try {
      const second = net.connect(s.port, '127.0.0.1');
      second.on('error', () => { /* refused: reset or closed */ });
      await h.withTimeout(new Promise((resolve) => second.once('close', resolve)), h.T(5000), 'the refused connection to close');
      await logged(s, 'connection limit reached (127.0.0.0/24)');
      // (127.0.0.1 itself is in the log: the address the server listens on.)
      assert.ok(!s.stderr().includes('(127.0.0.1)'), s.stderr());
    } finally {
      first.destroy();
    }
  });

  test('at the debug level the full address may be logged; with --privacy country-only it never is', async () => {
    const debug = await start(['--log-level', 'debug']);
    await logEverything(debug, V4);
    await logged(debug, `registered from ${V4}`);
    assert.ok(debug.stderr().includes(`opened from ${V4}`));

    const quiet = await start(['--log-level', 'debug', '--privacy', 'country-only']);
    await logEverything(quiet, V4);
    await logged(quiet, `limit reached for address ${V4_NET}`);
    assert.ok(!quiet.stderr().includes(V4), quiet.stderr());
  });
});
