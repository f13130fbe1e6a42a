// Several Linkward nodes on the PostgreSQL test server (tests/tools/pg_start.sh,
// started by the "postgres" CTest fixture, which writes its URL to the file
// named by LINKWARD_TEST_PG): a fresh schema per cluster, the nodes sharing one
// server key as an operator would copy it, and a TCP proxy that plays the
// network between one node and the database.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as h from './harness.js';

export class PgNodes {
  /** prefix: of the schema names, so that two test files never share one. */
  constructor(prefix) {
    this.prefix = prefix;
    this.base = null; // the PostgreSQL server's URL
    this.nodes = [];
  }

  /** Reads the fixture's URL (call from before()). */
  open() {
    const file = process.env.LINKWARD_TEST_PG;
    assert.ok(file, 'LINKWARD_TEST_PG is set by the postgres CTest fixture');
    this.base = fs.readFileSync(file, 'utf8').trim();
  }

  /** Runs one SQL text on the server (psql -qAt); its output, trimmed. */
  psql(sql) {
    return execFileSync('psql', [this.base, '-qAtc', sql], { stdio: 'pipe', encoding: 'utf8' }).trim();
  }

  /** A fresh schema, reached through search_path: a database URL of its own. */
  freshDb(name) {
    const schema = `${this.prefix}_${name}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
    this.psql(`CREATE SCHEMA ${schema}`);
    return `${this.base}&options=-csearch_path%3D${schema}`;
  }

  /**
   * N nodes on one fresh database; they share the first node's server key and
   * name its origin in their QR codes (one site behind a load balancer).
   * perNode(i, db) gives node i extra arguments (say, a --db-listen; may be async).
   */
  async cluster(n, name, args = [], perNode = () => []) {
    const db = this.freshDb(name);
    const first = await h.startServer({ args: ['--db', db, ...args, ...(await perNode(0, db))] });
    const started = [first];
    for (let i = 1; i < n; i++) {
      const dir = h.tempDir('lw-node-');
      fs.copyFileSync(path.join(first.dataDir, 'server.key'), path.join(dir, 'server.key'));
      fs.chmodSync(path.join(dir, 'server.key'), 0o600);
      started.push(await h.startServer({
        dataDir: dir, args: ['--db', db, '--public-origin', first.url, ...args, ...(await perNode(i, db))],
      }));
    }
    this.nodes.push(...started);
    return started;
  }

  /** Stops every node started (call from after()). */
  async stopAll() {
    for (const s of this.nodes) await s.stop().catch(() => {});
  }
}

/**
 * A TCP proxy in front of PostgreSQL that the test controls, standing for the
 * network between one node and the database:
 *   refuse()  new connections are closed at once (existing ones still work)
 *   freeze()  also: existing connections go silent both ways — bytes are
 *             dropped, nothing is closed (a half-open connection)
 *   restore() frozen connections are cut, new ones are let through again
 * url: the database URL through the proxy; ports(): the proxy's own ports
 * towards PostgreSQL (pg_stat_activity.client_port of the proxied backends).
 */
export async function pgProxy(dbUrl) {
  const target = new URL(dbUrl.replace(/^postgres(ql)?:/, 'http:'));
  const pairs = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) { client.destroy(); return; }
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const drop = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('data', (d) => { if (!pair.frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!pair.frozen) client.write(d); });
    for (const sock of [client, upstream]) {
      sock.on('error', drop);
      sock.on('close', () => { if (!pair.frozen) drop(); });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    url: dbUrl.replace(`:${target.port}/`, `:${port}/`),
    ports: () => [...pairs].map((p) => p.upstream.localPort).filter(Boolean),
    refuse() { refusing = true; },
    freeze() { refusing = true; for (const p of pairs) p.frozen = true; },
    restore() {
      for (const p of [...pairs]) if (p.frozen) { pairs.delete(p); p.client.destroy(); p.upstream.destroy(); }
      refusing = false;
    },
    close() { this.restore(); for (const p of [...pairs]) { p.client.destroy(); p.upstream.destroy(); } server.close(); },
  };
}
