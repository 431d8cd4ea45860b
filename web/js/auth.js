// The session: the client library's Session (`/js/parley/`: login, refresh one at a time,
// authorized requests), with the tokens kept in localStorage, a silent refresh before expiry,
// refreshes serialized across tabs (Web Locks), and other tabs' logouts and rotations.

import { hooks } from './hooks.js';
import { me, state } from './state.js';
import { AuthLost, Session, tokenExpiry, tokenIssuedAt } from './parley/index.js';

export { AuthLost };

const AUTH_KEY = 'parley.auth';
/** How long before an access token's expiry it is refreshed (at most). */
const REFRESH_MARGIN_MS = 60_000;

export function readStoredAuth() {
  try {
    const parsed = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null');
    // A guest has no refresh token: its session lasts as long as its access token.
    return parsed && parsed.access && (parsed.refresh || parsed.user?.is_guest) ? parsed : null;
  } catch {
    return null;
  }
}

/** One refresh at a time across tabs too: the server revokes a whole token family when a
 *  rotated refresh token is used twice. Inside the lock, another tab may already have
 *  rotated the pair: take its tokens (the session then skips its own refresh). */
function lock(fn) {
  const run = () => {
    const stored = readStoredAuth();
    if (stored && session.tokens && stored.refresh !== session.tokens.refresh) session.setTokens({ ...session.tokens, ...stored });
    return fn();
  };
  return navigator.locks?.request ? navigator.locks.request('parley-refresh', run) : run();
}

export const session = new Session({ lock });

// The session's tokens are `state.auth`, kept in localStorage.
session.onTokens((auth) => {
  state.auth = auth;
  if (auth) localStorage.setItem(AUTH_KEY, JSON.stringify(auth));
  else localStorage.removeItem(AUTH_KEY);
  scheduleRefresh();
});

let refreshTimer = null;

export function setAuth(auth) {
  session.setTokens(auth);
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

/** Rotates the token pair (the open socket is renewed with the new access token by the
 *  library's Connection, which listens to the session). */
export function refreshTokens() {
  return session.refresh();
}

// Another tab logged out or rotated the tokens.
window.addEventListener('storage', (e) => {
  if (e.key !== AUTH_KEY) return;
  const stored = readStoredAuth();
  if (!stored && state.auth) hooks.logout();
  else if (stored && state.auth && stored.user?.username === me() && stored.refresh !== state.auth.refresh) {
    session.setTokens(stored);
  }
});
