// Typed errors: each carries the server's stable error code (docs/protocol.md, "Errors").

/** Base of every error this library throws; `code` is a server error code or one of the
 *  library's own (`not_connected`, `timeout`, `auth_lost`, `network`). */
export class ParleyError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message || code);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A REST call answered with an error status (`{"error": {code, message}}`). */
export class ApiError extends ParleyError {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(code, message);
    this.status = status;
  }
}

/** The server refused a frame: the `error` frame that answered it. */
export class FrameError extends ParleyError {
  /** @param {{code: string, message?: string, ref?: string}} frame */
  constructor(frame) {
    super(frame.code, frame.message || frame.code);
    this.ref = frame.ref;
    this.frame = frame;
  }
}

/** The session cannot be kept alive (no tokens, or the refresh token was refused): log in again. */
export class AuthLost extends ParleyError {
  constructor(message = 'the session has ended') {
    super('auth_lost', message);
  }
}

/** A request could not be sent, or its socket closed before the reply came. */
export class NotConnected extends ParleyError {
  constructor(message = 'not connected') {
    super('not_connected', message);
  }
}

/** No reply within the request's time limit. */
export class RequestTimeout extends ParleyError {
  constructor(message = 'no reply in time') {
    super('timeout', message);
  }
}
