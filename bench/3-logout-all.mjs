// Figure 3 (run by 3-logout-all.sh). Each run: link C companions over HTTP,
// wsload opens one socket per companion (from 127.0.0.2–127.0.0.250) and waits
// for session.ended on all of them and for the server's close of each; the
// primary calls POST /v1/devices/logout-all; the times wsload saw the last
// session.ended and the last close (CLOCK_MONOTONIC, the clock of
// process.hrtime) are compared with the moment the API answer was read.
// An arrival before the answer counts as 0 ms (and is counted in early=).
// The periodic sweep is set to 1 h so that it cannot land inside a run; one
// sweep (admin purge over the control socket: the same lw_sweep_run) is timed
// separately with the C companions linked, and printed as its own line.
import fs from 'node:fs';
import path from 'node:path';
import { startServer, registerPrimary, uniqueHandle, tempDir, controlRequest } from '../tests/lib/harness.js';
import { wsload, monoNs, pct, f3, QUICK, linkMany } from './wslib.mjs';
import { LW_ARGS } from './wslib.mjs';

const log = (m) => console.error(`[logout_all] ${m}`);
const dir = tempDir('lw-bench-lo-');
const plans = [
  { c: 4, runs: QUICK ? 5 : 50, budgetMs: QUICK ? 30000 : 180000 },
  { c: 1000, runs: QUICK ? 2 : 50, budgetMs: QUICK ? 60000 : 360000 },
];
const ms = (a, b) => Number(a - b) / 1e6;

async function plan({ c, runs, budgetMs }) {
  const server = await startServer({ args: [...LW_ARGS, '--credential-ttl', '2h', '--sweep-interval', '1h', '--max-companions', String(Math.max(c, 4))], readyTimeout: 30000 });
  const ended = [], closed = [], fromRequest = [], answerMs = [];
  let early = 0, incomplete = 0;
  const end = Date.now() + budgetMs;
  try {
    const primary = await registerPrimary(server.url, uniqueHandle('logoutall'));
    for (let r = 0; r < runs && Date.now() < end; r++) {
      const comps = await linkMany(server.url, primary, c, { concurrency: 16, deadlineMs: 120000 });
      if (r === 0) {
        const t = monoNs();
        const ans = await controlRequest(server, { cmd: 'purge' }, 120000);
        console.log(`logout_all sweep companions=${c} sweep_ms=${ms(monoNs(), t).toFixed(1)} ok=${ans.ok}`);
      }
      const file = path.join(dir, `tokens-${c}.txt`);
      fs.writeFileSync(file, comps.map((d) => d.token).join('\n') + '\n');
      const wl = wsload(['-p', String(server.port), '-n', String(c), '-t', file, '-s', '127.0.0.2-127.0.0.250',
        '-e', 'session.ended', '-C', '-o', '60', '-w', '15']);
      try {
        const ready = await wl.line('ready', 90000);
        if (Number(ready.opened) !== c) throw new Error(`only ${ready.opened}/${c} sockets opened: ${ready.error || ''}`);
        const t0 = monoNs();
        const res = await primary.post('/v1/devices/logout-all', {});
        const tAns = monoNs();
        if (res.status !== 200 || res.json?.ended !== c) throw new Error(`logout-all: ${res.status} ${res.text.slice(0, 200)}`);
        const e = await wl.line('expect', 30000);
        if (Number(e.got) !== c || Number(e.closed) !== c) {
          incomplete++;
          log(`run ${r}: session.ended on ${e.got}/${c}, closed ${e.closed}/${c}`);
          continue;
        }
        const last = BigInt(e.last_ns), lastClosed = BigInt(e.closed_last_ns);
        if (last < tAns) early++;
        ended.push(Math.max(0, ms(last, tAns)));
        closed.push(Math.max(0, ms(lastClosed, tAns)));
        fromRequest.push(ms(last, t0));
        answerMs.push(ms(tAns, t0));
      } finally {
        await wl.kill();
      }
    }
  } finally {
    await server.stop({ timeout: 30000 }).catch((e) => log(`server stop: ${e.message.slice(0, 300)}`));
  }
  const n = ended.length;
  console.log(`logout_all companions=${c} runs=${n} incomplete=${incomplete} early=${early} ` +
    `ended_p50_ms=${f3(pct(ended, 50))} ended_p99_ms=${f3(pct(ended, 99))} ended_max_ms=${f3(Math.max(...ended))} ` +
    `closed_p50_ms=${f3(pct(closed, 50))} closed_p99_ms=${f3(pct(closed, 99))} ` +
    `answer_p50_ms=${f3(pct(answerMs, 50))} from_request_p99_ms=${f3(pct(fromRequest, 99))}`);
  const p99 = pct(closed, 99);
  console.log(`logout_all target companions=${c} closed_p99<10ms:${p99 < 10 && incomplete === 0 ? 'met' : 'MISSED'}`);
  return n > 0 && incomplete === 0;
}

let ok = true;
for (const p of plans) ok = (await plan(p).catch((e) => { log(`companions=${p.c}: ${e.stack || e.message}`); return false; })) && ok;
process.exit(ok ? 0 : 1);
