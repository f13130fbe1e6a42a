// Figure 2 (run by 2-idle-websockets.sh, which raises the descriptor limit and
// builds wsload). For each count N (15,000; 10,000 too if 15,000 fails; or
// BENCH_WS_COUNTS=a,b):
//   - a fresh server (credential TTL 2 h), a primary registered over HTTP, a
//     short warm-up (requests and a few sockets opened and closed);
//   - server VmRSS before; wsload opens N sockets with the primary's Bearer
//     credential from 127.0.0.2–127.0.0.9 and keeps them idle; VmRSS after;
//   - one account-wide event: a companion is linked (create → scan → approve →
//     complete), so every socket of the primary must receive device.linked;
//     wsload reports how many did, and when the last did.
import { startServer, registerPrimary, linkCompanionApi, uniqueHandle, connectWs } from '../tests/lib/harness.js';
import { wsload, rssKb, fdCount, monoNs, pause, QUICK } from './wslib.mjs';

const counts = (process.env.BENCH_WS_COUNTS || (QUICK ? '2000' : '15000')).split(',').map(Number);
const fallback = process.env.BENCH_WS_COUNTS ? [] : [QUICK ? 1000 : 10000];
const log = (m) => console.error(`[idle_ws] ${m}`);

async function measure(n) {
  const server = await startServer({ args: ['--credential-ttl', '2h'], readyTimeout: 30000 });
  const pid = server.proc.pid;
  let wl;
  try {
    const primary = await registerPrimary(server.url, uniqueHandle('wsidle'));
    // Warm-up: the first socket and request paths allocate their long-lived state.
    for (let i = 0; i < 50; i++) await primary.session();
    const warm = [];
    for (let i = 0; i < 20; i++) warm.push(await connectWs(server.url, primary.token));
    await Promise.all(warm.map((w) => w.close()));
    await pause(500);
    const rss0 = rssKb(pid);
    wl = wsload(['-p', String(server.port), '-n', String(n), '-T', primary.token, '-s', '127.0.0.2-127.0.0.9',
      '-e', 'device.linked', '-o', '150', '-w', '30', '-k', '256']);
    const ready = await wl.line('ready', 180000);
    await pause(1000); // let the last writes and frees settle
    const rss1 = rssKb(pid);
    const fds = fdCount(pid);
    const opened = Number(ready.opened);
    const perConn = opened > 0 ? ((rss1 - rss0) * 1024) / opened : NaN;
    log(`N=${n}: opened ${opened} in ${ready.ms} ms, failed ${ready.failed}${ready.error ? ` (${ready.error})` : ''}; ` +
      `RSS ${rss0} -> ${rss1} KiB; server descriptors ${fds}`);
    // One account-wide push: a new companion's device.linked goes to every socket of the primary.
    const t0 = monoNs();
    await linkCompanionApi(server.url, primary);
    const tAnswer = monoNs();
    const res = await wl.line('expect', 60000);
    const got = Number(res.got);
    const of = Number(res.of);
    const lastMs = Number(BigInt(res.last_ns || '0') - tAnswer) / 1e6;
    const rss2 = rssKb(pid);
    console.log(`idle_ws conns=${n} opened=${opened} failed=${ready.failed} open_ms=${ready.ms} ` +
      `rss_before_kb=${rss0} rss_after_kb=${rss1} bytes_per_conn=${Math.round(perConn)} ` +
      `push_all=${got === of && of === n ? 'yes' : 'no'} push_got=${got}/${of} ` +
      `push_last_ms_after_answer=${lastMs.toFixed(1)} link_ms=${(Number(tAnswer - t0) / 1e6).toFixed(1)} rss_after_push_kb=${rss2}`);
    console.log(`idle_ws target conns=${n} bytes_per_conn<=4096:${perConn <= 4096 ? 'met' : 'MISSED'}`);
    return opened === n && got === n;
  } finally {
    if (wl) await wl.kill();
    await server.stop({ timeout: 20000 }).catch((e) => log(`server stop: ${e.message.slice(0, 300)}`));
  }
}

let allOk = true;
for (const n of counts) {
  const ok = await measure(n).catch((e) => { log(`N=${n} failed: ${e.message}`); return false; });
  if (!ok) {
    allOk = false;
    for (const m of fallback) await measure(m).catch((e) => log(`N=${m} failed: ${e.message}`));
  }
}
process.exit(allOk ? 0 : 1);
