// Parley's web client: plain JavaScript modules, no dependencies, served by the edge.
// Every string a user supplied reaches the page through textContent, never
// innerHTML. Messages written offline wait in an IndexedDB outbox and go
// out on reconnect with the same client_msg_id, so each arrives once.
//
// Modules: state.js (state, session, outbox), http.js, accounts.js,
// chats.js (conversations, rendering, settings), actions.js (reply, react,
// edit, delete, block), socket.js, push.js (notifications); this file
// wires the page.

import { $, S, openDb } from './state.js';
import { api, uploadWithProgress } from './http.js';
import { signIn, signOut, signUp } from './accounts.js';
import {
  avatarUrl, chat, directId, loadConversations, loadOlder, loadSettings, me, openChat,
  renderContacts, renderList, renderMembers,
} from './chats.js';
import { compose, connect, markRead, restoreOutbox, setOffline } from './socket.js';
import { loadPush, wirePush } from './push.js';
import { endMode, toggleBlock } from './actions.js';

// ---- wiring ----------------------------------------------------------------

export async function start() {
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
  $('mode-cancel').onclick = () => {
    if (S.mode && S.mode.edit) $('text').value = '';
    endMode();
  };
  $('block').onclick = () => toggleBlock().catch((e) => { $('chat-status').textContent = e.message; });
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
    if ($('settings').open) {
      loadSettings().catch((e) => { $('nav-error').textContent = e.message; });
      loadPush().catch((e) => { $('push-status').textContent = e.message; });
    }
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
  $('avatar').onchange = async () => {
    const f = $('avatar').files[0];
    if (!f) return;
    try {
      const up = await uploadWithProgress(f);
      await api('PATCH', '/v1/users/me', { avatar_media_id: up.media_id });
      $('avatar-preview').src = await avatarUrl(up.media_id);
      $('avatar-preview').hidden = false;
      $('nav-error').textContent = 'Avatar saved.';
    } catch (e) {
      $('nav-error').textContent = e.message;
    }
    $('upload-progress').hidden = true;
    $('avatar').value = '';
  };
  wirePush();
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
