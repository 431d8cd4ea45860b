// The WebSocket: request/reply by `ref`, reconnect with back-off and jitter, keep-alive pings.
// What frames do is frames.js's business (reached through hooks).

import { hooks } from './hooks.js';
import { state } from './state.js';
import { AuthLost, ensureFreshAccess } from './auth.js';
import { ApiError, api } from './api.js';

/** Error frame answering one request. */
export class FrameError extends Error {
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
    hooks.setConn('offline');
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
    hooks.setConn('connecting');
    try {
      await ensureFreshAccess();
      // After repeated failures, check that the credentials still work (an upgrade refused
      // for a bad token looks like any other failed connection to a browser).
      if (this.attempt >= 3) await api('GET', '/api/me');
    } catch (e) {
      if (e instanceof AuthLost || (e instanceof ApiError && e.status === 401)) {
        hooks.logout('Your session has ended. Please log in again.');
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
      hooks.setConn('online');
      clearInterval(this.keepalive);
      this.keepalive = setInterval(() => {
        this.request({ type: 'ping' }).catch(() => {
          if (this.ws === ws) ws.close(4002, 'keep-alive timeout');
        });
      }, KEEPALIVE_MS);
      hooks.onSocketOpen();
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
      hooks.onSocketClosed(event.code);
      if (this.wanted) this.scheduleRetry();
    };
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = Date.now() + delay;
    hooks.setConn('reconnecting');
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

  /** Hands the open socket the current access token (`renew`): its authorization ends
   *  with the token it was opened with. A refused renewal is left to the `expiring` and
   *  close paths (a reconnect opens with a fresh token). */
  renew() {
    if (!this.open || !state.auth) return;
    this.request({ type: 'renew', token: state.auth.access }).catch(() => {});
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
    hooks.handleFrame(frame);
  }
}

export const socket = new Socket();

hooks.accessRenewed = () => socket.renew();

window.addEventListener('online', () => socket.retryNow());
