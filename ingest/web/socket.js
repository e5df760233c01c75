// The WebSocket: connect, sync, send the outbox, handle frames, receipts;
// composing into the outbox.

import { $, S, outboxAll, outboxDelete, outboxPut } from './state.js';
import { refresh } from './http.js';
import { big, chat, fromFrame, me, nameOf, ordered, renderChat, renderList, titleOf, upsert } from './chats.js';
import { applyAction, endMode, isAction } from './actions.js';

// ---- the socket ------------------------------------------------------------

export function connect() {
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

export function setOffline(off) {
  $('offline').hidden = !off;
}

export function sendFrame(item) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    const f = { type: 'send', client_msg_id: item.client_msg_id, to: item.to, body: item.body };
    if (item.reply_to) f.reply_to = item.reply_to;
    S.ws.send(JSON.stringify(f));
  }
}

export function onFrame(f) {
  switch (f.type) {
    case 'ack': return onAck(f);
    case 'msg': return onMsg(f);
    case 'status': return onStatus(f);
    case 'presence': return onPresence(f);
    case 'typing': return onTyping(f);
    case 'expired':
      // Deleted before this device got them (retention.undelivered_days):
      // say so instead of leaving a silent gap, and confirm them.
      $('chat-status').textContent = 'Some messages expired before this device received them; scrollback may still hold them.';
      S.seq = Math.max(S.seq, f.up_to_seq);
      if (S.ws) S.ws.send(JSON.stringify({ type: 'received', seq: f.up_to_seq }));
      return;
    case 'error':
      if (f.ref) return onRefused(f);
      return;
    default:
  }
}

export async function onAck(a) {
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

// A send refused for good (not a busy server, which the outbox outlasts):
// it leaves the outbox and shows as not sent.
async function onRefused(f) {
  $('chat-status').textContent = `Not sent: ${f.message}`;
  if (f.code === 'rate_limited' || f.code === 'unavailable') return;
  await outboxDelete(f.ref);
  for (const c of S.chats.values()) {
    const e = c.entries.get(`c:${f.ref}`);
    if (e) {
      e.tick = 'failed';
      if (S.open === c.cid) renderChat(true);
    }
  }
}

export function onMsg(m) {
  const c = chat(m.conversation_id);
  if (isAction(m.body)) {
    // Not a message to people: no receipt, not unread, only its effect.
    applyAction(c, m);
  } else if (!c.entries.has(m.msg_id)) {
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

export function onStatus(s) {
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

export function onPresence(p) {
  const c = S.chats.get(S.open);
  if (!c || c.to.user !== p.user_id) return;
  $('chat-status').textContent = p.online
    ? 'online'
    : p.last_seen ? `last seen ${new Date(p.last_seen).toLocaleString()}` : '';
}

export function onTyping(t) {
  if (t.conversation_id !== S.open || t.user_id === me()) return;
  $('chat-status').textContent = `${S.names.get(t.user_id) || 'someone'} is typing…`;
  clearTimeout(S.typingShown);
  S.typingShown = setTimeout(() => { $('chat-status').textContent = ''; }, 3000);
}

export function receipt(c, msg_id, status) {
  const key = `${status}Sent`;
  if (c[key] && big(c[key]) >= big(msg_id)) return;
  c[key] = msg_id;
  if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    S.ws.send(JSON.stringify({ type: 'receipt', conversation_id: c.cid, msg_id, status }));
  }
}

export function markRead(c) {
  if (document.visibilityState !== 'visible') return;
  const theirs = ordered(c).filter((e) => !e.mine && e.msg_id);
  if (theirs.length) receipt(c, theirs.at(-1).msg_id, 'read');
}

// ---- composing ------------------------------------------------------------

// A message (or an action on one) into the outbox, then out. A reply
// takes the mode's `reply_to`; an edit in progress turns the text into
// an edit of its message.
export async function compose(body) {
  const c = S.chats.get(S.open);
  if (!c) return;
  const mode = S.mode;
  const editing = !!(mode && mode.edit && body.text !== undefined);
  if (editing) body = { edit: { msg_id: mode.edit, text: body.text } };
  const item = {
    client_msg_id: crypto.randomUUID(),
    to: c.to,
    body,
    cid: c.cid,
    n: Date.now() + Math.random(),
  };
  if (mode && mode.reply_to && !isAction(body)) item.reply_to = mode.reply_to;
  if (mode && (editing || !isAction(body))) endMode();
  await outboxPut(item);
  if (isAction(body)) applyAction(c, { body, from: me() });
  else upsert(c, pendingEntry(item));
  renderChat();
  sendFrame(item);
}

const pendingEntry = (item) => ({
  key: `c:${item.client_msg_id}`, from: me(), body: item.body, ts: Math.floor(item.n), mine: true,
  tick: 'pending', n: item.n, reply_to: item.reply_to, byUser: new Map(),
});

export async function restoreOutbox() {
  for (const item of await outboxAll()) {
    if (!isAction(item.body)) upsert(chat(item.cid), pendingEntry(item));
  }
}
