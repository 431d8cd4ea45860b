// Parley web client: a dependency-free single-page app served by parley-server.
//
// Layout of this file, top to bottom:
//   helpers      DOM building (text only: user data never goes through innerHTML), time, ids
//   auth         tokens in localStorage, silent refresh before expiry, one refresh at a time
//   api          fetch wrapper for the REST API (bearer token, one retry after a refresh)
//   socket       the WebSocket: request/reply by `ref`, reconnect with back-off, keep-alive
//   rooms        per-room state (messages, pending sends, online, typing, read markers)
//   frames       what each server frame does to that state
//   views        auth screen, app shell, room list, room pane, connection state
//   call         1:1 WebRTC call signalled through `signal` frames
//   boot         start-up and routing (#/room/<name>)

'use strict';

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

/** Builds an element. Children that are strings become text nodes (never parsed as HTML). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked' || key === 'muted' || key === 'srcObject') {
      el[key] = value;
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const ICONS = {
  video: 'M3 7h11a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1zm13 3.5 5-3v9l-5-3z',
  phone: 'M6.62 10.79a15.05 15.05 0 0 0 6.59 6.59l2.2-2.2a1 1 0 0 1 1.01-.24c1.12.37 2.33.57 3.58.57a1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.46.57 3.58a1 1 0 0 1-.25 1.01l-2.2 2.2z',
};

/** A small inline icon (no icon font, no emoji font needed). */
function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A short-lived notice at the bottom of the screen (role=status, so screen readers hear it). */
function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

// ---------------------------------------------------------------------------------------
// auth
// ---------------------------------------------------------------------------------------

const AUTH_KEY = 'parley.auth';
/** How long before an access token's expiry it is refreshed (at most). */
const REFRESH_MARGIN_MS = 60_000;

/** The session could not be kept alive (refresh token expired or revoked): log in again. */
class AuthLost extends Error {}

/** A REST call that failed with an `{"error": {code, message}}` body (or none). */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const state = {
  /** `{access, refresh, user}` or null when logged out. */
  auth: null,
  /** Room name → RoomState. */
  rooms: new Map(),
  /** Room summaries from `GET /api/rooms`, by name. */
  summaries: new Map(),
  /** The room shown, or null. */
  active: null,
  /** 'offline' | 'connecting' | 'online' | 'reconnecting'. */
  conn: 'offline',
  /** The current call, or null. */
  call: null,
};

function me() {
  return state.auth?.user?.username ?? '';
}

function readStoredAuth() {
  try {
    const parsed = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null');
    return parsed && parsed.access && parsed.refresh ? parsed : null;
  } catch {
    return null;
  }
}

let refreshTimer = null;

function setAuth(auth) {
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

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!state.auth) return;
  const expiry = tokenExpiry(state.auth.access);
  const lifetime = expiry - tokenIssuedAt(state.auth.access);
  // A minute early, or a quarter of the lifetime early for short-lived tokens.
  const margin = lifetime > 0 ? Math.min(REFRESH_MARGIN_MS, lifetime / 4) : REFRESH_MARGIN_MS;
  const due = expiry - margin - Date.now();
  refreshTimer = setTimeout(() => {
    refreshTokens().catch((e) => {
      if (e instanceof AuthLost) logout('Your session has ended. Please log in again.');
      else refreshTimer = setTimeout(scheduleRefresh, 10_000);
    });
  }, Math.max(due, 1_000));
}

let refreshing = null;

/** Rotates the token pair. Only one refresh runs at a time (across tabs too, via Web Locks):
 *  the server revokes a whole token family when a rotated refresh token is used twice. */
function refreshTokens() {
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
}

async function ensureFreshAccess() {
  if (!state.auth) throw new AuthLost('logged out');
  if (tokenExpiry(state.auth.access) < Date.now() + 5_000) await refreshTokens();
}

// Another tab logged out or rotated the tokens.
window.addEventListener('storage', (e) => {
  if (e.key !== AUTH_KEY) return;
  const stored = readStoredAuth();
  if (!stored && state.auth) logout();
  else if (stored && state.auth && stored.user?.username === me()) {
    state.auth = stored;
    scheduleRefresh();
  }
});

// ---------------------------------------------------------------------------------------
// api
// ---------------------------------------------------------------------------------------

