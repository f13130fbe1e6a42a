// The phone app's service worker: the app shell offline, and alerts pushed
// while the app is closed (the push carries an alert id and kind only; the
// app fetches the rest when opened). The API (/v1/) is never cached.

const CACHE = 'linkward-phone-v1';
const SHELL = [
  '/phone/', '/phone/app.js', '/phone/link.js', '/phone/manage.js', '/phone/primary.js', '/phone/phone.css',
  '/phone/manifest.webmanifest', '/phone/icon-192.png', '/style.css', '/favicon.svg',
  '/js/api.js', '/js/keys.js', '/js/proof.mjs', '/js/session.js', '/js/ui.js', '/js/alerts.js',
];

const TITLES = {
  'device.linked': 'A new device was linked',
  'device.ended': 'A device was logged out',
  'token.theft_suspected': 'A stolen credential was used',
  'pin.failed': 'A wrong PIN was entered',
  'pin.locked': 'PIN entry is locked',
  'session.impossible_travel': 'A device moved impossibly fast',
};

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

// Network first (the server says no-cache: a new deployment shows at once),
// the cached shell when offline.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.startsWith('/v1/')) return;
  event.respondWith((async () => {
    try {
      const res = await fetch(event.request);
      if (res.ok && SHELL.includes(url.pathname)) {
        const copy = res.clone();
        caches.open(CACHE).then((c) => c.put(event.request, copy)).catch(() => {});
      }
      return res;
    } catch (e) {
      const hit = await caches.match(event.request, { ignoreSearch: true })
        || (event.request.mode === 'navigate' ? await caches.match('/phone/') : undefined);
      if (hit) return hit;
      throw e;
    }
  })());
});

// {"alert_id": "…", "kind": "device.linked"}
self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  const id = typeof data.alert_id === 'string' ? data.alert_id.slice(0, 128) : '';
  const kind = typeof data.kind === 'string' ? data.kind.slice(0, 64) : '';
  event.waitUntil(self.registration.showNotification(TITLES[kind] || 'Linkward security alert', {
    body: 'Open Linkward to see what happened and answer it.',
    tag: id || 'linkward-alert',
    icon: '/phone/icon-192.png',
    data: { alert_id: id, kind },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = new URL('/phone/#alerts', self.location.origin).href;
  event.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of wins) {
      if (new URL(w.url).pathname.startsWith('/phone/')) {
        await w.focus();
        if ('navigate' in w) await w.navigate(target).catch(() => {});
        return;
      }
    }
    await self.clients.openWindow(target);
  })());
});
