// Heap growth per socket by allocation site, from two massif detailed
// snapshots of the same server process (before and after opening N sockets):
//   node massif-sites.mjs BEFORE.ms AFTER.ms N
// Prints "profile massif idle_ws heap_bytes_per_socket=…" and, for each
// top-level allocation site that grew, "profile massif idle_ws site_bytes_per_socket=… SITE <- CALLER".
import { spawnSync } from 'node:child_process';

const [before, after, nArg] = process.argv.slice(2);
const n = Number(nArg);

function parse(file) {
  const out = spawnSync('ms_print', ['--threshold=0.5', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout || '';
  const lines = out.split('\n');
  const sites = new Map();
  let total = 0;
  const clean = (t) => t.replace(/^0x[0-9A-F]+: /, '').replace(/ \(in .*\/([^/]+)\)$/, ' [$1]');
  const add = (key, name, bytes) => sites.set(key, { name, bytes: (sites.get(key)?.bytes || 0) + bytes });
  // Top-level sites ("->") split by their direct callers ("| ->"), keyed with the
  // code addresses (the same process, so they match between the two snapshots).
  let top = null;
  for (const line of lines) {
    let m = /^->\d+\.\d+% \(([\d,]+)B\) (.*)$/.exec(line);
    if (m) {
      if (top && !top.children) add(top.key, top.name, top.bytes);
      top = { key: m[2], name: clean(m[2]), bytes: Number(m[1].replace(/,/g, '')), children: 0 };
      continue;
    }
    m = /^\| ->\d+\.\d+% \(([\d,]+)B\) (.*)$/.exec(line);
    if (m && top) {
      top.children++;
      add(`${top.key} <- ${m[2]}`, `${top.name} <- ${clean(m[2])}`, Number(m[1].replace(/,/g, '')));
    }
  }
  if (top && !top.children) add(top.key, top.name, top.bytes);
  // mem_heap_B + mem_heap_extra_B of the (only) snapshot
  const raw = spawnSync('cat', [file], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout || '';
  for (const k of ['mem_heap_B', 'mem_heap_extra_B']) {
    const mm = new RegExp(`^${k}=(\\d+)`, 'm').exec(raw);
    if (mm) total += Number(mm[1]);
  }
  return { sites, total };
}

const a = parse(before);
const b = parse(after);
console.log(`profile massif idle_ws sockets=${n} heap_bytes_per_socket=${Math.round((b.total - a.total) / n)} (malloc'd bytes + allocator overhead)`);
const grown = [];
for (const [key, v] of b.sites) {
  const d = v.bytes - (a.sites.get(key)?.bytes || 0);
  if (d / n >= 16 && !/below massif's threshold/.test(v.name)) grown.push([d / n, v.name]);
}
grown.sort((x, y) => y[0] - x[0]);
for (const [per, name] of grown.slice(0, 8)) console.log(`profile massif idle_ws site_bytes_per_socket=${Math.round(per)} ${name}`);
