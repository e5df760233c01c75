// Parley's web client: one module, no dependencies, served by the edge.
// Every string a user supplied reaches the page through textContent, never
// innerHTML. Messages written offline wait in an IndexedDB outbox and go
// out on reconnect with the same client_msg_id, so each arrives once.

const $ = (id) => document.getElementById(id);
const S = {
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

const saveSession = (s) => {
  S.session = s;
  if (s) localStorage.setItem('parley.session', JSON.stringify(s));
  else localStorage.removeItem('parley.session');
};

function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('parley', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('outbox', { keyPath: 'client_msg_id' });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function outbox(mode, f) {
  return new Promise((resolve, reject) => {
    const tx = S.db.transaction('outbox', mode);
    const req = f(tx.objectStore('outbox'));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
  });
}
const outboxAll = async () =>
  ((await outbox('readonly', (o) => o.getAll())) || []).sort((a, b) => a.n - b.n);
const outboxPut = (item) => outbox('readwrite', (o) => o.put(item));
const outboxDelete = (id) => outbox('readwrite', (o) => o.delete(id));

// ---- HTTP ----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(method, path, body, retried) {
  const headers = {};
  if (S.session) headers.Authorization = `Bearer ${S.session.token}`;
  if (body !== undefined && !(body instanceof Blob)) headers['Content-Type'] = 'application/json';
  if (body instanceof Blob) headers['Content-Type'] = body.type || 'application/octet-stream';
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : body instanceof Blob ? body : JSON.stringify(body),
  });
  if (r.status === 401 && S.session && !retried && (await refresh())) {
    return api(method, path, body, true);
  }
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

async function refresh() {
  try {
    const r = await fetch('/v1/sessions/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: S.session.refresh_token }),
    });
    if (!r.ok) return false;
    const s = await r.json();
    saveSession({ ...S.session, ...s });
    return true;
  } catch {
    return false;
  }
}

// ---- accounts --------------------------------------------------------------

async function signIn(username, password) {
  const device_id = localStorage.getItem(`parley.device.${username}`) || undefined;
  const body = { username, password };
  if (device_id) body.device_id = device_id;
  const s = await api('POST', '/v1/sessions', body);
  localStorage.setItem(`parley.device.${username}`, s.device_id);
  saveSession({ ...s, username });
  await start();
}

async function signUp(username, password) {
  try {
    await api('POST', '/v1/users', { username, password });
  } catch (e) {
    if (e.code !== 'conflict') throw e;
    throw new Error('That username is taken.');
  }
  await signIn(username, password);
}

async function signOut() {
  try {
    await api('DELETE', '/v1/sessions/current');
  } catch {
    // Signed out here whatever the server says.
  }
  saveSession(null);
  location.reload();
}

// ---- names and chats -------------------------------------------------------

async function nameOf(id) {
  if (!S.names.has(id)) {
    try {
      const p = await api('GET', `/v1/users/${id}`);
      S.names.set(id, p.display_name || p.username);
    } catch {
      S.names.set(id, `user ${id}`);
    }
  }
  return S.names.get(id);
}

const me = () => S.session.user_id;
const big = (id) => BigInt(id);

function directId(a, b) {
  const [x, y] = big(a) < big(b) ? [a, b] : [b, a];
  return `d:${x}:${y}`;
}

function chat(cid) {
  let c = S.chats.get(cid);
  if (!c) {
    c = { cid, title: cid, to: null, entries: new Map(), unread: 0, last: 0, loaded: false };
    if (cid.startsWith('g:')) c.to = { group: cid.slice(2) };
    else {
      const [, x, y] = cid.split(':');
      c.to = { user: x === me() ? y : x };
    }
    S.chats.set(cid, c);
    titleOf(c);
  }
  return c;
}

async function titleOf(c) {
  try {
    if (c.to.group) {
      c.title = (await api('GET', `/v1/groups/${c.to.group}`)).name;
    } else {
      const p = await api('GET', `/v1/users/${c.to.user}`);
      S.names.set(c.to.user, p.display_name || p.username);
      c.title = S.names.get(c.to.user);
    }
    c.named = true;
  } catch {
    // Offline: named again once the socket is back.
    c.title = c.to.group ? `group ${c.to.group}` : `user ${c.to.user}`;
  }
  renderList();
  if (S.open === c.cid) $('chat-title').textContent = c.title;
}