async function api(method, path, body) {
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
async function guarded(action, onError) {
  try {
    return await action();
  } catch (e) {
    if (e instanceof AuthLost) {
      logout('Your session has ended. Please log in again.');
      return undefined;
    }
    if (onError) onError(e);
    else toast(e.message || String(e), 'error');
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// socket
// ---------------------------------------------------------------------------------------

/** Error frame answering one request. */
class FrameError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
  }
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEPALIVE_MS = 25_000;

class Socket {
  constructor() {
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.keepalive = null;
    this.retryAt = 0;
    this.seq = 0;
    /** ref → {resolve, reject, timer} */
    this.pending = new Map();
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    this.wanted = true;
    if (!this.ws) this.connect();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.keepalive);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'logout');
    this.failPending('disconnected');
    setConn('offline');
  }

  /** Reconnect now (the "Retry now" button, the browser coming back online). */
  retryNow() {
    if (!this.wanted || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  async connect() {
    clearTimeout(this.retryTimer);
    if (!this.wanted || this.ws) return;
    setConn('connecting');
    try {
      await ensureFreshAccess();
      // After repeated failures, check that the credentials still work (an upgrade refused
      // for a bad token looks like any other failed connection to a browser).
      if (this.attempt >= 3) await api('GET', '/api/me');
    } catch (e) {
      if (e instanceof AuthLost || (e instanceof ApiError && e.status === 401)) {
        logout('Your session has ended. Please log in again.');
        return;
      }
      this.scheduleRetry();
      return;
    }
    if (!this.wanted || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(state.auth.access)}`);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      setConn('online');
      clearInterval(this.keepalive);
      this.keepalive = setInterval(() => {
        this.request({ type: 'ping' }).catch(() => {
          if (this.ws === ws) ws.close(4002, 'keep-alive timeout');
        });
      }, KEEPALIVE_MS);
      onSocketOpen();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === 'object') this.dispatch(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.keepalive);
      this.failPending('disconnected');
      onSocketClosed(event.code);
      if (this.wanted) this.scheduleRetry();
    };
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = Date.now() + delay;
    setConn('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  failPending(reason) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(reason));
    }
    this.pending.clear();
  }

  /** Sends a frame without waiting for anything; false when the socket is not open. */
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a fresh `ref`; resolves with the reply, rejects with its error. */
  request(frame, timeout = REQUEST_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const ref = `r${++this.seq}`;
      if (!this.send({ ...frame, ref })) {
        reject(new Error('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new Error('no reply'));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer });
    });
  }

  /** Fire-and-forget frames (`typing`, `signal`): only an error comes back. */
  notify(frame, onError) {
    return this.request(frame, 4_000).then(
      () => {},
      (e) => {
        if (e instanceof FrameError && onError) onError(e);
      },
    );
  }

  dispatch(frame) {
    const waiter = typeof frame.ref === 'string' ? this.pending.get(frame.ref) : undefined;
    if (waiter) {
      this.pending.delete(frame.ref);
      clearTimeout(waiter.timer);
      if (frame.type === 'error') {
        waiter.reject(new FrameError(frame));
        return;
      }
      waiter.resolve(frame);
    }
    handleFrame(frame);
  }
}

const socket = new Socket();

window.addEventListener('online', () => socket.retryNow());

// ---------------------------------------------------------------------------------------
// rooms
// ---------------------------------------------------------------------------------------

const TYPING_EXPIRY_MS = 6_000;
const TYPING_REFRESH_MS = 3_000;
const TYPING_IDLE_MS = 4_000;
const PAGE_SIZE = 50;

class RoomState {
  constructor(name) {
    this.name = name;
    this.id = null;
    this.kind = null;
    /** id → message record */
    this.messages = new Map();
    /** Sends not yet acknowledged: {client_id, body, failed} */
    this.pending = [];
    this.joined = false;
    this.joining = null;
    this.error = null;
    this.hasMore = true;
    this.loadingOlder = false;
    this.online = [];
    /** Users online in the room; more than `online` lists in rooms over the presence limit. */
    this.onlineCount = 0;
    /** user → expiry timer */
    this.typing = new Map();
    /** user → newest message id they read */
    this.reads = new Map();
    this.unread = 0;
    this.lastReadSent = 0;
    /** `external` messages (from a Django consumer on the shared layer): not stored, no id;
     *  shown after the newest message there was when they arrived. */
    this.external = [];
  }

  newestId() {
    let newest = 0;
    for (const id of this.messages.keys()) if (id > newest) newest = id;
    return newest;
  }

  oldestId() {
    let oldest = 0;
    for (const id of this.messages.keys()) if (oldest === 0 || id < oldest) oldest = id;
    return oldest;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.id - b.id);
  }

  merge(records) {
    for (const m of records || []) {
      if (typeof m?.id !== 'number') continue;
      this.messages.set(m.id, m);
      if (m.client_id) this.pending = this.pending.filter((p) => p.client_id !== m.client_id);
    }
  }
}

function room(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = new RoomState(name);
    state.rooms.set(name, r);
  }
  return r;
}

/** The rooms this connection should be in: every room the user belongs to, and the one shown. */
function wantedRooms() {
  // The room on screen first: joins are rate-limited, so it should not wait behind others.
  const names = new Set(state.active ? [state.active] : []);
  for (const s of state.summaries.values()) if (s.role) names.add(s.name);
  return [...names].slice(0, 90);
}

async function joinRoom(r) {
  if (r.joining) return r.joining;
  r.joining = (async () => {
    const hadNewest = r.newestId();
    try {
      const reply = await socket.request({ type: 'join', room: r.name });
      r.joined = true;
      r.error = null;
      r.id = reply.room_id ?? r.id;
      r.kind = reply.kind ?? r.kind;
      r.online = Array.isArray(reply.online) ? reply.online : [];
      // Big rooms list only some of who is online (the server's presence limit): the count is whole.
      r.onlineCount = Number.isInteger(reply.online_count) ? reply.online_count : r.online.length;
      const history = Array.isArray(reply.history) ? reply.history : [];
      if (r.messages.size === 0) r.hasMore = history.length > 0;
      r.merge(history);
      learnDirectPeer(r);
      if (hadNewest) {
        try {
          await fillGap(r, hadNewest);
        } catch (e) {
          // The room stays joined; the next reconnect tries again from what we hold.
          if (e instanceof FrameError) toast(`Could not load the messages you missed in ${roomLabel(r.name)}: ${e.message}`, 'error');
        }
      }
      flushPending(r);
      if (!state.summaries.has(r.name) || !state.summaries.get(r.name).role) scheduleRoomListRefresh();
    } catch (e) {
      r.joined = false;
      if (e instanceof FrameError && e.code === 'rate_limited') {
        setTimeout(() => {
          if (socket.open && !r.joined && wantedRooms().includes(r.name)) joinRoom(r);
        }, 1_000 + Math.random() * 1_000);
      } else if (e instanceof FrameError) r.error = e;
    } finally {
      r.joining = null;
      renderAll();
      if (r.name === state.active) markRead(r);
    }
  })();
  return r.joining;
}

/** After a reconnect: fetch everything newer than what we had, page by page. */
async function fillGap(r, after) {
  let cursor = after;
  for (let page = 0; page < 50; page += 1) {
    const reply = await socket.request({ type: 'history', room: r.name, after: cursor, limit: 100 });
    const messages = Array.isArray(reply.messages) ? reply.messages : [];
    r.merge(messages);
    if (!reply.has_more || messages.length === 0) return;
    cursor = messages[messages.length - 1].id;
  }
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasMore || !socket.open) return;
  r.loadingOlder = true;
  renderLoadingOlder(r);
  try {
    const before = r.oldestId();
    const frame = { type: 'history', room: r.name, limit: PAGE_SIZE };
    if (before) frame.before = before;
    const reply = await socket.request(frame);
    const messages = Array.isArray(reply.messages) ? reply.messages : [];
    r.merge(messages);
    r.hasMore = Boolean(reply.has_more) && messages.length > 0;
  } catch (e) {
    if (e instanceof FrameError) toast(e.message, 'error');
  } finally {
    r.loadingOlder = false;
    if (r.name === state.active) renderMessages(r, { keepOffsetFromBottom: true });
  }
}

function flushPending(r) {
  for (const p of r.pending) {
    if (p.inFlight) continue;
    sendPending(r, p);
  }
}

function sendPending(r, p) {
  if (!socket.open || !r.joined) return;
  p.inFlight = true;
  p.failed = null;
  socket
    .request({ type: 'send', room: r.name, body: p.body, client_id: p.client_id })
    .then((reply) => {
      r.merge([{ ...reply, type: undefined, ref: undefined }]);
    })
    .catch((e) => {
      // Not connected: it goes out again after the reconnect (same client_id, so the
      // server stores it once). Refused: show why and let the user retry or drop it.
      if (e instanceof FrameError && e.code === 'rate_limited') setTimeout(() => sendPending(r, p), 1_500);
      else if (e instanceof FrameError) p.failed = e.message;
    })
    .finally(() => {
      p.inFlight = false;
      if (r.name === state.active) renderMessages(r);
    });
}

function postMessage(r, body) {
  const p = { client_id: randomId(), body, failed: null, inFlight: false };
  r.pending.push(p);
  sendPending(r, p);
  renderMessages(r, { stickToBottom: true });
}

let readTimer = null;

/** Moves the read marker to the newest message of the room shown, if the page is visible. */
function markRead(r) {
  if (!r || r.name !== state.active || document.visibilityState !== 'visible') return;
  if (r.unread) {
    r.unread = 0;
    renderRoomList();
  }
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const newest = r.newestId();
    if (!newest || newest <= r.lastReadSent || !r.joined) return;
    r.lastReadSent = newest;
    socket.request({ type: 'read', room: r.name, message_id: newest }).catch(() => {
      r.lastReadSent = 0;
    });
  }, 300);
}

document.addEventListener('visibilitychange', () => {
  if (state.active) markRead(room(state.active));
});

// Direct rooms are named dm.<id>.<id>; the peer's name comes from the server when it gives
// one, else from what we have seen (who we opened it with, who wrote in it).
/** Per user: another account logged in on this browser has other direct rooms. */
const peersKey = () => `parley.dmPeers.${me()}`;

function knownPeers() {
  try {
    return JSON.parse(localStorage.getItem(peersKey()) || '{}') || {};
  } catch {
    return {};
  }
}

function rememberPeer(roomName, peer) {
  if (!peer || peer === me()) return;
  const peers = knownPeers();
  if (peers[roomName] === peer) return;
  peers[roomName] = peer;
  localStorage.setItem(peersKey(), JSON.stringify(peers));
}

function directPeer(roomName) {
  const s = state.summaries.get(roomName);
  const fromServer =
    s?.peer?.username ?? (typeof s?.peer === 'string' ? s.peer : null) ??
    (Array.isArray(s?.members) ? s.members.map((m) => m?.username ?? m).find((u) => u && u !== me()) : null);
  return fromServer || knownPeers()[roomName] || null;
}

function learnDirectPeer(r) {
  if (!isDirect(r.name)) return;
  if (directPeer(r.name)) return;
  const other =
    r.online.find((u) => u !== me()) ?? [...r.messages.values()].map((m) => m.sender).find((u) => u !== me());
  if (other) {
    rememberPeer(r.name, other);
    return;
  }
  // Nobody else has spoken or is online: ask the server who the members are (once).
  if (r.peerLookup) return;
  r.peerLookup = guarded(() => api('GET', `/api/rooms/${encodeURIComponent(r.name)}`), () => {}).then((detail) => {
    const peer = (detail?.members ?? []).map((m) => m?.username).find((u) => u && u !== me());
    if (!peer) return;
    rememberPeer(r.name, peer);
    renderRoomList();
    if (state.active === r.name) renderRoomHeader(r);
  });
}

function isDirect(name) {
  return /^dm\.\d+\.\d+$/.test(name) || state.summaries.get(name)?.kind === 'direct';
}

function roomLabel(name) {
  if (isDirect(name)) {
    const peer = directPeer(name);
    return peer ? `@${peer}` : 'Direct chat';
  }
  return `#${name}`;
}

let roomListTimer = null;

function scheduleRoomListRefresh() {
  clearTimeout(roomListTimer);
  roomListTimer = setTimeout(() => loadRoomList(), 200);
}

async function loadRoomList() {
  const list = await guarded(() => api('GET', '/api/rooms'), () => {});
  if (!Array.isArray(list) && !Array.isArray(list?.rooms)) return;
  const rooms = Array.isArray(list) ? list : list.rooms;
  state.summaries = new Map(rooms.filter((s) => s && typeof s.name === 'string').map((s) => [s.name, s]));
  for (const s of state.summaries.values()) {
    const r = room(s.name);
    r.kind = s.kind ?? r.kind;
    // The server's count is authoritative for rooms we do not have open.
    if (s.name !== state.active && typeof s.unread === 'number') r.unread = s.unread;
    if (s.kind === 'direct' && !directPeer(s.name)) learnDirectPeer(r);
  }
  if (socket.open) for (const name of wantedRooms()) if (!room(name).joined) joinRoom(room(name));
  renderRoomList();
  if (state.active) renderRoomHeader(room(state.active));
}

// ---------------------------------------------------------------------------------------
// frames
// ---------------------------------------------------------------------------------------

function onSocketOpen() {
  for (const r of state.rooms.values()) r.joined = false;
  for (const name of wantedRooms()) joinRoom(room(name));
  // Rooms may have appeared while we were away (a new direct chat).
  loadRoomList();
}

function onSocketClosed(code) {
  for (const r of state.rooms.values()) {
    r.joined = false;
    for (const timer of r.typing.values()) clearTimeout(timer);
    r.typing.clear();
  }
  if (code === 4000) toast('The connection fell behind; catching up.', 'info');
  renderAll();
}

function handleFrame(f) {
  const r = typeof f.room === 'string' ? state.rooms.get(f.room) : undefined;
  switch (f.type) {
    case 'message': {
      if (!r) return;
      const isNew = !r.messages.has(f.id);
      const { type: _t, ref: _r, ...record } = f;
      r.merge([record]);
      stopTyping(r, f.sender);
      if (isNew && f.sender !== me()) {
        if (r.name === state.active && document.visibilityState === 'visible') markRead(r);
        else {
          r.unread += 1;
          renderRoomList();
        }
      } else if (isNew && r.name === state.active) markRead(r);
      if (!directPeer(r.name)) learnDirectPeer(r);
      if (r.name === state.active) renderMessages(r, { stickToBottom: f.sender === me(), incoming: isNew });
      break;
    }
    case 'edited': {
      if (!r) return;
      // Only messages we hold: adding an older one would leave a hole that paging skips.
      if (!r.messages.has(f.id)) return;
      const { type: _t, ref: _r, ...record } = f;
      r.messages.set(record.id, record);
      if (r.name === state.active) renderMessages(r);
      break;
    }
    case 'deleted': {
      if (!r) return;
      const m = r.messages.get(f.message_id);
      if (m) {
        r.messages.set(m.id, { ...m, body: '', deleted_at: f.deleted_at ?? Date.now() });
        if (r.name === state.active) renderMessages(r);
      }
      break;
    }
    case 'presence': {
      if (!r) return;
      if (Array.isArray(f.online)) {
        r.online = f.online;
        r.onlineCount = f.online.length;
      }
      if (f.event === 'left') stopTyping(r, f.user);
      learnDirectPeer(r);
      if (r.name === state.active) renderOnline(r);
      break;
    }
    case 'typing': {
      if (!r || f.user === me()) return;
      if (f.active === false) stopTyping(r, f.user);
      else {
        clearTimeout(r.typing.get(f.user));
        r.typing.set(
          f.user,
          setTimeout(() => stopTyping(r, f.user), TYPING_EXPIRY_MS),
        );
        if (r.name === state.active) renderTyping(r);
      }
      break;
    }
    case 'read': {
      if (!r || typeof f.message_id !== 'number') return;
      if (f.user === me()) {
        // Read in another tab or device.
        if (f.message_id >= r.newestId() && r.unread) {
          r.unread = 0;
          renderRoomList();
        }
        return;
      }
      if (f.message_id > (r.reads.get(f.user) ?? 0)) r.reads.set(f.user, f.message_id);
      if (r.name === state.active) renderMessages(r);
      break;
    }
    case 'left':
      // Without a ref: the server removed us (the room was deleted or renamed, or we were
      // removed from it).
      if (!r || f.ref) return;
      r.joined = false;
      if (r.name === state.active) r.error = { code: 'removed', message: `You are no longer in ${roomLabel(r.name)}.` };
      scheduleRoomListRefresh();
      renderAll();
      break;
    case 'external': {
      if (!r || typeof f.message !== 'string') return;
      externalSeq += 1;
      r.external.push({ key: `e${externalSeq}`, after: r.newestId(), username: String(f.username ?? 'unknown'), message: f.message, at: Date.now() });
      if (r.external.length > 200) r.external.shift();
      if (r.name === state.active) renderMessages(r, {});
      break;
    }
    case 'signal':
      onSignal(f);
      break;
    case 'error':
      if (f.code === 'unauthorized') {
        refreshTokens()
          .catch((e) => {
            if (e instanceof AuthLost) logout('Your session has ended. Please log in again.');
          });
      } else if (!f.ref) {
        toast(f.message || f.code, 'error');
      }
      break;
    default:
      // Unknown frame types are ignored, as the protocol asks.
      break;
  }
}

let externalSeq = 0;

function stopTyping(r, user) {
  if (!r.typing.has(user)) return;
  clearTimeout(r.typing.get(user));
  r.typing.delete(user);
  if (r.name === state.active) renderTyping(r);
}

// ---------------------------------------------------------------------------------------
// views
// ---------------------------------------------------------------------------------------

const root = () => document.getElementById('app');

function renderAuth(notice) {
  document.title = 'Parley — log in';
  const container = clear(root());
  let mode = 'login';
  const error = h('p', { class: 'form-error', role: 'alert' });
  const username = h('input', {
    id: 'auth-username', name: 'username', autocomplete: 'username', required: true,
    minlength: 3, maxlength: 32, pattern: '[A-Za-z][A-Za-z0-9_.\\-]{2,31}',
    title: '3–32 letters, digits, _ - or . starting with a letter',
  });
  const password = h('input', {
    id: 'auth-password', name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, minlength: 8, maxlength: 72,
  });
  const email = h('input', { id: 'auth-email', name: 'email', type: 'email', autocomplete: 'email' });
  const emailRow = h('div', { class: 'field', hidden: true }, h('label', { for: 'auth-email' }, 'Email (optional)'), email);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const heading = h('h1', { id: 'auth-heading' }, 'Log in to Parley');
  const loginTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'true', id: 'tab-login' }, 'Log in');
  const signupTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'false', id: 'tab-signup' }, 'Sign up');
  const setMode = (m) => {
    mode = m;
    loginTab.setAttribute('aria-selected', String(m === 'login'));
    signupTab.setAttribute('aria-selected', String(m === 'signup'));
    heading.textContent = m === 'login' ? 'Log in to Parley' : 'Create a Parley account';
    submit.textContent = m === 'login' ? 'Log in' : 'Sign up';
    emailRow.hidden = m === 'login';
    password.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    error.textContent = '';
  };
  loginTab.addEventListener('click', () => setMode('login'));
  signupTab.addEventListener('click', () => setMode('signup'));

  const form = h(
    'form',
    {
      class: 'auth-form',
      'aria-labelledby': 'auth-heading',
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        const creds = { username: username.value.trim(), password: password.value };
        try {
          if (mode === 'signup') {
            const body = { ...creds };
            if (email.value.trim()) body.email = email.value.trim();
            await api('POST', '/api/auth/register', body);
          }
          const login = await api('POST', '/api/auth/login', creds);
          setAuth({ access: login.access, refresh: login.refresh, user: login.user });
          startApp();
        } catch (err) {
          error.textContent = describeAuthError(err, mode);
        } finally {
          submit.disabled = false;
        }
      },
    },
    heading,
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Log in or sign up' }, loginTab, signupTab),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('div', { class: 'field' }, h('label', { for: 'auth-username' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'auth-password' }, 'Password'), password),
    emailRow,
    error,
    submit,
  );
  container.append(h('main', { class: 'auth' }, h('div', { class: 'brand big', 'aria-hidden': 'true' }, 'Parley'), form));
  username.focus();
}

