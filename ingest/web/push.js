// Notifications in this browser (Web Push): the page asks the server for
// its push key, subscribes through the browser's push service, and
// registers the subscription with Parley; sw.js shows what arrives.

import { $ } from './state.js';
import { api } from './http.js';

// The subscription id Parley gave this browser's subscription.
const KEY = 'parley-push-subscription';

function say(text) {
  $('push-status').textContent = text;
}

// base64url → bytes (applicationServerKey).
function bytes(b64url) {
  const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
  const s = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function showState(on) {
  $('push-toggle').textContent = on ? 'Turn notifications off' : 'Turn notifications on';
  $('push-toggle').setAttribute('aria-pressed', on ? 'true' : 'false');
}

export async function loadPush() {
  showState(Boolean(localStorage.getItem(KEY)));
  const settings = await api('GET', '/v1/push/settings');
  $('push-previews').checked = Boolean(settings.previews);
}

async function turnOn() {
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    return say('This browser cannot show notifications.');
  }
  let key;
  try {
    key = (await api('GET', '/v1/push/vapid')).public_key;
  } catch {
    return say('Notifications are not enabled on this server.');
  }
  if ((await Notification.requestPermission()) !== 'granted') {
    return say('Notifications are blocked for this page in the browser.');
  }
  try {
    const reg = await navigator.serviceWorker.ready;
    const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key) });
    const { endpoint, keys } = sub.toJSON();
    const r = await api('POST', '/v1/push/subscriptions', { kind: 'webpush', endpoint, keys });
    localStorage.setItem(KEY, r.subscription_id);
    showState(true);
    say('Notifications are on in this browser.');
  } catch (e) {
    say(`This browser could not subscribe to notifications: ${e.message}`);
  }
}

async function turnOff() {
  const id = localStorage.getItem(KEY);
  localStorage.removeItem(KEY);
  showState(false);
  try {
    if (id) await api('DELETE', `/v1/push/subscriptions/${encodeURIComponent(id)}`);
    const sub = await (await navigator.serviceWorker.ready).pushManager.getSubscription();
    if (sub) await sub.unsubscribe();
    say('Notifications are off in this browser.');
  } catch (e) {
    say(`Turning notifications off failed: ${e.message}`);
  }
}

export function wirePush() {
  $('push-toggle').onclick = () => (localStorage.getItem(KEY) ? turnOff() : turnOn());
  $('push-previews').onchange = () =>
    api('PUT', '/v1/push/settings', { previews: $('push-previews').checked })
      .then(() => say('Saved.'))
      .catch((e) => say(e.message));
}
