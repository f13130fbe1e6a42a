// Small helpers for the shell benchmark scripts, on top of the integration-test
// harness (tests/lib/harness.js): Ed25519 keys and the signed messages of
// docs/api.md. Only 127.0.0.1.
//
//   node tool.mjs register URL [HANDLE]      prints a primary's session token
//   node tool.mjs node-login URL             prints the Cookie of a new Node-baseline session
//   node tool.mjs check URL HEADER VALUE     one GET /v1/session; exits 1 unless 200
//   node tool.mjs link-loop URL SECONDS [MAX] links companions (no PIN) with 8 workers; prints the count
//   node tool.mjs link-tokens URL N FILE     a primary links N companions; their tokens go to FILE
import fs from 'node:fs';
import { registerPrimary, uniqueHandle } from '../tests/lib/harness.js';
import { linkOne, linkMany } from './wslib.mjs';

const [cmd, url, ...rest] = process.argv.slice(2);
if (!url || !/^http:\/\/127\.\d+\.\d+\.\d+:\d+$/.test(url)) {
  console.error('tool.mjs: a http://127.x.x.x:PORT URL is required');
  process.exit(2);
}

if (cmd === 'register') {
  const p = await registerPrimary(url, rest[0] || uniqueHandle('bench'));
  console.log(p.token);
} else if (cmd === 'node-login') {
  const res = await fetch(`${url}/login`, { method: 'POST', signal: AbortSignal.timeout(10000) });
  const c = res.headers.get('set-cookie');
  if (res.status !== 204 || !c) {
    console.error(`node-login: ${res.status} ${await res.text()}`);
    process.exit(1);
  }
  console.log(c.split(';')[0]);
} else if (cmd === 'check') {
  const [name, value] = rest;
  const res = await fetch(`${url}/v1/session`, { headers: name ? { [name]: value } : {}, signal: AbortSignal.timeout(10000) });
  const body = await res.text();
  if (res.status !== 200 && res.status !== 204) {
    console.error(`check: ${res.status} ${body.slice(0, 300)}`);
    process.exit(1);
  }
  console.log(`${res.status} ${body.length}`);
} else if (cmd === 'link-loop') {
  const end = Date.now() + Number(rest[0] || 10) * 1000;
  const max = Number(rest[1] || 100000);
  const prims = [];
  for (let i = 0; i < 4; i++) prims.push(await registerPrimary(url, uniqueHandle('loop')));
  let n = 0;
  const worker = async (p) => { while (Date.now() < end && n < max) { await linkOne(url, p); n++; } };
  await Promise.all(prims.flatMap((p) => [worker(p), worker(p)]));
  console.log(n);
} else if (cmd === 'link-tokens') {
  const p = await registerPrimary(url, uniqueHandle('tokens'));
  const comps = await linkMany(url, p, Number(rest[0]), { concurrency: 8, deadlineMs: 300000 });
  fs.writeFileSync(rest[1], comps.map((c) => c.token).join('\n') + '\n');
  console.log(comps.length);
} else {
  console.error('usage: node tool.mjs register|node-login|check URL …');
  process.exit(2);
}
