// The REST API through the client library's session (bearer token, one retry after a
// refresh, errors as ApiError), and `guarded` for UI actions.

import { toast } from './dom.js';
import { describeError } from './errors.js';
import { hooks } from './hooks.js';
import { AuthLost, session } from './auth.js';
import { ApiError } from './parley/index.js';

export { ApiError };

/** A REST call with the session's bearer token (refreshed first when about to expire, and
 *  once more after a 401); rejects with ApiError (status, code) or AuthLost. */
export function api(method, path, body) {
  return session.request(method, path, body);
}

/** Runs an API call for a UI action; auth loss logs out, other failures are shown. */
export async function guarded(action, onError) {
  try {
    return await action();
  } catch (e) {
    if (e instanceof AuthLost) {
      hooks.logout('Your session has ended. Please log in again.');
      return undefined;
    }
    if (onError) onError(e);
    else toast(describeError(e), 'error');
    return undefined;
  }
}
