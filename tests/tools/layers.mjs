#!/usr/bin/env node
// layers.mjs — every #include in src/server/ goes down the layers, never up.
//
// The server is one folder per layer, in this order (docs/architecture.md):
//   core <- store <- domain <- bus <- api <- transport <- app
// A file may include headers of its own layer, of the layers below it, of
// src/common/ and include/, and system headers. An include of a layer above is
// an error, unless tests/tools/layers.allow lists that exact edge
// ("FILE -> HEADER", one a line): the known up-calls that later steps of the
// layering remove. An allowed edge that no longer exists is an error too, so
// the list only shrinks. No .c or .h may sit loose in src/server/.
//
// Usage: node tests/tools/layers.mjs [--graph]   (--graph prints the layer graph)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SERVER = path.join(REPO, 'src', 'server');
export const LAYERS = ['core', 'store', 'domain', 'bus', 'api', 'transport', 'app'];
const rank = new Map(LAYERS.map((l, i) => [l, i]));

const problems = [];
const loose = fs.readdirSync(SERVER).filter((n) => /\.[ch]$/.test(n));
for (const n of loose) problems.push(`src/server/${n}: loose in src/server/ (put it in its layer's folder)`);

// Which layer defines each header.
const headerLayer = new Map();
const files = [];
for (const layer of fs.readdirSync(SERVER)) {
  const dir = path.join(SERVER, layer);
  if (!fs.statSync(dir).isDirectory()) continue;
  if (!rank.has(layer)) {
    problems.push(`src/server/${layer}/: not a layer (${LAYERS.join(', ')})`);
    continue;
  }
  for (const n of fs.readdirSync(dir).filter((x) => /\.[ch]$/.test(x)).sort()) {
    if (n.endsWith('.h')) {
      if (headerLayer.has(n)) problems.push(`${n}: in two layers (${headerLayer.get(n)}, ${layer})`);
      headerLayer.set(n, layer);
    }
    files.push({ layer, name: n, rel: `${layer}/${n}` });
  }
}

const allowFile = path.join(REPO, 'tests', 'tools', 'layers.allow');
const allowed = new Set(fs.existsSync(allowFile)
  ? fs.readFileSync(allowFile, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean)
  : []);
const used = new Set();
const graph = new Map();

for (const f of files) {
  const text = fs.readFileSync(path.join(SERVER, f.rel), 'utf8');
  for (const m of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
    const target = headerLayer.get(path.basename(m[1]));
    if (!target) continue; // src/common, include/, generated: below every layer
    const edge = `${f.layer} -> ${target}`;
    graph.set(edge, (graph.get(edge) || 0) + 1);
    if (rank.get(target) <= rank.get(f.layer)) continue;
    const key = `${f.rel} -> ${m[1]}`;
    if (allowed.has(key)) {
      used.add(key);
      continue;
    }
    problems.push(`src/server/${f.rel} includes ${m[1]} of ${target}, a layer above ${f.layer}`);
  }
}
for (const a of allowed) {
  if (!used.has(a)) problems.push(`tests/tools/layers.allow: "${a}" is no longer an up-call: remove the line`);
}

if (process.argv.includes('--graph')) {
  for (const [e, n] of [...graph].sort()) console.log(`${e} (${n})`);
}
if (problems.length) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log(`layers: ${files.length} files in ${LAYERS.length} layers; ${allowed.size} known up-calls left (tests/tools/layers.allow)`);
