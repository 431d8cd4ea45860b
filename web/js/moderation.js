// Staff and owner controls on other people's messages: "Remove" in a message's actions, for
// the room's owners and staff only (as the room list and `GET /api/me` say; the server checks
// again: `DELETE /api/rooms/{room}/messages/{id}`, docs/api.md "Room moderation"). It takes two
// clicks, and a refusal shows next to the control. messages.js calls `moderationControl` for
// each message that is not the user's own; the slot it returns is filled at once when the
// user may manage the room, or later by `fillModeration` (the room list, which says so, may
// arrive after the messages are drawn: room-settings.js calls it when it repaints).

import { h } from './dom.js';
import { api, ApiError } from './api.js';
import { state } from './state.js';

/** How long the first click keeps the control armed. */
const CONFIRM_MS = 4000;

/** Whether the user may manage `roomName`: its owner (as the room list says) or staff. */
export function mayManage(roomName) {
  const s = state.summaries.get(roomName);
  if (!s || s.kind === 'direct') return false;
  return s.role === 'owner' || Boolean(state.auth?.user?.is_staff);
}

/** The slot of the moderator's delete control for message `m` of room `roomName` (null for a
 *  deleted message), filled now if the user may manage the room. */
export function moderationControl(roomName, m) {
  if (m.deleted_at) return null;
  const slot = h('span', { class: 'mod-controls', dataset: { room: roomName, id: String(m.id), sender: m.sender } });
  if (mayManage(roomName)) fill(slot);
  return slot;
}

/** Fills the empty moderator slots of `roomName`'s messages on screen (the user manages it). */
export function fillModeration(roomName) {
  for (const slot of document.querySelectorAll('.mod-controls')) {
    if (slot.dataset.room === roomName && !slot.firstChild) fill(slot);
  }
}

function fill(slot) {
  const { room, id, sender } = slot.dataset;
  const error = h('span', { class: 'field-error', role: 'alert' });
  let armedUntil = 0;
  const button = h('button', {
    type: 'button', class: 'link danger mod-delete', 'aria-label': 'Remove message (moderator)',
  }, 'Remove');
  const disarm = () => {
    armedUntil = 0;
    button.textContent = 'Remove';
    button.setAttribute('aria-label', 'Remove message (moderator)');
  };
  button.addEventListener('click', async () => {
    if (armedUntil <= Date.now()) {
      error.textContent = '';
      armedUntil = Date.now() + CONFIRM_MS;
      button.textContent = `Really remove ${sender}'s message?`;
      button.setAttribute('aria-label', 'Confirm remove message');
      setTimeout(() => {
        if (armedUntil <= Date.now()) disarm();
      }, CONFIRM_MS + 50);
      return;
    }
    disarm();
    try {
      // The `deleted` frame that follows repaints the message as a tombstone.
      await api('DELETE', `/api/rooms/${encodeURIComponent(room)}/messages/${id}`);
    } catch (e) {
      error.textContent = e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message || e);
    }
  });
  slot.append(button, error);
}
