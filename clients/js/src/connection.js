// The socket: requests matched to replies by `ref`, reconnect with bounded exponential
// backoff and jitter, keep-alive pings, renewal of the socket's authorization when the
// server warns (`expiring`), rooms rejoined after a reconnect with the missed messages
// fetched (`history` after the newest id seen), and sends retried under one `client_id`
// until the server acknowledges them.

import { AuthLost, ApiError, FrameError, NotConnected, RequestTimeout } from './errors.js';
import { CLIENT_FRAME_FIELDS } from './protocol.js';

const OPEN = 1;

/** Close codes the server uses (docs/protocol.md): after these the socket is not reopened. */
const CLOSE_LOGGED_OUT = 4004;
/** Staff deactivated or deleted the account (or turned guests off): its tokens are refused. */
const CLOSE_ACCOUNT_DISABLED = 4005;

/** Error codes after which a `send` is tried again with the same `client_id`. */
const RETRYABLE = new Set(['not_connected', 'timeout', 'unavailable', 'rate_limited', 'not_joined', 'slow_consumer']);

/** Message ids remembered per room to drop duplicates (live frames racing the catch-up). */
const SEEN_IDS_KEPT = 2_000;

/** Pages of `history` fetched per room to catch up after a reconnect (100 messages each). */
const CATCH_UP_MAX_PAGES = 50;

/** Tries to rejoin one room after a reconnect when joins are rate-limited. */
const REJOIN_ATTEMPTS = 5;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A random id for `client_id` (letters and digits; the protocol allows 1–64 of these). */
export function randomClientId() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Checks an outgoing frame against the protocol's fields (generated from the Rust types), so a
 *  mistake fails here with the code the server would have answered. */
export function checkClientFrame(frame) {
  const spec = CLIENT_FRAME_FIELDS[frame?.type];
  if (!spec) throw new FrameError({ code: 'unknown_type', message: `unknown frame type ${JSON.stringify(frame?.type)}` });
  for (const field of spec.required) {
    if (frame[field] === undefined || frame[field] === null) {
      throw new FrameError({ code: 'missing_field', message: `\`${frame.type}\` frame: missing field \`${field}\`` });
    }
  }
  for (const field of Object.keys(frame)) {
    if (field !== 'type' && field !== 'ref' && !spec.required.includes(field) && !spec.optional.includes(field)) {
      throw new FrameError({ code: 'unknown_field', message: `\`${frame.type}\` frame: unknown field \`${field}\`` });
    }
  }
}

/**
 * One logical connection to a Parley server: it stays open (reconnecting as needed) from
 * `start()` until `stop()` or until the session is lost.
 *
 * Options:
 * - `session` (required): a Session holding the tokens.
 * - `url`: the socket's URL without the token (default: `/ws` on the page's origin, or
 *   derived from the session's `baseUrl`).
 * - `WebSocket`: the constructor (default the global one; Node 20 needs e.g. the `ws` package).
 * - `backoffMinMs` (500), `backoffMaxMs` (8,000): the reconnect delay doubles from the first
 *   to the second; each wait is drawn between half the ceiling and the ceiling.
 * - `pingIntervalMs` (25,000): a `ping` this often; no `pong` within `requestTimeoutMs` closes
 *   the socket and reconnects.
 * - `requestTimeoutMs` (10,000): how long a request waits for its reply.
 * - `sendAttempts` (20): how many times `send` tries before giving up.
 */
