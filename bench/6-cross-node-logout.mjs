// Figure 6 (run by 6-cross-node-logout.sh): like figure 3, but the sockets are
// on node A and logout-all is answered by node B; events cross through
// PostgreSQL LISTEN/NOTIFY (src/server/bus/relay.c).
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, registerPrimary, uniqueHandle, tempDir } from '../tests/lib/harness.js';
import { wsload, monoNs, pct, f3, QUICK, linkMany, LW_ARGS } from './wslib.mjs';

const log = (m) => console.error(`[cross_node] ${m}`);
const base = process.env.LW_BENCH_PG_URL;
const dir = tempDir('lw-bench-xn-');
const ms = (a, b) => Number(a - b) / 1e6;

async function plan(c, runs) {
  const schema = `bench_${c}_${process.pid}`;
  execFileSync('psql', [base, '-qc', `CREATE SCHEMA ${schema}`], { stdio: 'pipe' });
  const db = `${base}&options=-csearch_path%3D${schema}`;
  const args = [...LW_ARGS, '--db', db, '--credential-ttl', '2h', '--sweep-interval', '1h',
    '--max-companions', String(Math.max(c, 4))];
  const A = await startServer({ args, readyTimeout: 30000 });
  const bDir = tempDir('lw-bench-node-');
  fs.copyFileSync(path.join(A.dataDir, 'server.key'), path.join(bDir, 'server.key'));
  const B = await startServer({ dataDir: bDir, args: [...args, '--public-origin', A.url], readyTimeout: 30000 });
  const ended = [], closed = [];
  let incomplete = 0;
  try {
    const primary = await registerPrimary(B.url, uniqueHandle('xnode'));
    for (let r = 0; r < runs; r++) {
      const comps = await linkMany(A.url, primary, c, { concurrency: 8, deadlineMs: 120000 });
      const file = path.join(dir, `tokens-${c}.txt`);
      fs.writeFileSync(file, comps.map((d) => d.token).join('\n') + '\n');
      const wl = wsload(['-p', String(A.port), '-n', String(c), '-t', file, '-s', '127.0.0.2-127.0.0.250',
        '-e', 'session.ended', '-C', '-o', '60', '-w', '15']);
      try {
        const ready = await wl.line('ready', 90000);
        if (Number(ready.opened) !== c) throw new Error(`only ${ready.opened}/${c} sockets opened`);
        const res = await primary.post('/v1/devices/logout-all', {});
        const tAns = monoNs();
        if (res.status !== 200 || res.json?.ended !== c) throw new Error(`logout-all: ${res.status}`);
        const e = await wl.line('expect', 30000);
        if (Number(e.got) !== c || Number(e.closed) !== c) { incomplete++; continue; }
        ended.push(Math.max(0, ms(BigInt(e.last_ns), tAns)));
        closed.push(Math.max(0, ms(BigInt(e.closed_last_ns), tAns)));
      } finally {
        await wl.kill();
      }
    }
  } finally {
    await B.stop({ timeout: 30000 }).catch(() => {});
    await A.stop({ timeout: 30000 }).catch(() => {});
  }
  console.log(`cross_node companions=${c} runs=${ended.length} incomplete=${incomplete} ` +
    `ended_p50_ms=${f3(pct(ended, 50))} ended_p99_ms=${f3(pct(ended, 99))} closed_p99_ms=${f3(pct(closed, 99))}`);
  console.log(`cross_node target companions=${c} closed_p99<50ms:${pct(closed, 99) < 50 && incomplete === 0 ? 'met' : 'MISSED'}`);
  return incomplete === 0 && ended.length > 0;
}

let ok = true;
for (const [c, runs] of [[4, QUICK ? 5 : 40], [100, QUICK ? 2 : 20]]) {
  ok = (await plan(c, runs).catch((e) => { log(`companions=${c}: ${e.stack || e.message}`); return false; })) && ok;
}
process.exit(ok ? 0 : 1);
