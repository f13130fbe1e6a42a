// A flood of cheap requests from many addresses must not lock anyone out
// (src/server/domain/rate.c, docs/operations.md "Rate limits"): every rate-limit
// table is bounded and forgets its least recently used clients instead of
// refusing new ones, addresses and devices sit in separate tables, and IPv6
// clients count by their /64. The tables are made small (--rate-table-keys)
// so that a flood of a few thousand addresses fills them many times over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from '../lib/harness.js';

const TABLE_KEYS = 64;
const FLOOD = 2000; // distinct addresses per flooded route: 31 tables' worth
const PARALLEL = 32;

let server;
before(async () => {
  server = await h.startServer({
    rateLimits: true,
    // No sweep during the test: its prune would forget refilled buckets and blur the counts.
    args: ['--trusted-proxies', '127.0.0.1', '--rate-table-keys', String(TABLE_KEYS), '--sweep-interval', '1h',
      '--max-pending-links-per-ip', '1000'],
  });
});
after(async () => { await server?.stop(); });

const via = (ip) => ({ 'x-forwarded-for': ip });
const v4 = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Sends one request per address, PARALLEL at a time; returns the count of each status. */
async function flood(method, p, body, addrs) {
  const statuses = {};
  let next = 0;
  async function worker() {
    while (next < addrs.length) {
      const ip = addrs[next++];
      const res = await h.api(server.url, method, p, { body, headers: via(ip) });
      statuses[res.status] = (statuses[res.status] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return statuses;
}

async function rateGauges() {
  const text = (await h.api(server.url, 'GET', '/metrics')).text;
  const keys = {};
  const evicted = {};
  for (const m of text.matchAll(/^linkward_rate_keys\{rule="([^"]+)",scope="([^"]+)"\} (\d+)$/gm)) keys[`${m[1]}:${m[2]}`] = Number(m[3]);
  for (const m of text.matchAll(/^linkward_rate_evictions_total\{rule="([^"]+)",scope="([^"]+)"\} (\d+)$/gm)) evicted[`${m[1]}:${m[2]}`] = Number(m[3]);
  return { keys, evicted };
}

test('a flood of addresses through a trusted proxy leaves registration, linking and refresh open', async () => {
  const phone = await h.registerPrimary(server.url, h.uniqueHandle('flood'), { headers: via('192.0.2.1') });
  phone.headers = via('192.0.2.1');
  const companion = await h.linkCompanionApi(server.url, phone, { headers: via('192.0.2.2') });

  // Registrations with an empty body are refused after the rate check (400):
  // the cheapest way to make a bucket. Link requests likewise.
  const addrs = Array.from({ length: FLOOD }, (_, i) => v4(i + 1));
  const reg = await flood('POST', '/v1/accounts', {}, addrs);
  const link = await flood('POST', '/v1/link-requests', {}, addrs);
  assert.deepEqual(reg, { 400: FLOOD }, 'every flooding address gets its own first try');
  assert.deepEqual(link, { 400: FLOOD });

  const { keys, evicted } = await rateGauges();
  for (const [table, n] of Object.entries(keys)) assert.ok(n <= TABLE_KEYS, `${table} holds ${n} > ${TABLE_KEYS}`);
  assert.equal(keys['register:ip'], TABLE_KEYS);
  assert.equal(keys['link:ip'], TABLE_KEYS);
  // Every flooding address was counted, the oldest forgotten to make room.
  assert.equal(evicted['register:ip'], FLOOD + 1 - TABLE_KEYS);
  assert.equal(evicted['link:ip'], FLOOD + 1 - TABLE_KEYS);
  console.log(`flood: ${2 * FLOOD} requests from ${FLOOD} addresses; tables ${JSON.stringify(keys)}, ` +
    `evicted ${JSON.stringify(evicted)}`);

  // A new client registers and opens a link request.
  const fresh = await h.registerPrimary(server.url, h.uniqueHandle('after'), { headers: via('198.51.100.77') });
  assert.ok(fresh.deviceId);
  const req = await h.createLinkRequest(server.url, { headers: via('198.51.100.78') });
  assert.ok(req.id);
  // The linked device refreshes its credential: its bucket is in the device
  // table, which no address reaches.
  const r = await companion.refresh();
  assert.equal(r.status, 200, h.show(r));
  h.expectStatus(await companion.get('/v1/session'), 200);
  assert.equal((await rateGauges()).evicted['refresh:device'], 0);
  console.log(`after the flood: new client register 201, link request 201, linked device refresh ${r.status}`);
});

test('an IPv6 /64 is one client: its addresses share one bucket', async () => {
  // register is 10/m: a /64 gets ten tries however many addresses it uses.
  const addrs = Array.from({ length: 40 }, (_, i) => `2001:db8:77:1:${(i + 1).toString(16)}::${i + 7}`);
  const statuses = await flood('POST', '/v1/accounts', {}, addrs);
  assert.deepEqual(statuses, { 400: 10, 429: 30 });
  const refused = await h.api(server.url, 'POST', '/v1/accounts', { body: {}, headers: via('2001:db8:77:1:ffff::1') });
  h.expectError(refused, 429, 'rate_limited');
  // The neighbouring /64 is someone else.
  h.expectError(await h.api(server.url, 'POST', '/v1/accounts', { body: {}, headers: via('2001:db8:77:2::1') }), 400,
    'invalid_request');
});

test('an evicted client starts fresh; a remembered one keeps its limit', async () => {
  const slow = '203.0.113.50';
  for (let i = 0; i < 10; i++) await h.api(server.url, 'POST', '/v1/accounts', { body: {}, headers: via(slow) });
  h.expectError(await h.api(server.url, 'POST', '/v1/accounts', { body: {}, headers: via(slow) }), 429, 'rate_limited');
  // TABLE_KEYS newer clients push it out of the table.
  await flood('POST', '/v1/accounts', {}, Array.from({ length: TABLE_KEYS }, (_, i) => v4(100000 + i)));
  h.expectError(await h.api(server.url, 'POST', '/v1/accounts', { body: {}, headers: via(slow) }), 400, 'invalid_request');
});