export class Connection {
  constructor(options) {
    if (!options?.session) throw new TypeError('Connection needs a session');
    this.session = options.session;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError('no WebSocket constructor: pass one as `WebSocket`');
    this.url = options.url ?? defaultUrl(this.session.baseUrl);
    this.backoffMinMs = options.backoffMinMs ?? 500;
    this.backoffMaxMs = options.backoffMaxMs ?? 8_000;
    this.pingIntervalMs = options.pingIntervalMs ?? 25_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.sendAttempts = options.sendAttempts ?? 20;
    /** 'offline' | 'connecting' | 'online' | 'reconnecting' */
    this.state = 'offline';
    /** When the next reconnect attempt is due (epoch ms), while reconnecting. */
    this.retryAt = 0;
    this.ws = null;
    this.wanted = false;
    this.attempt = 0;
    this.seq = 0;
    this.retryTimer = null;
    this.keepalive = null;
    /** The access token the open socket is authorized with. */
    this.socketToken = null;
    /** The renewal in flight: {token, promise}. */
    this.renewing = null;
    /** ref → {resolve, reject, timer} */
    this.pending = new Map();
    /** room → {lastSeen, seen: Set, joined: boolean, reply} for rooms joined through `join` */
    this.rooms = new Map();
    /** event → Set of listeners */
    this.listeners = new Map();
    /** Resolved (and replaced) whenever the socket opens or a room is rejoined. */
    this.changed = deferred();
    this.session.onTokens((tokens) => {
      if (tokens && this.open && tokens.access !== this.socketToken) this.renew().catch(() => {});
    });
  }