// One entry per message: `key` is its msg_id, or `c:<client_msg_id>`
// until the server acked it.
function upsert(c, e) {
  c.entries.set(e.key, e);
  c.last = Math.max(c.last, e.ts || Date.now());
}

function fromFrame(m) {
  return {
    key: m.msg_id,
    msg_id: m.msg_id,
    from: m.from,
    body: m.body,
    ts: m.ts,
    mine: m.from === me(),
    tick: m.from === me() ? 'sent' : null,
  };
}

async function loadConversations() {
  const r = await api('GET', '/v1/conversations');
  for (const e of r.conversations) {
    const c = chat(e.conversation_id);
    c.unread = e.unread;
    upsert(c, fromFrame(e.last_message));
  }
  renderList();
}

async function loadHistory(c) {
  const r = await api('GET', `/v1/conversations/${c.cid}/messages?limit=50`);
  for (const m of r.messages) if (!c.entries.has(m.msg_id)) upsert(c, fromFrame(m));
  c.loaded = true;
  c.complete = r.messages.length < 50;
}

// Scrolling to the top loads the page of history before the oldest shown.
async function loadOlder(c) {
  if (c.complete || c.loadingOlder) return;
  const oldest = ordered(c).find((e) => e.msg_id);
  if (!oldest) return;
  c.loadingOlder = true;
  try {
    const r = await api('GET', `/v1/conversations/${c.cid}/messages?limit=50&before=${oldest.msg_id}`);
    for (const m of r.messages) if (!c.entries.has(m.msg_id)) upsert(c, fromFrame(m));
    c.complete = r.messages.length < 50;
    const ol = $('messages');
    const below = ol.scrollHeight - ol.scrollTop;
    renderChat(true);
    ol.scrollTop = ol.scrollHeight - below;
  } finally {
    c.loadingOlder = false;
  }
}

// ---- rendering -------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  for (const ch of children) e.append(ch);
  return e;
}

function preview(body) {
  if (!body) return '';
  if (body.text !== undefined) return body.text;
  if (body.media) return body.media.caption || `[${body.media.mime || 'file'}]`;
  return '[message]';
}

function renderList() {
  const ul = $('conversations');
  ul.replaceChildren();
  const chats = [...S.chats.values()].sort((a, b) => b.last - a.last);
  for (const c of chats) {
    const lastEntry = ordered(c).at(-1);
    const b = el('button', { type: 'button' }, el('strong', {}, c.title));
    if (c.unread > 0) b.append(el('span', { className: 'unread', ariaLabel: `${c.unread} unread` }, String(c.unread)));
    b.append(el('br'), el('span', {}, preview(lastEntry && lastEntry.body).slice(0, 60)));
    b.onclick = () => openChat(c.cid);
    b.dataset.cid = c.cid;
    ul.append(el('li', {}, b));
  }
}

function ordered(c) {
  return [...c.entries.values()].sort((a, b) => {
    if (a.msg_id && b.msg_id) return big(a.msg_id) < big(b.msg_id) ? -1 : 1;
    if (a.msg_id) return -1;
    if (b.msg_id) return 1;
    return a.n - b.n;
  });
}

const TICKS = {
  pending: ['🕓', 'waiting to send'],
  sent: ['✓', 'sent'],
  delivered: ['✓✓', 'delivered'],
  read: ['✓✓', 'read'],
};