function describeAuthError(err, mode) {
  if (!(err instanceof ApiError)) return `Could not reach the server (${err.message}).`;
  switch (err.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'username_taken':
      return 'That username is taken.';
    case 'weak_password':
      return `Password ${err.message.replace(/^.*?password:?\s*/i, '')}`.trim();
    default:
      return err.message || (mode === 'login' ? 'Login failed.' : 'Sign-up failed.');
  }
}

let shell = null;

function renderShell() {
  const container = clear(root());
  const connLabel = h('span', { class: 'conn-label' }, 'Offline');
  const retry = h('button', { type: 'button', class: 'link', hidden: true, onclick: () => socket.retryNow() }, 'Retry now');
  const conn = h('div', { class: 'conn', id: 'conn', role: 'status', 'aria-live': 'polite', dataset: { state: 'offline' } },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), connLabel, retry);

  const roomList = h('nav', { class: 'room-list', 'aria-label': 'Rooms' });
  const sidebar = h('aside', { class: 'sidebar', id: 'sidebar' }, roomList, renderSidebarForms());
  const pane = h('section', { class: 'room', id: 'room', 'aria-label': 'Room' });

  container.append(
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, 'Parley'),
      conn,
      h('span', { class: 'whoami', title: 'Logged in as' }, h('span', { class: 'sr-only' }, 'Logged in as '), me()),
      h('button', { type: 'button', class: 'ghost', onclick: () => logout() }, 'Log out'),
    ),
    h('div', { class: 'layout' }, sidebar, pane),
  );
  shell = { conn, connLabel, retry, roomList, pane, sidebar };
  setConn(state.conn);
}

