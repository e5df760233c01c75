// Conversations and their messages: names, history, rendering (every user
// string as text), a chat's header (presence, members), settings.

import { $, S } from './state.js';
import { api, blobUrl } from './http.js';
import { compose, markRead, onPresence } from './socket.js';
import { endMode, menu, quoteOf, reactionSummary, reactionsOf, showBlock } from './actions.js';

// ---- names and chats -------------------------------------------------------

export async function nameOf(id) {
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

export const me = () => S.session.user_id;
export const big = (id) => BigInt(id);

export function directId(a, b) {
  const [x, y] = big(a) < big(b) ? [a, b] : [b, a];
  return `d:${x}:${y}`;
}

export function chat(cid) {
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

export async function titleOf(c) {
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
export function upsert(c, e) {
  c.entries.set(e.key, e);
  c.last = Math.max(c.last, e.ts || Date.now());
}

// A message as scrollback or a live frame has it (actions folded in by
// the server, or later by actions.js).
export function fromFrame(m) {
  return {
    key: m.msg_id,
    msg_id: m.msg_id,
    from: m.from,
    body: m.body,
    ts: m.ts,
    mine: m.from === me(),
    tick: m.from === me() ? 'sent' : null,
    edited: !!m.edited,
    deleted: !!m.deleted,
    reply_to: m.reply_to,
    quote: m.quote,
    forwarded: !!m.forwarded,
    byUser: reactionsOf(m),
  };
}

export async function loadConversations() {
  const r = await api('GET', '/v1/conversations');
  for (const e of r.conversations) {
    const c = chat(e.conversation_id);
    c.unread = e.unread;
    upsert(c, fromFrame(e.last_message));
  }
  renderList();
}

export async function loadHistory(c) {
  const r = await api('GET', `/v1/conversations/${c.cid}/messages?limit=50`);
  for (const m of r.messages) if (!c.entries.has(m.msg_id)) upsert(c, fromFrame(m));
  c.loaded = true;
  c.complete = !r.more && r.messages.length < 50;
}

// Scrolling to the top loads the page of history before the oldest shown.
export async function loadOlder(c) {
  if (c.complete || c.loadingOlder) return;
  const oldest = ordered(c).find((e) => e.msg_id);
  if (!oldest) return;
  c.loadingOlder = true;
  try {
    const r = await api('GET', `/v1/conversations/${c.cid}/messages?limit=50&before=${oldest.msg_id}`);
    for (const m of r.messages) if (!c.entries.has(m.msg_id)) upsert(c, fromFrame(m));
    c.complete = !r.more && r.messages.length < 50;
    const ol = $('messages');
    const below = ol.scrollHeight - ol.scrollTop;
    renderChat(true);
    ol.scrollTop = ol.scrollHeight - below;
  } finally {
    c.loadingOlder = false;
  }
}

// ---- rendering -------------------------------------------------------------

export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  for (const ch of children) e.append(ch);
  return e;
}

// This page holds no keys yet: an end-to-end encrypted message is shown
// as such, never as its ciphertext (docs/protocol-additions.md).
const ENCRYPTED = '🔒 Encrypted message (open it in an app that holds your keys)';

export function preview(body) {
  if (!body) return '';
  if (body.text !== undefined) return body.text;
  if (body.media) return body.media.caption || `[${body.media.mime || 'file'}]`;
  if (body.e2e) return ENCRYPTED;
  return '[message]';
}

export function renderList() {
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

export function ordered(c) {
  return [...c.entries.values()].sort((a, b) => {
    if (a.msg_id && b.msg_id) return big(a.msg_id) < big(b.msg_id) ? -1 : 1;
    if (a.msg_id) return -1;
    if (b.msg_id) return 1;
    return a.n - b.n;
  });
}

export const TICKS = {
  pending: ['🕓', 'waiting to send'],
  sent: ['✓', 'sent'],
  delivered: ['✓✓', 'delivered'],
  read: ['✓✓', 'read'],
  failed: ['⚠', 'not sent'],
};

export function renderChat(keepScroll) {
  const c = S.chats.get(S.open);
  if (!c) return;
  $('chat-title').textContent = c.title;
  const ol = $('messages');
  ol.replaceChildren();
  for (const e of ordered(c)) {
    const li = el('li', { className: e.mine ? 'mine' : '' });
    li.dataset.key = e.key;
    if (c.to.group && !e.mine) li.append(el('strong', {}, `${S.names.get(e.from) || e.from}: `));
    if (e.forwarded) li.append(el('em', { className: 'forwarded' }, 'Forwarded'), el('br'));
    if (e.reply_to) li.append(el('blockquote', {}, quoteOf(c, e)));
    if (e.deleted) li.append(el('em', { className: 'deleted' }, 'This message was deleted'));
    else {
      if (e.body.media) li.append(media(e.body.media));
      if (e.body.text !== undefined) li.append(document.createTextNode(e.body.text));
      if (e.body.e2e) li.append(el('em', {}, ENCRYPTED));
    }
    // The meta comes last: time, marks, ticks, reactions, the menu.
    const meta = el('span', { className: 'meta' }, new Date(Number(e.ts) || Date.now()).toLocaleTimeString());
    if (e.edited) meta.append(' ', el('span', { className: 'edited' }, 'edited'));
    if (e.mine) {
      const [sym, label] = TICKS[e.tick] || TICKS.sent;
      const who = e.readBy ? `; read by ${[...e.readBy].map((u) => S.names.get(u) || u).join(', ')}` : '';
      meta.append(' ', el('span', { className: `tick ${e.tick}`, title: label + who, ariaLabel: label + who }, sym));
    }
    if (e.byUser && e.byUser.size) meta.append(' ', el('span', { className: 'reactions' }, reactionSummary(e)));
    if (e.msg_id && !e.deleted) meta.append(' ', menu(c, e, (body) => compose(body)));
    li.append(meta);
    ol.append(li);
  }
  if (!keepScroll) ol.scrollTop = ol.scrollHeight;
}

export function media(m) {
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

export async function openChat(cid) {
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
  endMode();
  $('chat-status').textContent = '';
  $('group-panel').hidden = !c.to.group;
  showBlock(c);
  showAvatar(c.to.user);
  if (c.to.group) renderMembers(c);
  else showPresence(c.to.user);
  $('text').focus();
}

export // The other person's avatar beside the chat's title, if they have one.
async function showAvatar(user) {
  const img = $('chat-avatar');
  img.hidden = true;
  if (!user) return;
  try {
    const p = await api('GET', `/v1/users/${user}`);
    if (!p.avatar_media_id || S.open !== directId(me(), user)) return;
    img.src = await avatarUrl(p.avatar_media_id);
    img.alt = `${p.display_name}'s avatar`;
    img.hidden = false;
  } catch {
    // No avatar shown.
  }
}

// An avatar's thumbnail, or the picture itself while it has none.
export async function avatarUrl(id) {
  try {
    return await blobUrl(`/v1/media/${id}/thumbnail`);
  } catch {
    return blobUrl(`/v1/media/${id}`);
  }
}

async function showPresence(user) {
  try {
    onPresence(await api('GET', `/v1/users/${user}/presence`));
  } catch {
    // Hidden by their privacy setting, or offline: nothing shown.
  }
}

export async function renderMembers(c) {
  const ul = $('members');
  let g;
  try {
    g = await api('GET', `/v1/groups/${c.to.group}`);
  } catch (e) {
    ul.replaceChildren(el('li', {}, e.message));
    return;
  }
  const mine = g.members.find((m) => m.user_id === me());
  // Admins may delete anyone's message for everyone.
  c.admin = !!(mine && mine.admin);
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

export async function loadSettings() {
  const [me, privacy, contacts] = await Promise.all([
    api('GET', '/v1/users/me'),
    api('GET', '/v1/users/me/privacy'),
    api('GET', '/v1/contacts'),
  ]);
  $('display-name').value = me.display_name;
  $('about').value = me.about || '';
  if (me.avatar_media_id) {
    $('avatar-preview').src = await avatarUrl(me.avatar_media_id);
    $('avatar-preview').hidden = false;
  }
  $('privacy').value = privacy.presence;
  renderContacts(contacts.contacts);
}

export function renderContacts(list) {
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
