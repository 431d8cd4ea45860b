// What each server frame does to the client's state and the screen, and what happens when the
// socket opens or closes.

import { toast } from './dom.js';
import { describeError } from './errors.js';
import { hooks } from './hooks.js';
import { me, room, state } from './state.js';
import { AuthLost, refreshTokens } from './auth.js';
import { renderMessages } from './messages.js';
import { applyReaction } from './reactions.js';
import { directPeer, joinRoom, learnDirectPeer, loadRoomList, markRead, roomLabel, scheduleRoomListRefresh, wantedRooms } from './rooms.js';
import { onSignal } from './calls.js';
import { clearMentions, onMention } from './notify.js';
import { renderAll, renderOnline, renderRoomList, renderTyping } from './views.js';

const TYPING_EXPIRY_MS = 6_000;

export function onSocketOpen() {
  for (const r of state.rooms.values()) r.joined = false;
  for (const name of wantedRooms()) joinRoom(room(name));
  // Rooms may have appeared while we were away (a new direct chat).
  loadRoomList();
}

export function onSocketClosed(code) {
  for (const r of state.rooms.values()) {
    r.joined = false;
    for (const timer of r.typing.values()) clearTimeout(timer);
    r.typing.clear();
  }
  if (code === 4000) toast('The connection fell behind; catching up.', 'info');
  renderAll();
  // 4004 (this login was signed out elsewhere) ends the session: the library reports it as
  // `authLost` (connection.js).
}

export function handleFrame(f) {
  const r = typeof f.room === 'string' ? state.rooms.get(f.room) : undefined;
  switch (f.type) {
    case 'message': {
      if (!r) return;
      const isNew = !r.messages.has(f.id);
      const { type: _t, ref: _r, ...record } = f;
      r.merge([record]);
      noteLastMessage(r.name, f);
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
      noteDeleted(r, f.message_id);
      break;
    }
    case 'reaction': {
      if (!r) return;
      if (applyReaction(r, f) && r.name === state.active) renderMessages(r);
      break;
    }
    case 'presence': {
      if (!r) return;
      if (Array.isArray(f.online)) {
        r.online = f.online;
        r.onlineCount = f.online.length;
      }
      // A folded frame lists every change in `changes`; a single change is `user`/`event`.
      const changes = Array.isArray(f.changes) ? f.changes : [{ user: f.user, event: f.event }];
      for (const c of changes) if (c.event === 'left') stopTyping(r, c.user);
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
        if (f.message_id >= r.newestId()) clearMentions(r.name);
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
    case 'mention':
      onMention(f);
      break;
    case 'expiring':
      // The socket's authorization ends soon: the library refreshes and renews it.
      break;
    case 'error':
      if (f.code === 'unauthorized') {
        refreshTokens()
          .catch((e) => {
            if (e instanceof AuthLost) hooks.logout('Your session has ended. Please log in again.');
          });
      } else if (!f.ref) {
        toast(describeError(f), 'error');
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

/** A deleted message that was its room's last one: the room list shows the newest message
 *  left (as `GET /api/me/rooms` does), and asks the server to be sure. */
function noteDeleted(r, id) {
  const s = state.summaries.get(r.name);
  if (!s?.last_message || s.last_message.id !== id) return;
  const left = r.sorted().filter((m) => !m.deleted_at && m.id !== id).at(-1);
  s.last_message = left ? { id: left.id, sender: left.sender, preview: String(left.body ?? '').slice(0, 100), created_at: left.created_at } : null;
  renderRoomList();
  scheduleRoomListRefresh();
}

/** A new message becomes its room's last message in the room list. */
function noteLastMessage(name, f) {
  const s = state.summaries.get(name);
  if (!s || (s.last_message && s.last_message.id >= f.id)) return;
  s.last_message = { id: f.id, sender: f.sender, preview: String(f.body ?? '').slice(0, 100), created_at: f.created_at };
  renderRoomList();
}
