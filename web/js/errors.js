// The one place where the server's error codes (docs/protocol.md, "Error codes") become
// sentences for people, and where such a sentence is shown next to the control that caused
// it (never the server's raw text, never a toast over the chat). Imports only dom.js.

import { h } from './dom.js';

/** What an error code means to a user, whatever they were doing. */
const BY_CODE = {
  invalid_room_name: 'Room names use only letters, digits, "-", "_" and ".", and start with a letter or digit.',
  body_too_long: 'That message is too long. Shorten it or split it in two.',
  unauthorized: 'Your session has ended. Please log in again.',
  forbidden: 'You are not allowed to do that.',
  not_found: 'That could not be found.',
  not_member: 'Only members can do that here.',
  not_joined: 'You are not in this room yet. Wait a moment and try again.',
  rate_limited: 'You are going a bit fast. Wait a few seconds and try again.',
  conflict: 'That clashes with a change someone just made. Reload the room and try again.',
  too_many_rooms: 'You are in too many rooms at once. Leave one first.',
  too_many_reactions: 'This message has as many different reactions as allowed.',
  guest_not_allowed: 'Guests cannot do that. Sign up for an account to do it.',
  account_disabled: 'That account has been deactivated.',
  banned: 'You have been banned from this room.',
  muted: 'You are muted in this room, so you cannot write here.',
  read_only: 'This room is read-only.',
  unavailable: 'The server is busy or restarting. Try again in a moment.',
  internal: 'Something went wrong on the server. Try again in a moment.',
  request_timeout: 'The server took too long to answer. Try again.',
  too_large: 'That is more than the server accepts.',
  invalid_field: 'Something in that request was not accepted. Check what you typed.',
  missing_field: 'Something required is missing. Check what you typed.',
  username_taken: 'That user name is taken.',
  weak_password: 'Choose a longer password.',
  invalid_credentials: 'Wrong user name or password.',
};

/** Where the same code means something more precise. Key: `{action}:{code}`. */
const BY_ACTION = {
  'direct:not_found': 'There is no user with that name.',
  'direct:invalid_field': 'That is not a valid user name.',
  'direct:conflict': 'You cannot start a direct chat with yourself.',
  'invite:not_found': 'There is no user with that name.',
  'invite:invalid_field': 'That is not a valid user name.',
  'invite:banned': 'That user is banned from this room: lift the ban first.',
  'create:guest_not_allowed': 'Guests cannot create rooms. Sign up for an account to make one.',
  'create:conflict': 'A room with that name already exists. Join it, or pick another name.',
  'join:not_found': 'There is no room with that name.',
  'join:not_member': 'That room is private: ask a member to add you.',
  'leave:conflict': 'You are the last owner: make someone else owner before you leave.',
  'edit:forbidden': 'You can only edit your own messages.',
  'delete:forbidden': 'You cannot delete that message.',
  'send:not_joined': 'Not connected to this room yet. It will be sent once you are.',
};

/** A sentence for error `e` (an ApiError or FrameError with a `code`, a network failure, or
 *  anything else) met while doing `action` (e.g. 'direct', 'send'; optional). */
export function describeError(e, action = '') {
  const code = typeof e?.code === 'string' ? e.code : '';
  if (action && BY_ACTION[`${action}:${code}`]) return BY_ACTION[`${action}:${code}`];
  if (BY_CODE[code]) return BY_CODE[code];
  if (e instanceof TypeError || code === 'network' || code === 'offline') {
    return 'Cannot reach the server. Check your connection and try again.';
  }
  return 'That did not work. Try again in a moment.';
}

/** The error line belonging to `control` (a form, or any element): a `role=alert` paragraph
 *  right after it, made on first use. `describeError` text or '' to clear it. */
export function showError(control, text) {
  let line = control.nextElementSibling;
  if (!line || !line.classList.contains('control-error')) {
    if (!text) return;
    line = h('p', { class: 'control-error', role: 'alert' });
    control.after(line);
  }
  line.textContent = text;
  line.hidden = !text;
}

/** Clears the error line next to `control`, if any. */
export function clearError(control) {
  showError(control, '');
}