function renderSidebarForms() {
  const newName = h('input', { id: 'new-room-name', required: true, maxlength: 64, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}', placeholder: 'e.g. rust-talk' });
  const newKind = h('select', { id: 'new-room-kind' }, h('option', { value: 'public' }, 'Public'), h('option', { value: 'private' }, 'Private'));
  const newTopic = h('input', { id: 'new-room-topic', maxlength: 200, placeholder: 'What is it about?' });
  const create = h('form', {
    class: 'side-form',
    'aria-label': 'Create a room',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: newName.value.trim(), kind: newKind.value };
      if (newTopic.value.trim()) body.topic = newTopic.value.trim();
      const created = await guarded(() => api('POST', '/api/rooms', body));
      if (!created) return;
      newName.value = '';
      newTopic.value = '';
      create.closest('details')?.removeAttribute('open');
      await loadRoomList();
      openRoom(created.name ?? body.name.toLowerCase());
    },
  },
  h('h2', {}, 'New room'),
  h('label', { for: 'new-room-name' }, 'Room name'), newName,
  h('label', { for: 'new-room-kind' }, 'Visibility'), newKind,
  h('label', { for: 'new-room-topic' }, 'Topic (optional)'), newTopic,
  h('button', { type: 'submit' }, 'Create room'));

  const joinName = h('input', { id: 'join-room-name', required: true, maxlength: 64, placeholder: 'room name' });
  const join = h('form', {
    class: 'side-form',
    'aria-label': 'Join a room',
    onsubmit: (e) => {
      e.preventDefault();
      const name = joinName.value.trim().replace(/^#/, '').toLowerCase();
      if (!name) return;
      joinName.value = '';
      openRoom(name);
    },
  }, h('label', { for: 'join-room-name' }, 'Join a room by name'), h('div', { class: 'inline' }, joinName, h('button', { type: 'submit' }, 'Join')));

  const dmName = h('input', { id: 'dm-username', required: true, maxlength: 32, placeholder: 'username' });
  const dm = h('form', {
    class: 'side-form',
    'aria-label': 'Start a direct chat',
    onsubmit: async (e) => {
      e.preventDefault();
      const peer = dmName.value.trim().replace(/^@/, '').toLowerCase();
      if (!peer) return;
      const created = await guarded(() => api('POST', `/api/direct/${encodeURIComponent(peer)}`));
      if (!created?.name) return;
      dmName.value = '';
      rememberPeer(created.name, peer);
      await loadRoomList();
      openRoom(created.name);
    },
  }, h('label', { for: 'dm-username' }, 'Direct chat with'), h('div', { class: 'inline' }, dmName, h('button', { type: 'submit' }, 'Chat')));

  return h('div', { class: 'side-forms' }, join, dm, h('details', { class: 'new-room' }, h('summary', {}, 'Create a room'), create));
}