function renderChat(keepScroll) {
  const c = S.chats.get(S.open);
  if (!c) return;
  $('chat-title').textContent = c.title;
  const ol = $('messages');
  ol.replaceChildren();
  for (const e of ordered(c)) {
    const li = el('li', { className: e.mine ? 'mine' : '' });
    li.dataset.key = e.key;
    if (c.to.group && !e.mine) li.append(el('strong', {}, `${S.names.get(e.from) || e.from}: `));
    if (e.body.media) li.append(media(e.body.media));
    if (e.body.text !== undefined) li.append(document.createTextNode(e.body.text));
    const meta = el('span', { className: 'meta' }, new Date(Number(e.ts) || Date.now()).toLocaleTimeString());
    if (e.mine) {
      const [sym, label] = TICKS[e.tick] || TICKS.sent;
      const who = e.readBy ? `; read by ${[...e.readBy].map((u) => S.names.get(u) || u).join(', ')}` : '';
      meta.append(' ', el('span', { className: `tick ${e.tick}`, title: label + who, ariaLabel: label + who }, sym));
    }
    li.append(meta);
    ol.append(li);
  }
  if (!keepScroll) ol.scrollTop = ol.scrollHeight;
}

function media(m) {
  const box = el('span', {});
  const src = m.thumbnail ? `/v1/media/${m.media_id}/thumbnail` : `/v1/media/${m.media_id}`;
  if ((m.mime || '').startsWith('image/')) {
    const img = el('img', { alt: m.caption || 'image' });
    blobUrl(src).then((u) => { img.src = u; }, () => { img.alt = 'image not available yet'; });
    // The thumbnail opens the full image.
    const open = el('button', { type: 'button', className: 'image', ariaLabel: 'Open the full image' }, img);
    open.onclick = async () => window.open(await blobUrl(`/v1/media/${m.media_id}`), '_blank');
    box.append(open);
  } else {
    const a = el('button', { type: 'button' }, `Download ${m.mime || 'file'}`);
    a.onclick = async () => {
      const u = await blobUrl(`/v1/media/${m.media_id}`);
      const link = el('a', { href: u, download: m.media_id });
      link.click();
    };
    box.append(a);
  }
  if (m.caption) box.append(el('div', {}, m.caption));
  return box;
}

// fetch() reports no upload progress; XMLHttpRequest does.
function uploadWithProgress(file) {
  const bar = $('upload-progress');
  bar.hidden = false;
  bar.value = 0;
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/v1/media');
    x.setRequestHeader('Authorization', `Bearer ${S.session.token}`);
    x.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    x.onload = () => {
      const body = x.responseText ? JSON.parse(x.responseText) : null;
      if (x.status === 201) resolve(body);
      else reject(new ApiError(x.status, body));
    };
    x.onerror = () => reject(new Error('the connection failed'));
    x.send(file);
  });
}

