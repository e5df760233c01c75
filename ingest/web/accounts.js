// Sign-up, sign-in (as the device this browser had), sign-out.

import { S, saveSession } from './state.js';
import { api } from './http.js';
import { start } from './app.js';

// ---- accounts --------------------------------------------------------------

export async function signIn(username, password) {
  const device_id = localStorage.getItem(`parley.device.${username}`) || undefined;
  const body = { username, password };
  if (device_id) body.device_id = device_id;
  const s = await api('POST', '/v1/sessions', body);
  localStorage.setItem(`parley.device.${username}`, s.device_id);
  saveSession({ ...s, username });
  await start();
}

export async function signUp(username, password) {
  try {
    await api('POST', '/v1/users', { username, password });
  } catch (e) {
    if (e.code !== 'conflict') throw e;
    throw new Error('That username is taken.');
  }
  await signIn(username, password);
}

export async function signOut() {
  try {
    await api('DELETE', '/v1/sessions/current');
  } catch {
    // Signed out here whatever the server says.
  }
  saveSession(null);
  location.reload();
}