function setConn(value) {
  state.conn = value;
  if (!shell) return;
  shell.conn.dataset.state = value;
  const labels = { offline: 'Offline', connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…' };
  shell.connLabel.textContent = labels[value] ?? value;
  shell.retry.hidden = value !== 'reconnecting';
  updateRetryCountdown();
  const composer = document.getElementById('composer-input');
  if (composer) composer.placeholder = composerPlaceholder();
}

let countdownTimer = null;

function updateRetryCountdown() {
  clearTimeout(countdownTimer);
  if (!shell || state.conn !== 'reconnecting') return;
  const secs = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
  shell.connLabel.textContent = secs > 0 ? `Reconnecting in ${secs} s…` : 'Reconnecting…';
  countdownTimer = setTimeout(updateRetryCountdown, 500);
}

function renderAll() {
  if (!shell) return;
  renderRoomList();
  if (state.active) renderRoomPane(room(state.active));
}

/** The tab's title: the room on screen, and how many messages wait unread elsewhere. */
function updateTitle() {
  let unread = 0;
  for (const r of state.rooms.values()) if (r.name !== state.active) unread += r.unread;
  const where = state.active ? roomLabel(state.active) : 'Parley';
  document.title = `${unread ? `(${unread}) ` : ''}${where}${state.active ? ' — Parley' : ''}`;
}

function renderRoomList() {
  if (!shell) return;
  updateTitle();
  const list = clear(shell.roomList);
  const mine = [];
  const direct = [];
  const discover = [];
  const names = new Set([...state.summaries.keys(), ...[...state.rooms.values()].filter((r) => r.joined).map((r) => r.name)]);
  for (const name of names) {
    const s = state.summaries.get(name);
    const member = Boolean(s?.role) || room(name).joined;
    if (isDirect(name)) direct.push(name);
    else if (member) mine.push(name);
    else discover.push(name);
  }
  const item = (name) => {
    const r = room(name);
    const unread = r.unread > 0 && name !== state.active ? r.unread : 0;
    return h('li', {},
      h('a', {
        href: `#/room/${encodeURIComponent(name)}`,
        class: `room-link${name === state.active ? ' active' : ''}${unread ? ' has-unread' : ''}`,
        'aria-current': name === state.active ? 'page' : null,
        dataset: { room: name },
      },
      h('span', { class: 'room-name' }, roomLabel(name)),
      unread ? h('span', { class: 'badge', 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread)) : null));
  };
  const section = (title, names, empty) =>
    h('div', { class: 'room-section' },
      h('h2', {}, title),
      names.length ? h('ul', {}, names.sort((a, b) => roomLabel(a).localeCompare(roomLabel(b))).map(item)) : h('p', { class: 'muted' }, empty));
  appendChildren(list, [
    section('Your rooms', mine, 'None yet: join or create one.'),
    section('Direct chats', direct, 'No direct chats yet.'),
    discover.length ? section('Public rooms', discover, '') : null,
  ]);
}

function openRoom(name) {
  if (!name) return;
  const target = `#/room/${encodeURIComponent(name)}`;
  if (location.hash !== target) {
    location.hash = target;
    return; // the hashchange handler comes back here
  }
  showRoom(name);
}

function showRoom(name) {
  state.active = name;
  const r = room(name);
  r.error = null;
  document.body.classList.add('in-room');
  if (socket.open && !r.joined) joinRoom(r);
  renderRoomList();
  renderRoomPane(r);
  markRead(r);
}

function showLobby() {
  state.active = null;
  document.body.classList.remove('in-room');
  renderRoomList();
  if (!shell) return;
  clear(shell.pane).append(
    h('div', { class: 'empty' },
      h('h1', {}, `Welcome, ${me()}`),
      h('p', {}, 'Pick a room on the left, join one by name, or start a direct chat.')));
}

/** Parts of the room pane, kept so updates touch only what changed. */
let pane = null;

function renderRoomPane(r) {
  if (!shell) return;
  if (pane?.room !== r.name) buildRoomPane(r);
  renderRoomHeader(r);
  renderOnline(r);
  renderMessages(r);
  renderTyping(r);
  renderComposerState(r);
}

function buildRoomPane(r) {
  const title = h('h1', { class: 'room-title', id: 'room-title' });
  const topic = h('p', { class: 'room-topic' });
  const actions = h('div', { class: 'room-actions' });
  const online = h('ul', { class: 'online-list', 'aria-label': 'Online' });
  const olderStatus = h('div', { class: 'older', role: 'status' });
  const messages = h('ol', { class: 'messages', id: 'messages', role: 'log', 'aria-label': 'Messages', 'aria-live': 'polite', tabindex: '0' });
  const scroller = h('div', { class: 'scroller', onscroll: () => onMessagesScroll(r) }, olderStatus, messages);
  const jump = h('button', {
    type: 'button', class: 'jump primary small', hidden: true,
    onclick: () => {
      scroller.scrollTop = scroller.scrollHeight;
      jump.hidden = true;
    },
  }, 'New messages ↓');
  const typing = h('div', { class: 'typing', id: 'typing', 'aria-live': 'polite' });
  const notice = h('div', { class: 'room-notice', role: 'alert', hidden: true });
  const strip = h('div', { class: 'online-strip' }, h('span', { class: 'online-title', id: 'online-title' }, 'Online'), online);
  const input = h('textarea', {
    id: 'composer-input', rows: 1, maxlength: 4000, placeholder: composerPlaceholder(),
    'aria-label': 'Message', enterkeyhint: 'send',
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    },
    oninput: () => {
      autoGrow(input);
      onComposerInput(r, input.value);
    },
  });
  const form = h('form', {
    class: 'composer', 'aria-label': 'Send a message',
    onsubmit: (e) => {
      e.preventDefault();
      const body = input.value;
      if (!body.trim()) return;
      input.value = '';
      autoGrow(input);
      stopOwnTyping(r);
      postMessage(r, body);
      input.focus();
    },
  }, input, h('button', { type: 'submit', class: 'primary' }, 'Send'));

  clear(shell.pane).append(
    h('div', { class: 'room-header' },
      h('a', { href: '#/', class: 'back', 'aria-label': 'Back to rooms' }, '‹'),
      h('div', { class: 'room-heading' }, title, topic),
      actions),
    strip,
    scroller,
    jump,
    typing,
    notice,
    form,
  );
  shell.pane.setAttribute('aria-labelledby', 'room-title');
  pane = { room: r.name, title, topic, actions, online, strip, olderStatus, messages, scroller, jump, typing, notice, input, form, elements: new Map() };
}

function composerPlaceholder() {
  const where = state.active ? roomLabel(state.active) : '';
  return state.conn === 'online' ? `Message ${where}` : `Message ${where} (sent when back online)`;
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
}

function renderRoomHeader(r) {
  if (!pane || pane.room !== r.name) return;
  const s = state.summaries.get(r.name);
  pane.title.textContent = roomLabel(r.name);
  updateTitle();
  const kind = s?.kind ?? r.kind;
  pane.topic.textContent = s?.topic || (kind === 'direct' ? 'Direct chat' : kind === 'private' ? 'Private room' : '');
  const actions = clear(pane.actions);
  const peer = isDirect(r.name) ? directPeer(r.name) : null;
  if (peer) {
    actions.append(
      h('button', { type: 'button', class: 'icon', 'aria-label': `Video call ${peer}`, title: `Video call ${peer}`, onclick: () => startCall(peer, true) }, icon('video')),
      h('button', { type: 'button', class: 'icon', 'aria-label': `Voice call ${peer}`, title: `Voice call ${peer}`, onclick: () => startCall(peer, false) }, icon('phone')),
    );
  }
  if (kind === 'private' && s?.role) {
    const who = h('input', { id: 'invite-user', required: true, maxlength: 32, placeholder: 'username', 'aria-label': 'Username to add' });
    actions.append(h('details', { class: 'invite' }, h('summary', {}, 'Add member'),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          const username = who.value.trim().toLowerCase();
          const ok = await guarded(() => api('POST', `/api/rooms/${encodeURIComponent(r.name)}/members`, { username }));
          if (ok !== undefined) {
            toast(`${username} added to ${roomLabel(r.name)}`);
            who.value = '';
          }
        },
      }, who, h('button', { type: 'submit' }, 'Add'))));
  }
  if (s?.role && kind !== 'direct') {
    actions.append(h('button', {
      type: 'button', class: 'ghost',
      onclick: async () => {
        const ok = await guarded(() => api('DELETE', `/api/rooms/${encodeURIComponent(r.name)}/members/${encodeURIComponent(me())}`));
        if (ok === undefined) return;
        socket.request({ type: 'leave', room: r.name }).catch(() => {});
        state.rooms.delete(r.name);
        await loadRoomList();
        location.hash = '#/';
      },
    }, 'Leave room'));
  }
}

