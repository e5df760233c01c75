// Calls to the edge: JSON with the token (renewed once on a 401), uploads
// with progress, media fetched into blob URLs.

import { $, S, saveSession } from './state.js';

// ---- HTTP ----------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

export async function api(method, path, body, retried) {
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

export async function refresh() {
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

export function uploadWithProgress(file) {
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

export async function blobUrl(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${S.session.token}` } });
  if (!r.ok) throw new Error(String(r.status));
  return URL.createObjectURL(await r.blob());
}
