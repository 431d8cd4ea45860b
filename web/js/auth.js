// Tokens in localStorage, silent refresh before expiry, one refresh at a time (across tabs
// too), other tabs' logouts and rotations.

import { hooks } from './hooks.js';
import { me, state } from './state.js';

const AUTH_KEY = 'parley.auth';
/** How long before an access token's expiry it is refreshed (at most). */
const REFRESH_MARGIN_MS = 60_000;

/** The session could not be kept alive (refresh token expired or revoked): log in again. */
export class AuthLost extends Error {}

export function readStoredAuth() {
  try {
    const parsed = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null');
    return parsed && parsed.access && parsed.refresh ? parsed : null;
  } catch {
    return null;
  }
}

let refreshTimer = null;

export function setAuth(auth) {
  state.auth = auth;
  if (auth) localStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  else localStorage.removeItem(AUTH_KEY);
  scheduleRefresh();
}

/** The claims of a JWT (its signature is the server's business), or {} when unreadable. */
function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(padded)) || {};
  } catch {
    return {};
  }
}

/** Expiry of a JWT in epoch milliseconds (0 when unreadable). */
function tokenExpiry(token) {
  return (tokenClaims(token).exp ?? 0) * 1000;
}

function tokenIssuedAt(token) {
  return (tokenClaims(token).iat ?? 0) * 1000;
}

export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!state.auth) return;
  const expiry = tokenExpiry(state.auth.access);
  const lifetime = expiry - tokenIssuedAt(state.auth.access);
  // A minute early, or a quarter of the lifetime early for short-lived tokens.
  const margin = lifetime > 0 ? Math.min(REFRESH_MARGIN_MS, lifetime / 4) : REFRESH_MARGIN_MS;
  const due = expiry - margin - Date.now();
  refreshTimer = setTimeout(() => {
    refreshTokens().catch((e) => {
      if (e instanceof AuthLost) hooks.logout('Your session has ended. Please log in again.');
      else refreshTimer = setTimeout(scheduleRefresh, 10_000);
    });
  }, Math.max(due, 1_000));
}

let refreshing = null;

/** Rotates the token pair. Only one refresh runs at a time (across tabs too, via Web Locks):
 *  the server revokes a whole token family when a rotated refresh token is used twice. */
export function refreshTokens() {
  if (!refreshing) {
    const run = () => doRefresh();
    const task = navigator.locks?.request ? navigator.locks.request('parley-refresh', run) : run();
    refreshing = task.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function doRefresh() {
  if (!state.auth) throw new AuthLost('logged out');
  // Another tab may have rotated the pair while we waited for the lock.
  const stored = readStoredAuth();
  if (stored && stored.refresh !== state.auth.refresh && tokenExpiry(stored.access) > Date.now() + 10_000) {
    state.auth = stored;
    scheduleRefresh();
    hooks.accessRenewed();
    return;
  }
  let res;
  try {
    res = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh: state.auth.refresh }),
    });
  } catch (e) {
    throw new Error(`refresh failed: ${e.message}`);
  }
  if (res.status === 400 || res.status === 401 || res.status === 403) throw new AuthLost('refresh refused');
  if (!res.ok) throw new Error(`refresh failed: HTTP ${res.status}`);
  const data = await res.json();
  setAuth({ ...state.auth, access: data.access, refresh: data.refresh ?? state.auth.refresh });
  // The open socket's authorization ends with its token: hand it the new one.
  hooks.accessRenewed();
}

export async function ensureFreshAccess() {
  if (!state.auth) throw new AuthLost('logged out');
  if (tokenExpiry(state.auth.access) < Date.now() + 5_000) await refreshTokens();
}

// Another tab logged out or rotated the tokens.
window.addEventListener('storage', (e) => {
  if (e.key !== AUTH_KEY) return;
  const stored = readStoredAuth();
  if (!stored && state.auth) hooks.logout();
  else if (stored && state.auth && stored.user?.username === me()) {
    state.auth = stored;
    scheduleRefresh();
    hooks.accessRenewed();
  }
});