function renderOnline(r) {
  if (!pane || pane.room !== r.name) return;
  const list = clear(pane.online);
  const users = [...new Set(r.online)].sort();
  // While disconnected the list is what it was: say so rather than show it as current.
  const stale = !r.joined;
  pane.online.closest('.online-strip')?.classList.toggle('stale', stale);
  const count = Math.max(r.onlineCount, users.length);
  document.getElementById('online-title').textContent = stale ? 'Last seen online' : `Online (${count})`;
  for (const user of users) {
    const self = user === me();
    list.append(h('li', { class: 'online-user', dataset: { user } },
      h('span', { class: 'presence-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'online-name' }, self ? `${user} (you)` : user),
      self ? null : h('button', { type: 'button', class: 'icon small', 'aria-label': `Video call ${user}`, title: `Video call ${user}`, onclick: () => startCall(user, true) }, icon('video'))));
  }
  if (count > users.length) list.append(h('li', { class: 'online-more' }, `and ${count - users.length} more`));
}

function renderTyping(r) {
  if (!pane || pane.room !== r.name) return;
  const users = [...r.typing.keys()].sort();
  pane.typing.textContent =
    users.length === 0 ? '' :
    users.length === 1 ? `${users[0]} is typing…` :
    users.length === 2 ? `${users[0]} and ${users[1]} are typing…` :
    'Several people are typing…';
}

/** A room that cannot be shown (no such room, not a member, removed): say why instead. */
function renderComposerState(r) {
  if (!pane || pane.room !== r.name) return;
  const e = r.error;
  const notice = clear(pane.notice);
  if (e) {
    notice.append(h('p', {}, roomErrorText(e, r)));
    if (e.code === 'not_found' && !isDirect(r.name)) {
      notice.append(h('button', {
        type: 'button', class: 'primary',
        onclick: async () => {
          const created = await guarded(() => api('POST', '/api/rooms', { name: r.name, kind: 'public' }));
          if (!created) return;
          r.error = null;
          await loadRoomList();
          if (socket.open) await joinRoom(r);
          renderRoomPane(r);
        },
      }, `Create ${roomLabel(r.name)}`));
    }
  }
  pane.notice.hidden = !e;
  pane.form.hidden = Boolean(e);
  pane.scroller.hidden = Boolean(e);
  pane.strip.hidden = Boolean(e);
}

function roomErrorText(e, r) {
  switch (e.code) {
    case 'not_found':
      return `There is no room called ${r.name}.`;
    case 'not_member':
      return `${roomLabel(r.name)} is private: ask a member to add you.`;
    default:
      return e.message;
  }
}

function renderLoadingOlder(r) {
  if (!pane || pane.room !== r.name) return;
  pane.olderStatus.textContent = r.loadingOlder ? 'Loading older messages…' : r.hasMore ? '' : 'Start of the conversation';
}

function onMessagesScroll(r) {
  if (!pane) return;
  const { scroller } = pane;
  if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60) pane.jump.hidden = true;
  if (scroller.scrollTop < 120) loadOlder(r);
}

const DELETE_CONFIRM_MS = 4_000;
/** Message id → until when its delete button is armed. */
const confirmingDelete = new Map();

function messageElement(r, m) {
  const own = m.sender === me();
  const deleted = Boolean(m.deleted_at);
  const el = h('li', { class: `msg${own ? ' own' : ''}${deleted ? ' deleted' : ''}`, dataset: { id: String(m.id), sender: m.sender } });
  const time = new Date(m.created_at);
  el.append(h('div', { class: 'meta' },
    h('span', { class: 'sender' }, m.sender),
    h('time', { datetime: time.toISOString(), title: dateTimeFormat.format(time) }, timeFormat.format(time)),
    m.edited_at && !deleted ? h('span', { class: 'edited', title: `edited ${dateTimeFormat.format(new Date(m.edited_at))}` }, '(edited)') : null));
  el.append(h('div', { class: 'body' }, deleted ? 'This message was deleted.' : m.body));
  if (own && !deleted) {
    // Deleting takes two clicks; the first arms the button for a few seconds. The armed state
    // lives outside the element, which may be rebuilt meanwhile (a read marker moved).
    const armed = (confirmingDelete.get(m.id) ?? 0) > Date.now();
    const del = h('button', {
      type: 'button', class: 'link', 'aria-label': armed ? 'Confirm delete message' : 'Delete message',
      onclick: () => {
        if ((confirmingDelete.get(m.id) ?? 0) <= Date.now()) {
          confirmingDelete.set(m.id, Date.now() + DELETE_CONFIRM_MS);
          del.textContent = 'Really delete?';
          del.setAttribute('aria-label', 'Confirm delete message');
          setTimeout(() => {
            confirmingDelete.delete(m.id);
            if (!del.isConnected) return;
            del.textContent = 'Delete';
            del.setAttribute('aria-label', 'Delete message');
          }, DELETE_CONFIRM_MS);
          return;
        }
        confirmingDelete.delete(m.id);
        socket.request({ type: 'delete', message_id: m.id }).catch((e) => toast(e.message, 'error'));
      },
    }, armed ? 'Really delete?' : 'Delete');
    el.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'link', 'aria-label': 'Edit message', onclick: () => startEdit(r, m, el) }, 'Edit'),
      del));
  }
  return el;
}

function startEdit(r, m, el) {
  const body = el.querySelector('.body');
  const editor = h('textarea', { class: 'edit-input', 'aria-label': 'Edit message', value: m.body, rows: 2, maxlength: 4000 });
  const form = h('form', {
    class: 'edit-form',
    onsubmit: (e) => {
      e.preventDefault();
      const text = editor.value;
      if (!text.trim() || text === m.body) {
        cancel();
        return;
      }
      socket
        .request({ type: 'edit', message_id: m.id, body: text })
        .then(() => cancel())
        .catch((err) => toast(`Could not edit: ${err.message}`, 'error'));
    },
  }, editor, h('div', { class: 'inline' }, h('button', { type: 'submit', class: 'primary small' }, 'Save'), h('button', { type: 'button', class: 'ghost small', onclick: () => cancel() }, 'Cancel')));
  const cancel = () => {
    el.dataset.editing = '';
    renderMessages(r);
  };
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') cancel();
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  el.dataset.editing = 'yes';
  body.replaceWith(form);
  el.querySelector('.actions')?.remove();
  editor.focus();
}

