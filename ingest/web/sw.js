// The page's own files, so it opens (and shows its outbox) offline. The
// network comes first, so a new version is picked up at once; the API and
// the socket never go through here. And notifications: a Web Push message
// (the server's JSON: title, body, conversation_id) is shown, one per
// conversation (a newer one replaces it); a click opens the page.
const SHELL = 'parley-shell-v4';
const FILES = ['/', '/style.css', '/app.js', '/state.js', '/http.js', '/accounts.js', '/chats.js',
  '/actions.js', '/socket.js', '/push.js'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || !FILES.includes(url.pathname)) return;
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        const copy = r.clone();
        caches.open(SHELL).then((c) => c.put(e.request, copy));
        return r;
      })
      .catch(() => caches.match(e.request)),
  );
});

self.addEventListener('push', (e) => {
  let n = {};
  try {
    n = e.data ? e.data.json() : {};
  } catch {
    // Not JSON: shown as a plain new-message notice.
  }
  e.waitUntil(
    self.registration.showNotification(n.title || 'Parley', {
      body: n.body || 'New message',
      tag: n.conversation_id || 'parley',
      renotify: true,
      data: { conversation_id: n.conversation_id },
    }),
  );
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  e.waitUntil(
    self.clients.matchAll({ type: 'window' }).then((open) =>
      open.length ? open[0].focus() : self.clients.openWindow('/')),
  );
});
