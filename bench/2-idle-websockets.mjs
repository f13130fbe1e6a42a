// Figure 2 (run by 2-idle-websockets.sh, which raises the descriptor limit and
// builds wsload).
//
// N idle sockets of N devices (N = 15,000; 10,000 as well if that fails;
// BENCH_WS_COUNT overrides), one socket per device (the server caps the live
// sockets of one device):
//   - a fresh server (credential TTL 2 h); ceil(N / 1,000) accounts, each with
//     up to 1,000 companions linked over HTTP (create → scan → approve →
//     complete, concurrent workers). Not one account of N: approving and
//     completing a link count the account's companions (O(companions) each),
//     so one huge account makes linking quadratic; and the periodic sweep is
//     set to 1 h because its primary-inactivity query is O(companions²) per
//     account (figure 3 times one sweep at 1,000 companions);
//   - server VmRSS before; wsload opens one socket per companion (its own
//     Bearer token) from 127.0.0.2–127.0.0.250 (~60 per address) and keeps
//     them idle; VmRSS after (the growth divided by the sockets opened);
//   - one account-wide event per account, all at once: one more companion is
//     linked to each account, so every socket must receive device.linked;
//     wsload reports how many did, and when the last did (after the last answer).
//   If fewer than N companions could be linked before the deadline, the figure
//   is taken with those (conns= says how many).
import fs from 'node:fs';
import path from 'node:path';
import { startServer, registerPrimary, uniqueHandle, connectWs, tempDir } from '../tests/lib/harness.js';
import { wsload, rssKb, fdCount, monoNs, pause, QUICK, linkMany, linkOne } from './wslib.mjs';
import { LW_ARGS } from './wslib.mjs';

const N = Number(process.env.BENCH_WS_COUNT || (QUICK ? 1500 : 15000));
const FALLBACK = QUICK ? 1000 : 10000;
const SRC = '127.0.0.2-127.0.0.250'; // ~60 sockets per address (servers cap sockets per address)
const log = (m) => console.error(`[idle_ws] ${m}`);
const dir = tempDir('lw-bench-ws-');

async function warmUp(server, dev) {
  // The first socket and request paths allocate their long-lived state.
  for (let i = 0; i < 50; i++) await dev.session();
  const warm = [];
  for (let i = 0; i < 4; i++) warm.push(await connectWs(server.url, dev.token));
  await Promise.all(warm.map((w) => w.close()));
  await pause(500);
}

/** Opens n sockets with wsload, measures RSS, triggers one push (trigger()), reports. */
async function openAndPush(label, server, n, tokenArgs, trigger, event) {
  const pid = server.proc.pid;
  const rss0 = rssKb(pid);
  const wl = wsload(['-p', String(server.port), '-n', String(n), ...tokenArgs, '-s', SRC,
    '-e', event, '-o', '200', '-w', '30', '-k', '256']);
  try {
    const ready = await wl.line('ready', 240000);
    await pause(1000); // let the last writes and frees settle
    const rss1 = rssKb(pid);
    const fds = fdCount(pid);
    const opened = Number(ready.opened);
    const perConn = opened > 0 ? ((rss1 - rss0) * 1024) / opened : NaN;
    log(`${label} N=${n}: opened ${opened} in ${ready.ms} ms, failed ${ready.failed}` +
      `${ready.error ? ` (${ready.error})` : ''}; RSS ${rss0} -> ${rss1} KiB; server descriptors ${fds}`);
    const t0 = monoNs();
    await trigger();
    const tAnswer = monoNs();
    const res = await wl.line('expect', 60000);
    const got = Number(res.got);
    const of = Number(res.of);
    const lastMs = res.last_ns !== '0' ? (Number(BigInt(res.last_ns) - tAnswer) / 1e6).toFixed(1) : 'nan';
    const pushAll = got === of && of === n;
    console.log(`idle_ws ${label} conns=${n} opened=${opened} failed=${ready.failed} open_ms=${ready.ms} ` +
      `rss_before_kb=${rss0} rss_after_kb=${rss1} bytes_per_conn=${Math.round(perConn)} ` +
      `push_all=${pushAll ? 'yes' : 'no'} push_got=${got}/${of} push_last_ms_after_answer=${lastMs} ` +
      `trigger_ms=${(Number(tAnswer - t0) / 1e6).toFixed(1)}`);
    return { ok: opened === n && pushAll, perConn };
  } finally {
    await wl.kill();
  }
}

async function devices() {
  const PER = 1000;
  const accounts = Math.ceil(N / PER);
  const server = await startServer({
    args: [...LW_ARGS, '--credential-ttl', '2h', '--sweep-interval', '1h', '--max-companions', String(PER + 10)],
    readyTimeout: 30000,
  });
  try {
    const prims = [];
    for (let i = 0; i < accounts; i++) prims.push(await registerPrimary(server.url, uniqueHandle('wsidle')));
    const t0 = Date.now();
    const stats = {};
    const per = prims.map((_, i) => Math.min(PER, N - i * PER));
    const lists = await Promise.all(prims.map((p, i) => linkMany(server.url, p, per[i], {
      concurrency: Math.max(1, Math.ceil(16 / accounts)), deadlineMs: QUICK ? 60000 : 900000, stats, partial: true,
    })));
    const comps = lists.flat();
    const n = comps.length;
    log(`linked ${n} companions on ${accounts} accounts in ${Date.now() - t0} ms` +
      `${stats.riskAccepted ? ` (${stats.riskAccepted} risk verdicts accepted)` : ''}`);
    const file = path.join(dir, 'tokens.txt');
    fs.writeFileSync(file, comps.map((c) => c.token).join('\n') + '\n');
    await warmUp(server, comps[0]);
    const trigger = () => Promise.all(prims.map((p) => linkOne(server.url, p)));
    const a = await openAndPush('devices', server, n, ['-t', file], trigger, 'device.linked');
    console.log(`idle_ws target devices conns=${n} bytes_per_conn<=4096:${a.perConn <= 4096 ? 'met' : 'MISSED'} push_all:${a.ok ? 'met' : 'MISSED'}`);
    if (!a.ok && n > FALLBACK) {
      log(`${n} did not all open or receive the push; trying ${FALLBACK} on the same server`);
      await pause(2000);
      await openAndPush('devices', server, FALLBACK, ['-t', file], trigger, 'device.linked');
    }
    return a.ok && n === N;
  } finally {
    await server.stop({ timeout: 30000 }).catch((e) => log(`server stop: ${e.message.slice(0, 300)}`));
  }
}

let ok = true;
for (const [name, fn] of [['devices', devices]]) {
  ok = (await fn().catch((e) => { log(`${name} failed: ${e.stack || e.message}`); return false; })) && ok;
}
process.exit(ok ? 0 : 1);