async function blobUrl(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${S.session.token}` } });
  if (!r.ok) throw new Error(String(r.status));
  return URL.createObjectURL(await r.blob());
}

async function openChat(cid) {
  S.open = cid;
  const c = chat(cid);
  c.unread = 0;
  $('chat').hidden = false;
  if (!c.loaded) {
    try {
      await loadHistory(c);
    } catch {
      // Offline: what is here (and the outbox) is shown.
    }
  }
  renderChat();
  renderList();
  markRead(c);
  $('chat-status').textContent = '';
  $('group-panel').hidden = !c.to.group;
  if (c.to.group) renderMembers(c);
  else showPresence(c.to.user);
  $('text').focus();
}

async function showPresence(user) {
  try {
    onPresence(await api('GET', `/v1/users/${user}/presence`));
  } catch {
    // Hidden by their privacy setting, or offline: nothing shown.
  }
}

async function renderMembers(c) {
  const ul = $('members');
  let g;
  try {
    g = await api('GET', `/v1/groups/${c.to.group}`);
  } catch (e) {
    ul.replaceChildren(el('li', {}, e.message));
    return;
  }
  const mine = g.members.find((m) => m.user_id === me());
  ul.replaceChildren();
  for (const m of g.members) {
    const li = el('li', {}, el('span', {}, `${await nameOf(m.user_id)}${m.admin ? ' (admin)' : ''}`));
    if (mine && mine.admin && m.user_id !== me()) {
      const b = el('button', { type: 'button' }, 'Remove');
      b.ariaLabel = `Remove ${S.names.get(m.user_id)}`;
      b.onclick = async () => {
        await api('DELETE', `/v1/groups/${c.to.group}/members/${m.user_id}`);
        renderMembers(c);
      };
      li.append(b);
    }
    ul.append(li);
  }
}

// ---- profile, contacts, privacy -------------------------------------------

async function loadSettings() {
  const [me, privacy, contacts] = await Promise.all([
    api('GET', '/v1/users/me'),
    api('GET', '/v1/users/me/privacy'),
    api('GET', '/v1/contacts'),
  ]);
  $('display-name').value = me.display_name;
  $('about').value = me.about || '';
  $('privacy').value = privacy.presence;
  renderContacts(contacts.contacts);
}

function renderContacts(list) {
  const ul = $('contacts');
  ul.replaceChildren();
  for (const c of list) {
    const b = el('button', { type: 'button' }, 'Remove');
    b.ariaLabel = `Remove ${c.display_name} from contacts`;
    b.onclick = async () => {
      await api('DELETE', `/v1/contacts/${c.user_id}`);
      renderContacts((await api('GET', '/v1/contacts')).contacts);
    };
    ul.append(el('li', {}, el('span', {}, c.display_name), b));
  }
}

// ---- the socket ------------------------------------------------------------

function connect() {
  if (S.ws || !S.session) return;
  if (!navigator.onLine) return setOffline(true);
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/v1/ws?token=${encodeURIComponent(S.session.token)}`);
  S.ws = ws;
  ws.onopen = async () => {
    S.backoff = 250;
    setOffline(false);
    ws.send(JSON.stringify({ type: 'sync' }));
    ws.send(JSON.stringify({ type: 'heartbeat', active: document.visibilityState === 'visible' }));
    for (const item of await outboxAll()) sendFrame(item);
    for (const c of S.chats.values()) if (!c.named) titleOf(c);
  };
  ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
  ws.onclose = async () => {
    if (S.ws !== ws) return;
    S.ws = null;
    setOffline(true);
    // An expired token closes the socket at once: renew it first.
    await refresh();
    const wait = S.backoff * (0.5 + Math.random());
    S.backoff = Math.min(S.backoff * 2, 5000);
    setTimeout(connect, wait);
  };
}

function setOffline(off) {
  $('offline').hidden = !off;
}

function sendFrame(item) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    S.ws.send(JSON.stringify({ type: 'send', client_msg_id: item.client_msg_id, to: item.to, body: item.body }));
  }
}

function onFrame(f) {
  switch (f.type) {
    case 'ack': return onAck(f);
    case 'msg': return onMsg(f);
    case 'status': return onStatus(f);
    case 'presence': return onPresence(f);
    case 'typing': return onTyping(f);
    case 'error':
      if (f.ref) $('chat-status').textContent = `Not sent: ${f.message}`;
      return;
    default:
  }
}

async function onAck(a) {
  const c = chat(a.conversation_id);
  const pending = c.entries.get(`c:${a.client_msg_id}`);
  await outboxDelete(a.client_msg_id);
  if (pending) {
    c.entries.delete(pending.key);
    if (!c.entries.has(a.msg_id)) {
      upsert(c, { ...pending, key: a.msg_id, msg_id: a.msg_id, ts: a.ts, tick: 'sent' });
    }
  }
  if (S.open === c.cid) renderChat();
  renderList();
}

function onMsg(m) {
  const c = chat(m.conversation_id);
  if (!c.entries.has(m.msg_id)) {
    upsert(c, fromFrame(m));
    if (m.from !== me()) {
      nameOf(m.from);
      if (S.open !== c.cid || document.visibilityState !== 'visible') c.unread += 1;
      receipt(c, m.msg_id, 'delivered');
      if (S.open === c.cid) markRead(c);
    }
  }
  if (m.seq) S.seq = Math.max(S.seq, m.seq);
  // Confirm once the frames now queued are handled (kept in memory here;
  // a reload reads them back from the server's history).
  clearTimeout(S.received);
  S.received = setTimeout(() => {
    if (S.ws && S.seq) S.ws.send(JSON.stringify({ type: 'received', seq: S.seq }));
  }, 50);
  if (S.open === c.cid) renderChat();
  renderList();
}