/** Brings the message list in line with the room's state, touching changed items only. */
function renderMessages(r, opts = {}) {
  if (!pane || pane.room !== r.name) return;
  const { scroller, messages } = pane;
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;

  // Who has read up to where: each reader is shown under the newest message of someone
  // else's that they have seen.
  const sorted = r.sorted();
  const seenBy = new Map();
  for (const [user, upTo] of r.reads) {
    let last = null;
    for (const m of sorted) if (m.id <= upTo && m.sender !== user && !m.deleted_at) last = m.id;
    if (last !== null) seenBy.set(last, [...(seenBy.get(last) ?? []), user]);
  }

  const wanted = [];
  const externals = [...r.external];
  const placeExternals = (upTo) => {
    while (externals.length && externals[0].after <= upTo) {
      const x = externals.shift();
      let el = pane.elements.get(x.key);
      if (!el) {
        const time = new Date(x.at);
        el = h('li', { class: 'msg external', dataset: { sender: x.username } },
          h('div', { class: 'meta' },
            h('span', { class: 'sender' }, x.username),
            h('time', { datetime: time.toISOString() }, timeFormat.format(time)),
            h('span', { class: 'via', title: 'Sent through the shared channel layer; not kept in history' }, 'external')),
          h('div', { class: 'body' }, x.message));
        pane.elements.set(x.key, el);
      }
      wanted.push(el);
    }
  };
  for (const m of sorted) {
    placeExternals(m.id - 1);
    const key = `m${m.id}`;
    const seen = seenBy.get(m.id)?.sort().join(', ') ?? '';
    const signature = `${m.body}|${m.edited_at}|${m.deleted_at}|${seen}`;
    let el = pane.elements.get(key);
    if (el?.dataset.editing === 'yes') {
      wanted.push(el);
      continue;
    }
    if (!el || el.dataset.signature !== signature) {
      const fresh = messageElement(r, m);
      if (seen) fresh.append(h('div', { class: 'seen' }, `Seen by ${seen}`));
      fresh.dataset.signature = signature;
      if (el) el.replaceWith(fresh);
      el = fresh;
      pane.elements.set(key, el);
    }
    wanted.push(el);
  }
  placeExternals(Infinity);
  for (const p of r.pending) {
    const key = `p${p.client_id}`;
    const signature = `${p.failed ?? ''}`;
    let el = pane.elements.get(key);
    if (!el || el.dataset.signature !== signature) {
      const fresh = h('li', { class: 'msg own pending', dataset: { clientId: p.client_id, signature } },
        h('div', { class: 'meta' }, h('span', { class: 'sender' }, me()), h('span', { class: 'state' }, p.failed ? `Not sent: ${p.failed}` : 'Sending…')),
        h('div', { class: 'body' }, p.body),
        p.failed ? h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'link', onclick: () => sendPending(r, p) }, 'Retry'),
          h('button', { type: 'button', class: 'link', onclick: () => { r.pending = r.pending.filter((x) => x !== p); renderMessages(r); } }, 'Discard')) : null);
      if (el) el.replaceWith(fresh);
      el = fresh;
      pane.elements.set(key, el);
    }
    wanted.push(el);
  }
  const keep = new Set(wanted);
  for (const [key, el] of pane.elements) {
    if (!keep.has(el)) {
      el.remove();
      pane.elements.delete(key);
    }
  }
  let cursor = messages.firstChild;
  for (const el of wanted) {
    if (el !== cursor) messages.insertBefore(el, cursor);
    else cursor = cursor.nextSibling;
  }

  if (opts.keepOffsetFromBottom) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  else if (atBottom || opts.stickToBottom) scroller.scrollTop = scroller.scrollHeight;
  // Someone wrote while the user reads older messages: offer a way down, do not yank them.
  else if (opts.incoming) pane.jump.hidden = false;
  renderLoadingOlder(r);
  // A short history does not fill the pane, so no scroll event would ever ask for more.
  if (r.hasMore && !r.loadingOlder && r.joined && scroller.scrollHeight <= scroller.clientHeight + 120) loadOlder(r);
}

let ownTyping = { room: null, sentAt: 0, idle: null };

function onComposerInput(r, text) {
  if (!socket.open || !r.joined) return;
  if (!text.trim()) {
    stopOwnTyping(r);
    return;
  }
  const now = Date.now();
  if (ownTyping.room !== r.name || now - ownTyping.sentAt > TYPING_REFRESH_MS) {
    ownTyping = { room: r.name, sentAt: now, idle: ownTyping.idle };
    socket.notify({ type: 'typing', room: r.name, active: true });
  }
  clearTimeout(ownTyping.idle);
  ownTyping.idle = setTimeout(() => stopOwnTyping(r), TYPING_IDLE_MS);
}

function stopOwnTyping(r) {
  clearTimeout(ownTyping.idle);
  if (ownTyping.room === r.name && ownTyping.sentAt) {
    socket.notify({ type: 'typing', room: r.name, active: false });
  }
  ownTyping = { room: null, sentAt: 0, idle: null };
}

// ---------------------------------------------------------------------------------------
// call
// ---------------------------------------------------------------------------------------

const RING_TIMEOUT_MS = 45_000;

function signalPeer(to, payload, callId) {
  return socket.notify({ type: 'signal', to, payload, call_id: callId }, (e) => {
    if (state.call?.id !== callId) return;
    const why = e.code === 'not_found' ? `${to} is not online.` : e.code === 'forbidden' ? `You share no room with ${to}.` : e.message;
    endCall(why);
  });
}

function startCall(peer, video) {
  if (state.call) {
    toast('You are already in a call.', 'error');
    return;
  }
  if (!socket.open) {
    toast('Not connected.', 'error');
    return;
  }
  const call = { id: `call-${randomId()}`, peer, video, role: 'caller', status: 'calling', pc: null, local: null, remote: null, candidates: [], ready: null };
  state.call = call;
  call.ringTimer = setTimeout(() => {
    if (state.call === call && call.status === 'calling') {
      signalPeer(peer, { type: 'hangup' }, call.id);
      endCall(`${peer} did not answer.`);
    }
  }, RING_TIMEOUT_MS);
  signalPeer(peer, { type: 'invite', video }, call.id);
  renderCall();
}

async function onSignal(f) {
  const p = f.payload;
  if (!p || typeof p !== 'object' || typeof f.from !== 'string') return;
  const call = state.call;
  if (p.type === 'invite') {
    if (call && call.id !== f.call_id) {
      signalPeer(f.from, { type: 'busy' }, f.call_id);
      return;
    }
    if (call) return;
    state.call = { id: f.call_id, peer: f.from, video: p.video !== false, role: 'callee', status: 'ringing', pc: null, local: null, remote: null, candidates: [], ready: null };
    renderCall();
    return;
  }
  if (!call || call.id !== f.call_id || call.peer !== f.from) return;
  try {
    switch (p.type) {
      case 'accept':
        if (call.role !== 'caller' || call.status !== 'calling') return;
        clearTimeout(call.ringTimer);
        setCallStatus(call, 'connecting');
        call.ready = setupPeer(call);
        await call.ready;
        if (state.call !== call) return;
        await call.pc.setLocalDescription(await call.pc.createOffer());
        signalPeer(call.peer, { type: 'offer', sdp: call.pc.localDescription.sdp }, call.id);
        break;
      case 'offer':
        // The offer goes to every tab of ours; one still ringing was answered in another.
        if (call.status === 'ringing') {
          endCall('Answered on another device.');
          return;
        }
        await call.ready;
        if (state.call !== call || !call.pc) return;
        await call.pc.setRemoteDescription({ type: 'offer', sdp: p.sdp });
        await flushCandidates(call);
        await call.pc.setLocalDescription(await call.pc.createAnswer());
        signalPeer(call.peer, { type: 'answer', sdp: call.pc.localDescription.sdp }, call.id);
        break;
      case 'answer':
        if (!call.pc) return;
        await call.pc.setRemoteDescription({ type: 'answer', sdp: p.sdp });
        await flushCandidates(call);
        break;
      case 'ice':
        if (call.pc?.remoteDescription) await call.pc.addIceCandidate(p.candidate);
        else call.candidates.push(p.candidate);
        break;
      case 'decline':
        endCall(`${call.peer} declined the call.`);
        break;
      case 'busy':
        endCall(`${call.peer} is in another call.`);
        break;
      case 'hangup':
        endCall(call.status === 'ringing' ? `Missed call from ${call.peer}.` : `${call.peer} hung up.`);
        break;
      default:
        break;
    }
  } catch (e) {
    if (state.call === call) {
      signalPeer(call.peer, { type: 'hangup' }, call.id);
      endCall(`Call failed: ${e.message}`);
    }
  }
}

async function flushCandidates(call) {
  const queued = call.candidates;
  call.candidates = [];
  for (const c of queued) await call.pc.addIceCandidate(c);
}

async function getMedia(video) {
  if (!navigator.mediaDevices?.getUserMedia) return null;
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch {
    if (!video) return null;
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch {
      return null;
    }
  }
}

