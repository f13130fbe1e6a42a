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

export const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'nan');
export const monoNs = () => process.hrtime.bigint();
export const pause = (ms) => new Promise((r) => setTimeout(r, ms));
