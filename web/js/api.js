// The REST API: fetch with the bearer token (one retry after a refresh), errors as ApiError,
// and `guarded` for UI actions.

import { toast } from './dom.js';
import { hooks } from './hooks.js';
import { state } from './state.js';
import { AuthLost, ensureFreshAccess, refreshTokens } from './auth.js';

/** A REST call that failed with an `{"error": {code, message}}` body (or none). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const send = () =>
    fetch(path, {
      method,
      headers: {
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...(state.auth ? { Authorization: `Bearer ${state.auth.access}` } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  if (state.auth) await ensureFreshAccess();
  let res = await send();
  if (res.status === 401 && state.auth) {
    await refreshTokens();
    res = await send();
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data?.error ?? {};
    throw new ApiError(res.status, err.code ?? `http_${res.status}`, err.message ?? (res.statusText || `HTTP ${res.status}`));
  }
  return data;
}

/** Runs an API call for a UI action; auth loss logs out, other failures are shown. */
export async function guarded(action, onError) {
  try {
    return await action();
  } catch (e) {
    if (e instanceof AuthLost) {
      hooks.logout('Your session has ended. Please log in again.');
      return undefined;
    }
    if (onError) onError(e);
    else toast(e.message || String(e), 'error');
    return undefined;
  }
}
