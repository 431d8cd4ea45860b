// Declarations of the library's API (hand-written); the frame types come from protocol.d.ts,
// which scripts/gen-protocol.mjs generates from the Rust protocol's JSON Schema.

import type {
  ClientFrame,
  ClientFrameType,
  ErrorCode,
  HistoryFrame,
  JoinedFrame,
  LeftFrame,
  Message,
  MessageFrame,
  RenewedFrame,
  ServerFrame,
} from './protocol.js';

export * from './protocol.js';

/** A login's tokens; `user` as the login answered it. */
export interface Tokens {
  access: string;
  /** null for a guest, whose session ends with its access token. */
  refresh: string | null;
  user?: { id: number; username: string; [key: string]: unknown };
}

export interface SessionOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8080` (default `''`: the page's origin). */
  baseUrl?: string;
  /** `fetch` to use (default the global one). */
  fetch?: typeof fetch;
  /** Tokens of an earlier login. */
  tokens?: Tokens | null;
  /** Runs a refresh exclusively (e.g. across browser tabs with Web Locks). */
  lock?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** Base of every error the library throws. `code` is a server error code or one of
 *  `not_connected`, `timeout`, `auth_lost`, `network`, `http_<status>`. */
export class ParleyError extends Error {
  constructor(code: string, message?: string);
  code: ErrorCode | 'not_connected' | 'timeout' | 'auth_lost' | 'network' | (string & {});
}
/** A REST call answered with an error status. */
export class ApiError extends ParleyError {
  constructor(status: number, code: string, message: string);
  status: number;
}
/** The server refused a frame. */
export class FrameError extends ParleyError {
  constructor(frame: { code: string; message?: string; ref?: string | null });
  ref?: string | null;
  frame: { code: string; message?: string; ref?: string | null };
}
/** The session cannot be kept alive: log in again. */
export class AuthLost extends ParleyError {}
/** Not connected, or the socket closed before the reply. */
export class NotConnected extends ParleyError {}
/** No reply in time. */
export class RequestTimeout extends ParleyError {}

/** The claims of a JWT, unverified ({} when unreadable). */
export function tokenClaims(token: string): Record<string, unknown>;
/** A JWT's expiry in epoch milliseconds (0 when unreadable). */
export function tokenExpiry(token: string): number;
/** A JWT's issue time in epoch milliseconds (0 when unreadable). */
export function tokenIssuedAt(token: string): number;

/** A login: the token pair, kept fresh, and REST calls made with it. */
export class Session {
  constructor(options?: SessionOptions);
  readonly baseUrl: string;
  tokens: Tokens | null;
  /** Called whenever the tokens change (null on logout); returns an unsubscribe. */
  onTokens(fn: (tokens: Tokens | null) => void): () => void;
  /** Replaces the tokens (e.g. rotated by another tab). */
  setTokens(tokens: Tokens | null): void;
  register(username: string, password: string, email?: string): Promise<unknown>;
  login(username: string, password: string): Promise<Tokens>;
  /** Signs in as a guest (`POST /api/auth/guest`): an access token, `refresh: null`. */
  guest(name: string): Promise<Tokens>;
  /** Rotates the pair; one at a time. Rejects with AuthLost when refused. */
  refresh(): Promise<Tokens>;
  /** The access token, refreshed first when it is about to expire. */
  freshAccess(): Promise<string>;
  logout(): Promise<void>;
  /** An authorized REST call (refresh and one retry on 401); the JSON body or null. */
  request<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
}

/** A WebSocket constructor (the browser's, Node 22's, or the `ws` package's). */
export type WebSocketConstructor = new (url: string) => {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
};

export interface ConnectionOptions {
  session: Session;
  /** The socket's URL without the token (default: `/ws` on the session's or the page's origin). */
  url?: string;
  WebSocket?: WebSocketConstructor;
  /** Reconnect backoff bounds in ms (default 500 and 8,000). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** How often to ping (default 25,000 ms). */
  pingIntervalMs?: number;
  /** How long a request waits for its reply (default 10,000 ms). */
  requestTimeoutMs?: number;
  /** How many times `send` tries (default 20). */
  sendAttempts?: number;
}

export type ConnectionState = 'offline' | 'connecting' | 'online' | 'reconnecting';

export interface ConnectionEvents {
  frame: ServerFrame;
  message: MessageFrame;
  caughtUp: { room: string; count: number };
  state: ConnectionState;
  open: undefined;
  close: { code: number; reason: string };
  renewed: RenewedFrame;
  authLost: AuthLost;
  error: FrameError;
}

/** A client frame without its `ref` (the connection adds one), each frame type on its own. */
export type Request = ClientFrame extends infer F ? (F extends unknown ? Omit<F, 'ref'> : never) : never;

/** The frame that answers a request of type T. */
export type ReplyTo<T extends ClientFrameType> = T extends 'join'
  ? JoinedFrame
  : T extends 'leave'
    ? LeftFrame
    : T extends 'send' | 'edit'
      ? ServerFrame & { type: T extends 'send' ? 'message' : 'edited' }
      : T extends 'history'
        ? HistoryFrame
        : T extends 'renew'
          ? RenewedFrame
          : ServerFrame;

/** One logical connection, kept open from `start()` to `stop()`. */
export class Connection {
  constructor(options: ConnectionOptions);
  readonly state: ConnectionState;
  /** When the next reconnect is due (epoch ms), while reconnecting. */
  readonly retryAt: number;
  readonly open: boolean;
  on<E extends keyof ConnectionEvents>(event: E, fn: (value: ConnectionEvents[E]) => void): () => void;
  start(): void;
  stop(): void;
  retryNow(): void;
  /** Sends a frame with a fresh `ref` and resolves with its reply. */
  request<F extends Request>(frame: F, options?: { timeoutMs?: number }): Promise<ReplyTo<F['type']>>;
  /** `typing`, `signal`: resolves unless an error comes back. */
  notify(frame: Request, options?: { timeoutMs?: number }): Promise<void>;
  /** Joins and keeps the room joined across reconnects, delivering missed messages. */
  join(room: string): Promise<JoinedFrame>;
  leave(room: string): Promise<LeftFrame>;
  history(room: string, page?: { before?: number; after?: number; limit?: number }): Promise<HistoryFrame>;
  /** Reads every message newer than `after`, page by page (oldest first). */
  historyAfter(room: string, after: number, onPage: (messages: Message[]) => void): Promise<void>;
  /** Posts with retries under one `client_id`; resolves with the acknowledgement. */
  send(room: string, body: string, options?: { clientId?: string; replyTo?: number }): Promise<MessageFrame>;
  /** Renews the open socket with the session's access token. */
  renew(): Promise<RenewedFrame>;
  /** Resolves once the socket is open (and `room` joined, if given). */
  ready(room?: string): Promise<void>;
}

/** Throws a FrameError (`unknown_type`, `missing_field`, `unknown_field`) for a frame the
 *  server would refuse for its shape. */
export function checkClientFrame(frame: unknown): void;
/** A random `client_id`. */
export function randomClientId(): string;
