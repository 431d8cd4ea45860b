// The socket: the client library's Connection (`/js/parley/`: requests by `ref`, reconnect
// with back-off and jitter, keep-alive pings, renewal when the server warns of expiry, sends
// retried under one client_id), wired to the app through hooks. What frames do is
// frames.js's business.

import { hooks } from './hooks.js';
import { session } from './auth.js';
import { Connection, FrameError } from './parley/index.js';

export { FrameError };

const conn = new Connection({ session });

conn.on('state', (s) => hooks.setConn(s));
conn.on('open', () => hooks.onSocketOpen());
conn.on('close', (event) => hooks.onSocketClosed(event.code));
conn.on('frame', (frame) => hooks.handleFrame(frame));
// The refresh token was refused, this login was signed out elsewhere (close 4004), or staff
// deactivated the account (close 4005).
conn.on('authLost', () => hooks.logout('Your session has ended. Please log in again.'));

/** The app's view of the connection (the library's Connection, with the app's shorthands). */
export const socket = {
  get open() {
    return conn.open;
  },
  get retryAt() {
    return conn.retryAt;
  },
  start: () => conn.start(),
  stop: () => conn.stop(),
  /** Reconnect now (the "Retry now" button, the browser coming back online). */
  retryNow: () => conn.retryNow(),
  /** Sends a frame with a fresh `ref`; resolves with the reply, rejects with its error. */
  request: (frame, timeoutMs) => conn.request(frame, timeoutMs ? { timeoutMs } : undefined),
  /** Fire-and-forget frames (`typing`, `signal`): only an error comes back. */
  notify: (frame, onError) =>
    conn.notify(frame, { timeoutMs: 4_000 }).catch((e) => {
      if (e instanceof FrameError && onError) onError(e);
    }),
  /** Posts with retries under one client_id until acknowledged (waits while offline). */
  send: (room, body, clientId, replyTo) => conn.send(room, body, { clientId, replyTo }),
  /** Every message of a room newer than `after`, page by page. */
  historyAfter: (room, after, onPage) => conn.historyAfter(room, after, onPage),
};

window.addEventListener('online', () => socket.retryNow());
