// Helpers of the Node-driven benchmarks: the wsload tool (bench/wsload.c) as a
// child process, key=value line parsing, percentiles, RSS. Only 127.0.0.1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BENCH = path.dirname(fileURLToPath(import.meta.url));
export const QUICK = process.env.BENCH_QUICK === '1';

const kids = new Set();
process.on('exit', () => { for (const k of kids) { try { k.kill('SIGKILL'); } catch { /* gone */ } } });

/** "a=1 b=x c=\"quoted text\"" -> {a:'1', b:'x', c:'quoted text'} (first word as .kind) */
export function kv(line) {
  const o = { kind: line.split(' ')[0] };
  for (const m of line.matchAll(/(\S+?)=("([^"]*)"|\S*)/g)) o[m[1]] = m[3] ?? m[2];
  return o;
}

/**
 * Starts wsload (path in env WSLOAD) with args; returns {proc, line(kind, ms),
 * exited}. line() resolves with the parsed next line of that kind.
 */
export function wsload(args) {
  const bin = process.env.WSLOAD || path.join(BENCH, '.build', 'wsload');
  const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  kids.add(proc);
  const lines = [];
  const waiters = [];
  let stderr = '';
  let ended = false;
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { stderr += d; });
  const rl = readline.createInterface({ input: proc.stdout });
  const wake = () => { for (const w of [...waiters]) w(); };
  rl.on('line', (l) => { lines.push(l); wake(); });
  const exited = new Promise((r) => proc.once('exit', (code, sig) => { kids.delete(proc); ended = true; wake(); r({ code, sig }); }));
  return {
    proc,
    exited,
    stderr: () => stderr,
    line(kind, ms) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = lines.findIndex((l) => l.startsWith(kind + ' '));
          if (i >= 0) { done(); resolve(kv(lines.splice(i, 1)[0])); return; }
          if (ended) { done(); reject(new Error(`wsload ended without a "${kind}" line; stderr: ${stderr.slice(-500)}`)); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no "${kind}" line from wsload in ${ms} ms`)); }, ms);
        const done = () => { clearTimeout(timer); const k = waiters.indexOf(check); if (k >= 0) waiters.splice(k, 1); };
        waiters.push(check);
        check();
      });
    },
    kill() { try { proc.kill('SIGTERM'); } catch { /* gone */ } return exited; },
  };
}

export function rssKb(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(s)[1]);
}

export function fdCount(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return -1; }
}

/** Nearest-rank percentile of numbers. */
export function pct(xs, p) {
  if (!xs.length) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
}

/** Extra server arguments of every benchmark (bench/lib.sh: "--rate off" when the binary has it). */
export const LW_ARGS = (process.env.BENCH_LW_ARGS || '').split(' ').filter(Boolean);

export const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'nan');
export const monoNs = () => process.hrtime.bigint();
export const pause = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Linking companions over raw HTTP (keep-alive fetch), as fast as the server allows.
import { createLinkRequest, scan, approve, complete, companionFrom } from '../tests/lib/harness.js';

/**
 * create → scan → approve → complete; returns the companion Device. A risk
 * verdict that needs acceptance is accepted (counted in stats.riskAccepted).
 */
export async function linkOne(url, primary, { pin, stats } = {}) {
  const req = await createLinkRequest(url, {});
  const s = await scan(primary, req.payload);
  if (s.status !== 200) throw new Error(`scan: ${s.status} ${s.text.slice(0, 200)}`);
  let a = await approve(primary, req.id, req.key.pub, { pin });
  if (a.status === 409 && a.json?.error?.code === 'risk_not_accepted') {
    if (stats) stats.riskAccepted = (stats.riskAccepted || 0) + 1;
    a = await approve(primary, req.id, req.key.pub, { pin, accept_risk: true });
  }
  if (a.status !== 200) throw new Error(`approve: ${a.status} ${a.text.slice(0, 200)}`);
  const c = await complete(req);
  if (c.status !== 201) throw new Error(`complete: ${c.status} ${c.text.slice(0, 200)}`);
  return companionFrom(req, c.json);
}

/**
 * Links up to n companions with `concurrency` workers, until done or deadline
 * (ms). Throws if fewer were linked, unless `partial` (then returns those).
 */
export async function linkMany(url, primary, n, { concurrency = 8, deadlineMs = 120000, pin, stats = {}, partial = false } = {}) {
  const out = [];
  const end = Date.now() + deadlineMs;
  let next = 0;
  let errors = 0;
  let firstError = null;
  const worker = async () => {
    while (next < n && Date.now() < end && errors < 20) {
      next++;
      try {
        out.push(await linkOne(url, primary, { pin, stats }));
      } catch (e) {
        errors++;
        if (!firstError) firstError = e;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (partial && out.length > 0) return out;
  if (out.length < n && firstError) firstError.message = `linked ${out.length}/${n}: ${firstError.message}`;
  if (out.length < n) throw firstError || new Error(`linked only ${out.length}/${n} before the deadline`);
  return out;
}
