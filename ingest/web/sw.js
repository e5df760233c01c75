// The page's own files, so it opens (and shows its outbox) offline. The
// network comes first, so a new version is picked up at once; the API and
// the socket never go through here.
const SHELL = 'parley-shell-v2';
const FILES = ['/', '/style.css', '/app.js', '/state.js', '/http.js', '/accounts.js', '/chats.js',
  '/socket.js'];

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
