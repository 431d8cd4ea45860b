// The REST side: register, login, refresh (one at a time), logout, and authorized requests
// that refresh the access token when it is about to expire or was refused.

import { ApiError, AuthLost, ParleyError } from './errors.js';

/** An access token is refreshed before use when it expires within this. */
const FRESH_MARGIN_MS = 5_000;

/** The claims of a JWT (its signature is the server's business), or {} when unreadable. */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(padded)) || {};
  } catch {
    return {};
  }
}

/** Expiry of a JWT in epoch milliseconds (0 when unreadable). */
export function tokenExpiry(token) {
  return (tokenClaims(token).exp ?? 0) * 1000;
}

/** Issue time of a JWT in epoch milliseconds (0 when unreadable). */
export function tokenIssuedAt(token) {
  return (tokenClaims(token).iat ?? 0) * 1000;
}

/**
 * A login: the token pair, kept fresh, and the REST calls made with it.
 *
 * Options: `baseUrl` (default `''`: the page's own origin in a browser), `fetch` (default the
 * global), `tokens` (`{access, refresh, user?}` from an earlier login), `lock` (runs a
 * refresh exclusively, e.g. across browser tabs: `(fn) => navigator.locks.request('x', fn)`).
 */
export class Session {
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '');
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.lock = options.lock ?? ((fn) => fn());
    /** @type {{access: string, refresh: string, user?: object} | null} */
    this.tokens = options.tokens ?? null;
    this.listeners = new Set();
    this.refreshing = null;
  }

  /** Calls `fn(tokens)` whenever the tokens change (null on logout); returns an unsubscribe. */
  onTokens(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Replaces the tokens (e.g. rotated by another tab) and tells the listeners. */
  setTokens(tokens) {
    this.tokens = tokens;
    for (const fn of this.listeners) fn(tokens);
  }

  async post(path, body, bearer) {
    let res;
    try {
      res = await this.fetch(`${this.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new ParleyError('network', `${path}: ${e.message}`);
    }
    return parse(res);
  }

  /** Creates an account (`POST /api/auth/register`); resolves with the user. */
  register(username, password, email) {
    return this.post('/api/auth/register', email === undefined ? { username, password } : { username, password, email });
  }

  /** Logs in (`POST /api/auth/login`) and keeps the tokens; resolves with them. */
  async login(username, password) {
    const data = await this.post('/api/auth/login', { username, password });
    this.setTokens({ access: data.access, refresh: data.refresh, user: data.user });
    return this.tokens;
  }

  /** Signs in as a guest who chose `name` (`POST /api/auth/guest`, when the server allows
   *  guests) and keeps the access token; there is no refresh token, so the session ends when
   *  it expires. Resolves with the tokens (`refresh: null`). */
  async guest(name) {
    const data = await this.post('/api/auth/guest', { name });
    this.setTokens({ access: data.access, refresh: null, user: data.user });
    return this.tokens;
  }

  /** Rotates the token pair (`POST /api/auth/refresh`). Only one refresh runs at a time: the
   *  server revokes the whole token family when a rotated refresh token is used twice.
   *  Rejects with AuthLost when the refresh token is refused. */
  refresh() {
    if (!this.refreshing) {
      const used = this.tokens?.refresh;
      this.refreshing = Promise.resolve(this.lock(() => this.doRefresh(used))).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async doRefresh(used) {
    if (!this.tokens) throw new AuthLost('logged out');
    // A guest's token cannot be renewed: the guest is done with when it expires.
    if (!this.tokens.refresh) throw new AuthLost('a guest session ends with its token');
    // Rotated meanwhile (another tab, through setTokens): nothing to do.
    if (this.tokens.refresh !== used && tokenExpiry(this.tokens.access) > Date.now() + FRESH_MARGIN_MS) return this.tokens;
    let data;
    try {
      data = await this.post('/api/auth/refresh', { refresh: this.tokens.refresh });
    } catch (e) {
      if (e instanceof ApiError && [400, 401, 403].includes(e.status)) throw new AuthLost(`refresh refused: ${e.code}`);
      throw e;
    }
    this.setTokens({ ...this.tokens, access: data.access, refresh: data.refresh ?? this.tokens.refresh });
    return this.tokens;
  }

  /** The access token, refreshed first if it expires within a few seconds. */
  async freshAccess() {
    if (!this.tokens) throw new AuthLost('logged out');
    if (tokenExpiry(this.tokens.access) < Date.now() + FRESH_MARGIN_MS) await this.refresh();
    return this.tokens.access;
  }

  /** Revokes this login's refresh token (`POST /api/auth/logout`; its sockets close with 4004)
   *  and forgets the tokens. */
  async logout() {
    const tokens = this.tokens;
    this.setTokens(null);
    if (tokens?.refresh) await this.post('/api/auth/logout', { refresh: tokens.refresh }, tokens.access);
  }

  /** An authorized REST call; refreshes and retries once on 401. Resolves with the JSON body
   *  (null when empty); rejects with ApiError or AuthLost. */
  async request(method, path, body) {
    const send = () =>
      this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
          ...(this.tokens ? { Authorization: `Bearer ${this.tokens.access}` } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    if (this.tokens) await this.freshAccess();
    let res;
    try {
      res = await send();
      if (res.status === 401 && this.tokens) {
        await this.refresh();
        res = await send();
      }
    } catch (e) {
      if (e instanceof ParleyError) throw e;
      throw new ParleyError('network', `${path}: ${e.message}`);
    }
    return parse(res);
  }
}

async function parse(res) {
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