  /**
   * Listens to an event; returns a function that removes the listener. Events:
   * `frame` (every server frame), `message` (a `message` frame in a room joined through
   * `join`, each id once, live or caught up), `caughtUp` ({room, count}), `state` (the new
   * state), `open`, `close` ({code, reason}), `renewed` (the renewed frame), `authLost`
   * (the AuthLost error: log in again), `error` (an `error` frame that answers no request).
   */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  emit(event, value) {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** True while the socket is open. */
  get open() {
    return this.ws?.readyState === OPEN;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  /** Opens the socket and keeps it open. */
  start() {
    this.wanted = true;
    if (!this.ws) this.connect();
  }

  /** Closes the socket for good (until the next `start`); pending requests fail. */
  stop() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.keepalive);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'client stopped');
    this.failPending();
    for (const r of this.rooms.values()) r.joined = false;
    this.setState('offline');
    // Sends waiting for the socket give up (`ready` sees that it is no longer wanted).
    this.wake();
  }

  /** Reconnects now instead of waiting out the backoff (e.g. the network came back). */
  retryNow() {
    if (!this.wanted || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  lose(error) {
    this.stop();
    this.emit('authLost', error);
  }

  async connect() {
    clearTimeout(this.retryTimer);
    if (!this.wanted || this.ws) return;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let token;
    try {
      token = await this.session.freshAccess();
      // After repeated failures, check that the credentials still work: a refused upgrade
      // looks like any other failed connection to a WebSocket client.
      if (this.attempt >= 3) await this.session.request('GET', '/api/me');
      token = this.session.tokens.access;
    } catch (e) {
      if (e instanceof AuthLost || (e instanceof ApiError && e.status === 401)) return this.lose(e instanceof AuthLost ? e : new AuthLost(e.message));
      return this.scheduleRetry();
    }
    if (!this.wanted || this.ws) return;
    const sep = this.url.includes('?') ? '&' : '?';
    let ws;
    try {
      ws = new this.WebSocket(`${this.url}${sep}token=${encodeURIComponent(token)}`);
    } catch {
      return this.scheduleRetry();
    }
    this.ws = ws;
    this.socketToken = token;
    this.renewing = null;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.setState('online');
      clearInterval(this.keepalive);
      this.keepalive = setInterval(() => {
        this.request({ type: 'ping' }).catch(() => {
          if (this.ws === ws) ws.close(4002, 'keep-alive timeout');
        });
      }, this.pingIntervalMs);
      this.emit('open');
      this.wake();
      this.rejoin(ws);
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
    ws.onerror = () => {};
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.keepalive);
      this.failPending();
      for (const r of this.rooms.values()) r.joined = false;
      this.emit('close', { code: event.code, reason: event.reason });
      if (event.code === CLOSE_LOGGED_OUT) return this.lose(new AuthLost('signed out (logged out elsewhere)'));
      if (event.code === CLOSE_ACCOUNT_DISABLED) return this.lose(new AuthLost('the account was deactivated'));
      if (this.wanted) this.scheduleRetry();
    };
  }

  scheduleRetry() {
    const ceiling = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  failPending() {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new NotConnected('the connection closed before the reply'));
    }
    this.pending.clear();
  }

  wake() {
    const old = this.changed;
    this.changed = deferred();
    old.resolve();
  }

  /** Sends a frame without waiting for anything; false when the socket is not open. */
  sendRaw(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a fresh `ref`; resolves with the reply frame, rejects with FrameError
   *  (the server's refusal), NotConnected or RequestTimeout. */
  request(frame, { timeoutMs = this.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      checkClientFrame(frame);
      const ref = `r${++this.seq}`;
      if (!this.sendRaw({ ...frame, ref })) {
        reject(new NotConnected());
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RequestTimeout(`no reply to \`${frame.type}\` within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
    });
  }

  /** A request without a success reply (`typing`, `signal`): resolves once no error came
   *  back within `timeoutMs` (default 2 s), rejects with the FrameError if one did. */
  notify(frame, { timeoutMs = 2_000 } = {}) {
    return this.request(frame, { timeoutMs }).then(
      () => undefined,
      (e) => {
        if (e instanceof RequestTimeout) return undefined;
        throw e;
      },
    );
  }

  /** Hands the open socket the session's current access token (`renew`); resolves with the
   *  `renewed` frame. One renewal per token is in flight at a time. */
  renew() {
    const token = this.session.tokens?.access;
    if (!token) return Promise.reject(new AuthLost('logged out'));
    if (this.renewing?.token === token) return this.renewing.promise;
    const promise = this.request({ type: 'renew', token })
      .then((reply) => {
        this.socketToken = token;
        this.emit('renewed', reply);
        return reply;
      })
      .finally(() => {
        if (this.renewing?.promise === promise) this.renewing = null;
      });
    this.renewing = { token, promise };
    return promise;
  }

  /** The server warned that the socket's authorization ends soon: refresh and renew. */
  async onExpiring() {
    try {
      if (this.session.tokens?.access === this.socketToken) await this.session.refresh();
      // The tokens listener renews; renew here too in case the tokens were already fresh.
      if (this.socketToken !== this.session.tokens?.access) await this.renew();
    } catch (e) {
      if (e instanceof AuthLost) this.lose(e);
      // Otherwise the socket closes with 4003 at expiry and reconnects with a fresh token.
    }
  }

  dispatch(frame) {
    const waiter = typeof frame.ref === 'string' ? this.pending.get(frame.ref) : undefined;
    if (waiter) {
      this.pending.delete(frame.ref);
      clearTimeout(waiter.timer);
      if (frame.type === 'error') waiter.reject(new FrameError(frame));
      else waiter.resolve(frame);
    } else if (frame.type === 'error') {
      this.emit('error', new FrameError(frame));
    }
    if (frame.type === 'expiring') this.onExpiring();
    if (frame.type === 'message') this.deliver(frame);
    this.emit('frame', frame);
  }

  /** Passes a message to the `message` listeners unless this room already delivered its id. */
  deliver(message) {
    const r = this.rooms.get(message.room);
    if (!r || typeof message.id !== 'number' || r.seen.has(message.id)) return false;
    r.seen.add(message.id);
    if (r.seen.size > SEEN_IDS_KEPT) {
      const drop = [...r.seen].sort((a, b) => a - b).slice(0, r.seen.size - SEEN_IDS_KEPT);
      for (const id of drop) r.seen.delete(id);
    }
    if (message.id > r.lastSeen) r.lastSeen = message.id;
    this.emit('message', message);
    return true;
  }

  /** Joins a room and keeps it joined across reconnects, catching up on what was missed.
   *  Resolves with the `joined` reply (its `history` counts as seen, not delivered). */
  async join(room) {
    await this.ready();
    const reply = await this.request({ type: 'join', room });
    // Keyed by the server's spelling of the name (lower-case), as frames name the room.
    let r = this.rooms.get(reply.room);
    if (!r) {
      r = { lastSeen: 0, seen: new Set(), joined: false };
      this.rooms.set(reply.room, r);
    }
    for (const m of reply.history ?? []) {
      r.seen.add(m.id);
      if (m.id > r.lastSeen) r.lastSeen = m.id;
    }
    r.joined = true;
    this.wake();
    return reply;
  }

  /** Leaves a room and stops keeping it joined. */
  async leave(room) {
    this.rooms.delete(room);
    return this.request({ type: 'leave', room });
  }

  /** After a reconnect: joins every tracked room again and delivers what was missed. */
  async rejoin(ws) {
    for (const [name, r] of [...this.rooms]) {
      const after = r.lastSeen;
      for (let attempt = 0; attempt < REJOIN_ATTEMPTS; attempt++) {
        if (this.ws !== ws || !this.rooms.has(name)) return;
        try {
          const reply = await this.request({ type: 'join', room: name });
          r.joined = true;
          this.wake();
          const count = after > 0 ? this.catchUp(reply.history ?? [], after) + (await this.fetchAfter(name, after)) : this.catchUp(reply.history ?? [], 0);
          this.emit('caughtUp', { room: name, count });
          break;
        } catch (e) {
          // Joins share a per-user budget: wait and try this room again.
          if (e instanceof FrameError && e.code === 'rate_limited') await sleep(1_000 + Math.random() * 1_000);
          else {
            if (e instanceof FrameError) this.emit('error', e);
            break;
          }
        }
      }
    }
  }

  catchUp(messages, after) {
    let count = 0;
    for (const m of [...messages].sort((a, b) => a.id - b.id)) if (m.id > after) count += this.deliver(m) ? 1 : 0;
    return count;
  }

  /** Delivers every message of `room` newer than `after`. */
  async fetchAfter(room, after) {
    let count = 0;
    await this.historyAfter(room, after, (messages) => {
      for (const m of messages) count += this.deliver(m) ? 1 : 0;
    });
    return count;
  }

  /** Reads every message of `room` newer than `after`, oldest first, page by page (at most
   *  50 pages of 100), handing each page to `onPage`: a catch-up after a reconnect. */
  async historyAfter(room, after, onPage) {
    let cursor = after;
    for (let page = 0; page < CATCH_UP_MAX_PAGES; page++) {
      const reply = await this.request({ type: 'history', room, after: cursor, limit: 100 });
      const messages = reply.messages ?? [];
      onPage(messages);
      if (!reply.has_more || messages.length === 0) return;
      cursor = messages[messages.length - 1].id;
    }
  }

  /** A page of a room's history (`before`/`after` a message id, `limit` up to 100). */
  history(room, { before, after, limit } = {}) {
    const frame = { type: 'history', room };
    if (before !== undefined) frame.before = before;
    if (after !== undefined) frame.after = after;
    if (limit !== undefined) frame.limit = limit;
    return this.request(frame);
  }

  /** Resolves once the socket is open and, if given, `room` is joined on it. */
  async ready(room) {
    while (!this.open || (room !== undefined && !this.rooms.get(room)?.joined)) {
      if (!this.wanted) throw new NotConnected('the connection was stopped');
      await this.changed.promise;
    }
  }

  /**
   * Posts a message and resolves with the server's `message` frame (the acknowledgement).
   * Retried under the same `client_id` (the server stores it once) when the socket drops, the
   * reply is late, or the server answers `unavailable`, `rate_limited` or `not_joined`; the
   * room must have been joined with `join`. Rejects with FrameError when refused for good.
   * `replyTo`: the id of the message this one answers (a message of the same room).
   */
  async send(room, body, { clientId = randomClientId(), replyTo } = {}) {
    let last;
    for (let attempt = 0; attempt < this.sendAttempts; attempt++) {
      if (attempt > 0) {
        const ceiling = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(attempt - 1, 30));
        await sleep(ceiling / 2 + Math.random() * (ceiling / 2));
      }
      try {
        await this.ready(this.rooms.has(room) ? room : undefined);
        const frame = { type: 'send', room, body, client_id: clientId };
        if (replyTo !== undefined && replyTo !== null) frame.reply_to = replyTo;
        const reply = await this.request(frame);
        return reply;
      } catch (e) {
        last = e;
        // Stopped (logout, the app closing): nothing will reconnect, so do not wait.
        if (!RETRYABLE.has(e.code) || !this.wanted) throw e;
      }
    }
    throw last;
  }
}

function defaultUrl(baseUrl) {
  if (baseUrl) return `${baseUrl.replace(/^http/, 'ws')}/ws`;
  if (globalThis.location) return `${globalThis.location.protocol === 'https:' ? 'wss' : 'ws'}://${globalThis.location.host}/ws`;
  throw new TypeError('no url: pass `url` or a session with a `baseUrl`');
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