function onStatus(s) {
  const c = S.chats.get(s.conversation_id);
  if (!c) return;
  // Cumulative: every one of my messages up to msg_id. In a group a
  // member's receipt is noted per message (who has read it) and only the
  // aggregate (`all`) moves the ticks.
  if (c.to.group && !s.all) {
    for (const e of c.entries.values()) {
      if (e.mine && e.msg_id && big(e.msg_id) <= big(s.msg_id)) {
        const set = s.status === 'read' ? 'readBy' : 'deliveredTo';
        (e[set] = e[set] || new Set()).add(s.by);
        nameOf(s.by);
      }
    }
    if (S.open === c.cid) renderChat(true);
    return;
  }
  const rank = { sent: 0, delivered: 1, read: 2 };
  for (const e of c.entries.values()) {
    if (e.mine && e.msg_id && big(e.msg_id) <= big(s.msg_id) && rank[s.status] > (rank[e.tick] ?? 0)) {
      e.tick = s.status;
    }
  }
  if (S.open === c.cid) renderChat();
}

function onPresence(p) {
  const c = S.chats.get(S.open);
  if (!c || c.to.user !== p.user_id) return;
  $('chat-status').textContent = p.online
    ? 'online'
    : p.last_seen ? `last seen ${new Date(p.last_seen).toLocaleString()}` : '';
}

function onTyping(t) {
  if (t.conversation_id !== S.open || t.user_id === me()) return;
  $('chat-status').textContent = `${S.names.get(t.user_id) || 'someone'} is typing…`;
  clearTimeout(S.typingShown);
  S.typingShown = setTimeout(() => { $('chat-status').textContent = ''; }, 3000);
}

function receipt(c, msg_id, status) {
  const key = `${status}Sent`;
  if (c[key] && big(c[key]) >= big(msg_id)) return;
  c[key] = msg_id;
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    S.ws.send(JSON.stringify({ type: 'receipt', conversation_id: c.cid, msg_id, status }));
  }
}

function markRead(c) {
  if (document.visibilityState !== 'visible') return;
  const theirs = ordered(c).filter((e) => !e.mine && e.msg_id);
  if (theirs.length) receipt(c, theirs.at(-1).msg_id, 'read');
}

// ---- composing ------------------------------------------------------------

async function compose(body) {
  const c = S.chats.get(S.open);
  if (!c) return;
  const item = {
    client_msg_id: crypto.randomUUID(),
    to: c.to,
    body,
    cid: c.cid,
    n: Date.now() + Math.random(),
  };
  await outboxPut(item);
  upsert(c, { key: `c:${item.client_msg_id}`, from: me(), body, ts: Date.now(), mine: true, tick: 'pending', n: item.n });
  renderChat();
  sendFrame(item);
}

async function restoreOutbox() {
  for (const item of await outboxAll()) {
    const c = chat(item.cid);
    upsert(c, { key: `c:${item.client_msg_id}`, from: me(), body: item.body, ts: Math.floor(item.n), mine: true, tick: 'pending', n: item.n });
  }
}

// ---- wiring ----------------------------------------------------------------

async function start() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('me').textContent = S.session.username;
  S.db = S.db || (await openDb());
  await restoreOutbox();
  renderList();
  connect();
  try {
    await loadConversations();
  } catch {
    // Offline: the outbox and what arrives later are shown.
  }
  setInterval(() => {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) {
      S.ws.send(JSON.stringify({ type: 'heartbeat', active: document.visibilityState === 'visible' }));
    }
  }, 5000);
}

function authError(e) {
  $('auth-error').textContent = e.message;
}

