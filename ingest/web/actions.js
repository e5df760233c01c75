// What people do with messages (docs/protocol-additions.md, "Message
// actions"): reply, react, edit, delete for everyone or for me, and block
// the other person of a 1:1 chat. Actions travel as sends through the
// outbox like any message; live ones are folded into their target here as
// the server folds scrollback, so both read the same.

import { $, S } from './state.js';
import { api } from './http.js';
import { el, me, renderChat } from './chats.js';

export const REACTIONS = ['👍', '❤️', '😂'];

export const isAction = (body) => !!(body && (body.edit || body.delete || body.reaction));

// Who reacted with what, from a scrollback message's `reactions`.
export function reactionsOf(m) {
  const by = new Map();
  for (const r of m.reactions || []) for (const u of r.users || []) by.set(u, r.emoji);
  return by;
}

// An action frame `m` (live, or one this page just sent) applied to its
// target in chat `c`. A target not loaded yet comes folded with history.
export function applyAction(c, m) {
  const b = m.body;
  const target = (id) => c.entries.get(id);
  if (b.edit) {
    const t = target(b.edit.msg_id);
    if (t && !t.deleted) {
      t.body = { ...t.body, text: b.edit.text };
      t.edited = true;
    }
  } else if (b.delete && b.delete.for_me) {
    if (m.from === me()) c.entries.delete(b.delete.msg_id);
  } else if (b.delete) {
    const t = target(b.delete.msg_id);
    if (t) Object.assign(t, { deleted: true, body: { text: '' }, byUser: new Map(), edited: false });
  } else if (b.reaction) {
    const t = target(b.reaction.msg_id);
    if (t && !t.deleted) {
      if (b.reaction.emoji) t.byUser.set(m.from, b.reaction.emoji);
      else t.byUser.delete(m.from);
    }
  }
}

// `👍 2 ❤️ 1`, most first.
export function reactionSummary(e) {
  const counts = new Map();
  for (const emoji of e.byUser.values()) counts.set(emoji, (counts.get(emoji) || 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(' ');
}

// The quoted start of the message `e` replies to.
export function quoteOf(c, e) {
  const t = c.entries.get(e.reply_to);
  if (t) return t.deleted ? 'a deleted message' : (t.body.text ?? '[media]').slice(0, 120);
  if (e.quote) return e.quote.text;
  return 'an earlier message';
}

// The menu of what may be done with message `e`.
export function menu(c, e, send) {
  const box = el('details', { className: 'actions' });
  // The chat is drawn again on every frame: the open menu stays open.
  box.open = S.menuOpen === e.key;
  box.ontoggle = () => {
    if (box.open) S.menuOpen = e.key;
    else if (S.menuOpen === e.key) S.menuOpen = null;
  };
  box.append(el('summary', { ariaLabel: 'Actions', title: 'Reply, react, edit, delete' }, '⋯'));
  const add = (label, f) => {
    const b = el('button', { type: 'button' }, label);
    b.onclick = () => { box.open = false; f(); };
    box.append(b);
  };
  add('Reply', () => startMode({ reply_to: e.msg_id, label: `Replying to: ${(e.body.text ?? '[media]').slice(0, 60)}` }));
  for (const emoji of REACTIONS) {
    const mine = e.byUser.get(me()) === emoji;
    add(mine ? `Remove ${emoji}` : `React ${emoji}`, () =>
      send({ reaction: { msg_id: e.msg_id, emoji: mine ? '' : emoji } }));
  }
  if (e.mine && e.body.text !== undefined && !e.body.media) {
    add('Edit', () => {
      $('text').value = e.body.text;
      startMode({ edit: e.msg_id, label: 'Editing your message' });
    });
  }
  if (e.mine || c.admin) add('Delete for everyone', () => send({ delete: { msg_id: e.msg_id } }));
  add('Delete for me', () => send({ delete: { msg_id: e.msg_id, for_me: true } }));
  return box;
}

// Replying or editing: a bar above the composer says which, with Cancel.
export function startMode(mode) {
  S.mode = mode;
  $('mode-label').textContent = mode.label;
  $('mode').hidden = false;
  $('text').focus();
}

export function endMode() {
  S.mode = null;
  $('mode').hidden = true;
}

// ---- blocking ------------------------------------------------------------

export async function showBlock(c) {
  const b = $('block');
  b.hidden = !c.to.user;
  if (!c.to.user) return;
  try {
    const list = await api('GET', '/v1/blocks');
    c.blocked = list.blocked.some((x) => x.user_id === c.to.user);
  } catch {
    // Offline: shown as it was.
  }
  b.textContent = c.blocked ? 'Unblock' : 'Block';
  b.setAttribute('aria-pressed', String(!!c.blocked));
}

export async function toggleBlock() {
  const c = S.chats.get(S.open);
  if (!c || !c.to.user) return;
  await api(c.blocked ? 'DELETE' : 'PUT', `/v1/blocks/${c.to.user}`);
  c.blocked = !c.blocked;
  $('chat-status').textContent = c.blocked ? 'Blocked: they can no longer write to you.' : 'Unblocked.';
  await showBlock(c);
  renderChat(true);
}