async function setupPeer(call) {
  call.local = await getMedia(call.video);
  if (state.call !== call) {
    call.local?.getTracks().forEach((t) => t.stop());
    return;
  }
  // No ICE servers: host candidates are enough on one machine or one LAN.
  const pc = new RTCPeerConnection({ iceServers: [] });
  call.pc = pc;
  if (call.local) {
    for (const track of call.local.getTracks()) pc.addTrack(track, call.local);
    if (!call.video || call.local.getVideoTracks().length === 0) pc.addTransceiver('video', { direction: 'recvonly' });
  } else {
    // Without a microphone or camera we can still see and hear the other side.
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  pc.onicecandidate = (e) => {
    if (e.candidate && state.call === call) signalPeer(call.peer, { type: 'ice', candidate: e.candidate.toJSON() }, call.id);
  };
  pc.ontrack = (e) => {
    if (!call.remote) call.remote = e.streams[0] ?? new MediaStream();
    if (!e.streams[0]) call.remote.addTrack(e.track);
    renderCall();
  };
  pc.onconnectionstatechange = () => {
    if (state.call !== call) return;
    const s = pc.connectionState;
    if (s === 'connected') setCallStatus(call, 'connected');
    else if (s === 'disconnected' && call.status === 'connected') setCallStatus(call, 'reconnecting');
    else if (s === 'failed') {
      signalPeer(call.peer, { type: 'hangup' }, call.id);
      endCall('The call could not connect.');
    }
  };
  renderCall();
}

function setCallStatus(call, status) {
  call.status = status;
  if (status === 'connected') call.connectedAt = call.connectedAt ?? Date.now();
  renderCall();
}

function acceptCall() {
  const call = state.call;
  if (!call || call.status !== 'ringing') return;
  setCallStatus(call, 'connecting');
  call.ready = setupPeer(call);
  call.ready.then(() => {
    if (state.call === call) signalPeer(call.peer, { type: 'accept' }, call.id);
  });
}

function declineCall() {
  const call = state.call;
  if (!call) return;
  signalPeer(call.peer, { type: 'decline' }, call.id);
  endCall();
}

function hangUp() {
  const call = state.call;
  if (!call) return;
  signalPeer(call.peer, { type: 'hangup' }, call.id);
  endCall('Call ended.');
}

function endCall(reason) {
  const call = state.call;
  if (!call) return;
  clearTimeout(call.ringTimer);
  call.local?.getTracks().forEach((t) => t.stop());
  try {
    call.pc?.close();
  } catch {
    // already closed
  }
  state.call = null;
  renderCall(reason);
}

let callView = null;

function renderCall(endedReason) {
  const host = document.getElementById('call-root');
  if (!host) return;
  const call = state.call;
  if (!call) {
    clear(host);
    callView = null;
    if (endedReason) toast(endedReason);
    return;
  }
  if (!callView || callView.id !== call.id) {
    clear(host);
    const remote = h('video', { class: 'remote-video', autoplay: true, playsinline: true, 'aria-label': `Video from ${call.peer}` });
    const local = h('video', { class: 'local-video', autoplay: true, playsinline: true, muted: true, 'aria-label': 'Your camera' });
    const status = h('p', { class: 'call-status', role: 'status', 'aria-live': 'polite' });
    const buttons = h('div', { class: 'call-buttons' });
    const videos = h('div', { class: 'videos', hidden: true }, remote, local);
    const panel = h('section', { class: 'call', id: 'call', role: 'dialog', 'aria-label': `Call with ${call.peer}` },
      videos, status, buttons);
    host.append(panel);
    callView = { id: call.id, panel, videos, remote, local, status, buttons, shownStatus: null };
  }
  const v = callView;
  v.panel.dataset.callState = call.status;
  if (call.local && v.local.srcObject !== call.local) v.local.srcObject = call.local;
  if (call.remote && v.remote.srcObject !== call.remote) v.remote.srcObject = call.remote;
  v.local.hidden = !call.local || call.local.getVideoTracks().length === 0;
  // Nothing to show before media flows (ringing, or a voice call without any video).
  v.videos.hidden = !call.remote && v.local.hidden;
  const texts = {
    calling: `Calling ${call.peer}…`,
    ringing: `${call.peer} is calling you${call.video ? ' (video)' : ''}`,
    connecting: `Connecting to ${call.peer}…`,
    connected: `In a call with ${call.peer}`,
    reconnecting: `Reconnecting to ${call.peer}…`,
  };
  v.status.textContent = texts[call.status] ?? call.status;
  if (v.shownStatus === call.status) return;
  v.shownStatus = call.status;
  const buttons = clear(v.buttons);
  if (call.status === 'ringing') {
    buttons.append(
      h('button', { type: 'button', class: 'accept', onclick: acceptCall }, 'Accept'),
      h('button', { type: 'button', class: 'danger', onclick: declineCall }, 'Decline'));
  } else {
    const toggle = (kind, label) => {
      const b = h('button', {
        type: 'button', class: 'ghost', 'aria-pressed': 'false',
        onclick: () => {
          const tracks = kind === 'audio' ? call.local?.getAudioTracks() : call.local?.getVideoTracks();
          if (!tracks?.length) return;
          const off = b.getAttribute('aria-pressed') !== 'true';
          tracks.forEach((t) => { t.enabled = !off; });
          b.setAttribute('aria-pressed', String(off));
        },
      }, label);
      return b;
    };
    appendChildren(buttons, [toggle('audio', 'Mute'), call.video ? toggle('video', 'Camera off') : null,
      h('button', { type: 'button', class: 'danger', onclick: hangUp }, 'Hang up')]);
  }
}

// ---------------------------------------------------------------------------------------
// boot
// ---------------------------------------------------------------------------------------

function logout(notice) {
  const auth = state.auth;
  if (state.call) hangUp();
  socket.stop();
  if (auth) {
    fetch('/api/auth/logout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${auth.access}` },
      body: JSON.stringify({ refresh: auth.refresh }),
    }).catch(() => {});
  }
  setAuth(null);
  clearInterval(roomListPoll);
  state.rooms.clear();
  state.summaries.clear();
  state.active = null;
  shell = null;
  pane = null;
  document.body.classList.remove('in-room');
  if (location.hash) history.replaceState(null, '', location.pathname);
  renderAuth(notice);
}

function route() {
  if (!state.auth || !shell) return;
  const match = /^#\/room\/(.+)$/.exec(location.hash);
  if (match) showRoom(decodeURIComponent(match[1]).toLowerCase());
  else showLobby();
}

window.addEventListener('hashchange', route);

/** How often the room list is reloaded: the server does not announce new memberships (a
 *  direct chat someone opened with us, a private room we were added to). */
const ROOM_LIST_POLL_MS = 10_000;
let roomListPoll = null;

async function startApp() {
  renderShell();
  route();
  socket.start();
  clearInterval(roomListPoll);
  roomListPoll = setInterval(() => {
    if (state.auth && state.conn === 'online') loadRoomList();
  }, ROOM_LIST_POLL_MS);
  await loadRoomList();
}

window.addEventListener('focus', () => {
  if (state.auth && shell && state.conn === 'online') scheduleRoomListRefresh();
});

async function boot() {
  const host = document.body;
  if (!document.getElementById('toasts')) host.append(h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' }));
  if (!document.getElementById('call-root')) host.append(h('div', { id: 'call-root' }));
  const stored = readStoredAuth();
  if (!stored) {
    renderAuth();
    return;
  }
  state.auth = stored;
  scheduleRefresh();
  try {
    const data = await api('GET', '/api/me');
    const user = data?.user ?? data;
    if (user?.username) setAuth({ ...state.auth, user });
    startApp();
  } catch (e) {
    if (e instanceof AuthLost || (e instanceof ApiError && e.status === 401)) {
      setAuth(null);
      renderAuth('Your session has ended. Please log in again.');
    } else {
      // The server is unreachable: start anyway; the socket keeps retrying.
      startApp();
    }
  }
}

boot();
