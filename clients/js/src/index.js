// Parley's JavaScript client: an ES module with no dependencies, for browsers and Node >= 20.
//
// - Session (session.js): register, login, refresh, logout and authorized REST calls.
// - Connection (connection.js): the socket, kept open, with catch-up and retried sends.
// - errors.js: typed errors carrying the server's error codes.
// - protocol.js / protocol.d.ts: frame types, generated from the Rust protocol's JSON Schema.

export { Session, tokenClaims, tokenExpiry, tokenIssuedAt } from './session.js';
export { Connection, checkClientFrame, randomClientId } from './connection.js';
export { ApiError, AuthLost, FrameError, NotConnected, ParleyError, RequestTimeout } from './errors.js';
export { CLIENT_FRAME_FIELDS, CLIENT_FRAME_TYPES, ERROR_CODES, SERVER_FRAME_FIELDS, SERVER_FRAME_TYPES } from './protocol.js';
