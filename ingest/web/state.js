// The page's state, its session and its IndexedDB outbox.

export const $ = (id) => document.getElementById(id);
export const S = {
  session: null, // {token, refresh_token, user_id, device_id, username}
  ws: null,
  backoff: 250,
  chats: new Map(), // conversation_id -> chat
  open: null,
  names: new Map(), // user id -> username
  seq: 0,
  db: null,
  received: null,
};

// ---- storage -------------------------------------------------------------

export const saveSession = (s) => {
  S.session = s;
  if (s) localStorage.setItem('parley.session', JSON.stringify(s));
  else localStorage.removeItem('parley.session');
};

export function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('parley', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('outbox', { keyPath: 'client_msg_id' });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export function outbox(mode, f) {
  return new Promise((resolve, reject) => {
    const tx = S.db.transaction('outbox', mode);
    const req = f(tx.objectStore('outbox'));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
  });
}
export const outboxAll = async () =>
  ((await outbox('readonly', (o) => o.getAll())) || []).sort((a, b) => a.n - b.n);
export const outboxPut = (item) => outbox('readwrite', (o) => o.put(item));
export const outboxDelete = (id) => outbox('readwrite', (o) => o.delete(id));
