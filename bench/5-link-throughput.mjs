// Figure 5, second half (run by 5-link-throughput.sh, whose first half
// measures link throughput with bench/linkload.c: a Node client used a whole
// core for 260 links/s and was what it measured).
//
// PIN effect: wrk -c64 on GET /v1/session of an unrelated account, in
//    interleaved rounds without and with a PIN loop running: P workers on two
//    accounts that have a PIN, each looping create → scan → approve with the
//    PIN (Argon2id verification) → complete. Reports the wrk figures of both,
//    the PIN approvals/s and their latency during the loaded rounds.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, registerPrimary, uniqueHandle } from '../tests/lib/harness.js';
import { linkOne, pct, f3, pause, QUICK, LW_ARGS, BENCH } from './wslib.mjs';

const log = (m) => console.error(`[link] ${m}`);
const WRK_SECONDS = Number(process.env.BENCH_WRK_SECONDS || (QUICK ? 2 : 5));
const ROUNDS = Number(process.env.BENCH_ROUNDS || (QUICK ? 1 : 3));
const PIN = '482916';

function wrk(url, token, secs) {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', [`-t${process.env.BENCH_THREADS || 1}`, `-c${process.env.BENCH_CONNS || 64}`, `-d${secs}s`,
      '--timeout', '5s', '-s', path.join(BENCH, 'session.lua'), `${url}/v1/session`], {
      env: { ...process.env, BENCH_HDR_NAME: 'Authorization', BENCH_HDR_VALUE: `Bearer ${token}` },
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), (secs + 30) * 1000);
    p.on('error', reject);
    p.on('exit', () => {
      clearTimeout(timer);
      const m = /^wrk_result (.*)$/m.exec(out);
      if (!m) { reject(new Error(`wrk: ${out.slice(0, 500)}`)); return; }
      const o = {};
      for (const kv of m[1].split(' ')) { const [k, v] = kv.split('='); o[k] = Number(v); }
      resolve(o);
    });
  });
}

const median = (xs) => pct(xs, 50);

async function pinEffect() {
  const server = await startServer({ args: [...LW_ARGS, '--credential-ttl', '2h', '--max-companions', '1000000'], readyTimeout: 30000 });
  try {
    const other = await registerPrimary(server.url, uniqueHandle('pinbench'));
    const pinned = [];
    for (let i = 0; i < 2; i++) {
      const p = await registerPrimary(server.url, uniqueHandle('pinacct'));
      const r = await p.post('/v1/pin', { new_pin: PIN });
      if (r.status !== 200) throw new Error(`set PIN: ${r.status} ${r.text}`);
      pinned.push(p);
    }
    await linkOne(server.url, pinned[0], { pin: PIN }); // warm-up
    await wrk(server.url, other.token, 1); // warm-up

    let running = false;
    const pinLat = [];
    let pinDone = 0, pinErrors = 0, throttled = 0;
    let firstError = null;
    const pinWorker = async (p) => {
      while (running) {
        const a = performance.now();
        try {
          await linkOne(server.url, p, { pin: PIN });
          pinLat.push(performance.now() - a);
          pinDone++;
        } catch (e) {
          if (/429/.test(e.message)) { throttled++; await pause(20); continue; }
          pinErrors++;
          firstError ??= e;
          if (pinErrors > 20) return;
        }
      }
    };
    const off = [], on = [];
    let pinSecs = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const a = await wrk(server.url, other.token, WRK_SECONDS);
      log(`round ${r} without PIN checks: ${JSON.stringify(a)}`);
      off.push(a);
      running = true;
      const workers = pinned.flatMap((p) => [pinWorker(p), pinWorker(p)]);
      await pause(300);
      const t0 = performance.now();
      const b = await wrk(server.url, other.token, WRK_SECONDS);
      pinSecs += (performance.now() - t0) / 1000;
      running = false;
      await Promise.all(workers);
      log(`round ${r} with PIN checks: ${JSON.stringify(b)}`);
      on.push(b);
    }
    if (firstError) log(`${pinErrors} PIN-loop errors, the first: ${firstError.message}`);
    const m = (xs, k) => median(xs.map((x) => x[k]));
    for (const [label, xs] of [['off', off], ['on', on]]) {
      console.log(`link pin_effect pin_checks=${label} rps=${m(xs, 'rps')} p50_ms=${f3(m(xs, 'p50_ms'))} ` +
        `p99_ms=${f3(m(xs, 'p99_ms'))} non2xx=${xs.reduce((s, x) => s + x.non2xx + x.errors, 0)}`);
    }
    console.log(`link pin_loop approvals=${pinDone} approvals_per_s=${(pinDone / Math.max(pinSecs, 1e-3)).toFixed(1)} ` +
      `link_with_pin_p50_ms=${f3(median(pinLat))} link_with_pin_p99_ms=${f3(pct(pinLat, 99))} throttled_429=${throttled} errors=${pinErrors}`);
    const r99 = m(on, 'p99_ms') / m(off, 'p99_ms');
    console.log(`link ratio pin_on/off p50=${f3(m(on, 'p50_ms') / m(off, 'p50_ms'))} p99=${f3(r99)} rps=${f3(m(on, 'rps') / m(off, 'rps'))}`);
    return pinErrors === 0;
  } finally {
    await server.stop({ timeout: 30000 }).catch((e) => log(`server stop: ${e.message.slice(0, 300)}`));
  }
}

let ok = true;
for (const [name, fn] of [['pin', pinEffect]]) {
  ok = (await fn().catch((e) => { log(`${name}: ${e.stack || e.message}`); return false; })) && ok;
}
process.exit(ok ? 0 : 1);