addEventListener('DOMContentLoaded', async () => {
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
  $('auth').onsubmit = (ev) => {
    ev.preventDefault();
    signIn($('username').value.trim(), $('password').value).catch(authError);
  };
  $('signup-button').onclick = () => {
    if (!$('auth').reportValidity()) return;
    signUp($('username').value.trim(), $('password').value).catch(authError);
  };
  $('signout').onclick = signOut;
  $('new-chat').onsubmit = async (ev) => {
    ev.preventDefault();
    $('nav-error').textContent = '';
    try {
      const p = await api('GET', `/v1/users?username=${encodeURIComponent($('new-chat-name').value.trim())}`);
      S.names.set(p.user_id, p.display_name || p.username);
      $('new-chat-name').value = '';
      await openChat(directId(me(), p.user_id));
    } catch (e) {
      $('nav-error').textContent = e.status === 404 ? 'No user of that name.' : e.message;
    }
  };
  $('new-group').onsubmit = async (ev) => {
    ev.preventDefault();
    $('nav-error').textContent = '';
    try {
      const ids = [];
      for (const n of $('group-members').value.split(',').map((x) => x.trim()).filter(Boolean)) {
        ids.push((await api('GET', `/v1/users?username=${encodeURIComponent(n)}`)).user_id);
      }
      const g = await api('POST', '/v1/groups', { name: $('group-name').value.trim(), members: ids });
      $('group-name').value = '';
      $('group-members').value = '';
      await openChat(g.conversation_id);
    } catch (e) {
      $('nav-error').textContent = e.message;
    }
  };
  $('composer').onsubmit = (ev) => {
    ev.preventDefault();
    const text = $('text').value;
    if (!text.trim()) return;
    $('text').value = '';
    compose({ text });
  };
  $('text').onkeydown = (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  };
  $('text').oninput = () => {
    const now = Date.now();
    if (S.open && S.ws && S.ws.readyState === WebSocket.OPEN && now - (S.typedAt || 0) > 2000) {
      S.typedAt = now;
      S.ws.send(JSON.stringify({ type: 'typing', conversation_id: S.open }));
    }
  };
  $('file').onchange = async () => {
    const f = $('file').files[0];
    if (!f || !S.open) return;
    $('chat-status').textContent = `Uploading ${f.name}…`;
    try {
      const up = await uploadWithProgress(f);
      $('chat-status').textContent = '';
      await compose({ media: { media_id: up.media_id, mime: up.mime } });
    } catch (e) {
      $('chat-status').textContent = `Upload failed: ${e.message}`;
    }
    $('upload-progress').hidden = true;
    $('file').value = '';
  };
  $('settings').ontoggle = () => {
    if ($('settings').open) loadSettings().catch((e) => { $('nav-error').textContent = e.message; });
  };
  $('profile').onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const p = await api('PATCH', '/v1/users/me', {
        display_name: $('display-name').value.trim(),
        about: $('about').value.trim(),
      });
      $('me').textContent = p.display_name;
      $('nav-error').textContent = 'Profile saved.';
    } catch (e) {
      $('nav-error').textContent = e.message;
    }
  };
  $('privacy').onchange = () =>
    api('PUT', '/v1/users/me/privacy', { presence: $('privacy').value })
      .then(() => { $('nav-error').textContent = 'Privacy saved.'; })
      .catch((e) => { $('nav-error').textContent = e.message; });
  $('add-contact').onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const p = await api('GET', `/v1/users?username=${encodeURIComponent($('contact-name').value.trim())}`);
      await api('POST', '/v1/contacts', { user_id: p.user_id });
      $('contact-name').value = '';
      renderContacts((await api('GET', '/v1/contacts')).contacts);
    } catch (e) {
      $('nav-error').textContent = e.status === 404 ? 'No user of that name.' : e.message;
    }
  };
  $('messages').onscroll = () => {
    const c = S.chats.get(S.open);
    if (c && $('messages').scrollTop < 40) loadOlder(c).catch(() => {});
  };
  $('add-member').onsubmit = async (ev) => {
    ev.preventDefault();
    const c = S.chats.get(S.open);
    try {
      const p = await api('GET', `/v1/users?username=${encodeURIComponent($('add-member-name').value.trim())}`);
      await api('POST', `/v1/groups/${c.to.group}/members`, { user_id: p.user_id });
      $('add-member-name').value = '';
      renderMembers(c);
    } catch (e) {
      $('chat-status').textContent = e.status === 404 ? 'No user of that name.' : e.message;
    }
  };
  addEventListener('online', () => { S.backoff = 250; connect(); });
  addEventListener('offline', () => {
    setOffline(true);
    if (S.ws) S.ws.close();
  });
  document.addEventListener('visibilitychange', () => {
    const c = S.chats.get(S.open);
    if (c) markRead(c);
  });
  const saved = localStorage.getItem('parley.session');
  if (saved) {
    S.session = JSON.parse(saved);
    start();
  }
});
