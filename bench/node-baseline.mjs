// The baseline a Node.js developer would deploy for the same check:
// express + express-session + connect-redis on a Redis server. One process,
// one event loop (as Linkward), default session options (resave: false,
// saveUninitialized: false, touch on every request), the session record kept
// in Redis as JSON and read on every GET /v1/session.
//
//   node node-baseline.mjs PORT REDIS_PORT
//   POST /login        creates the session (Set-Cookie: connect.sid=…), 204
//   GET  /v1/session   200 with the same shape of answer as Linkward's, or 401
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const [port, redisPort] = process.argv.slice(2).map(Number);
if (!port || !redisPort) {
  console.error('usage: node node-baseline.mjs PORT REDIS_PORT');
  process.exit(2);
}

const redis = createClient({ socket: { host: '127.0.0.1', port: redisPort } });
redis.on('error', (e) => console.error('redis:', e.message));
await redis.connect();

const app = express();
app.disable('x-powered-by');
app.use(session({
  store: new RedisStore({ client: redis, prefix: 'lwbench:' }),
  secret: 'linkward-bench-not-a-secret',
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'strict', maxAge: 30 * 24 * 3600 * 1000 },
}));

app.post('/login', (req, res) => {
  const now = new Date().toISOString();
  req.session.device = {
    id: 'Qm9vdHN0cmFwRGV2aWNlSWQ', role: 'primary', name: 'bench', browser: '', browser_version: '',
    os: '', os_version: '', device_model: '', ip: '127.0.0.1', country: '', region: '', city: '',
    network: '', key_fingerprint: 'x'.repeat(43), linked_at: now, last_active_at: now, state: 'active',
    ended_at: null, end_reason: null, first_seen: { ip: '127.0.0.1', country: '', city: '' },
    last_seen: { ip: '127.0.0.1', country: '', city: '' },
  };
  req.session.account = { id: 'QWNjb3VudElkQmVuY2g', handle: 'bench', has_pin: false, inactive_ttl_days: 30 };
  req.session.save((err) => (err ? res.status(500).end() : res.status(204).end()));
});

app.get('/v1/session', (req, res) => {
  if (!req.session.device) {
    res.status(401).json({ error: { code: 'unauthenticated', message: 'Sign in first.' } });
    return;
  }
  res.json({
    device: { ...req.session.device, current: true },
    account: req.session.account,
    token_expires_in: 600,
    challenge: 'y'.repeat(43),
  });
});

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`node-baseline listening on http://127.0.0.1:${port}`);
});
const stop = () => { server.close(); redis.quit().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
