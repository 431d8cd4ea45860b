// Mentions and notifications (issue 17): which messages mention me (the server says so in a
// message's `mentions`), how many unread mentions each room holds (the room lists'
// `unread_mentions`, then the `mention` frames), the sidebar's mention badge, and browser
// notifications through the Notification API — only while the tab is hidden, never for a
// room muted here (kept in localStorage), and with permission asked only when the user
// presses the button (never on load). Other modules call these few functions; nothing here
// renders a message.

import { h } from './dom.js';
import { hooks } from './hooks.js';
import { me, room, state } from './state.js';

const MUTED_KEY = 'parley.mutedRooms';

/** Room name → unread mentions of me. */
const counts = new Map();

/** Whether the message record `m` mentions the signed-in user. */
export function mentionsMe(m) {
  return Array.isArray(m?.mentions) && m.mentions.includes(me());
}

/** The CSS class a message element gets when it mentions me ('' otherwise). */
export function mentionClass(m) {
  return mentionsMe(m) ? ' mentions-me' : '';
}

/** Rooms whose notifications are muted on this browser. */
function mutedRooms() {
  try {
    const list = JSON.parse(localStorage.getItem(MUTED_KEY) ?? '[]');
    return new Set(Array.isArray(list) ? list.filter((x) => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

/** Whether `name`'s notifications are muted on this browser. */
export function isMuted(name) {
  return mutedRooms().has(name);
}

/** Mutes or unmutes `name`'s notifications (kept in localStorage). */
export function setMuted(name, muted) {
  const rooms = mutedRooms();
  if (muted) rooms.add(name);
  else rooms.delete(name);
  try {
    localStorage.setItem(MUTED_KEY, JSON.stringify([...rooms]));
  } catch {
    // Storage full or disabled: the choice lasts for this page only.
  }
}

/** The server's counts from a room list: authoritative for rooms not on screen. */
export function noteSummary(s) {
  if (s.name !== state.active && typeof s.unread_mentions === 'number') counts.set(s.name, s.unread_mentions);
}

/** The room's unread messages were read: its mentions too. */
export function clearMentions(name) {
  if (counts.get(name)) {
    counts.set(name, 0);
    hooks.renderRoomList();
  }
}

/** Unread mentions of me in `name` (0 for the room on screen). */
export function mentionCount(name) {
  return name === state.active ? 0 : counts.get(name) ?? 0;
}

/** The sidebar's mention badge for `name`, or null. */
export function mentionBadge(name) {
  const n = mentionCount(name);
  if (!n) return null;
  return h('span', { class: 'badge mention-badge', 'aria-label': `${n} mention${n === 1 ? '' : 's'}`, title: 'Mentions of you' }, `@${n > 99 ? '99+' : n}`);
}

/** A `mention` frame: count it (unless the room is on screen and seen) and notify. */
export function onMention(f) {
  if (typeof f.room !== 'string') return;
  const seen = f.room === state.active && document.visibilityState === 'visible';
  if (!seen) {
    counts.set(f.room, (counts.get(f.room) ?? 0) + 1);
    hooks.renderRoomList();
  }
  notify(f);
}

function notify(f) {
  if (!document.hidden || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  if (isMuted(f.room)) return;
  try {
    const n = new Notification(`${f.sender} mentioned you in ${f.room}`, {
      body: String(f.preview ?? ''),
      tag: `parley-mention-${f.message_id}`,
    });
    n.onclick = () => {
      window.focus();
      location.hash = `#/room/${encodeURIComponent(f.room)}`;
      n.close();
    };
  } catch {
    // Some browsers (Android Chrome) only notify from a service worker: nothing to do then.
  }
}

/** Whether the browser can show notifications and has not been asked yet. */
function canAsk() {
  return typeof Notification !== 'undefined' && Notification.permission === 'default';
}

/**
 * The room header's notification controls: a button asking for permission (shown only while
 * the browser has not been asked; the request happens on its click), and this room's mute
 * switch.
 */
export function notifyControls(name) {
  const out = [];
  if (canAsk()) {
    const ask = h('button', {
      type: 'button', class: 'ghost notify-permission',
      onclick: async () => {
        try {
          await Notification.requestPermission();
        } finally {
          hooks.renderRoomHeader(room(name));
        }
      },
    }, 'Enable notifications');
    out.push(ask);
  }
  const muted = isMuted(name);
  out.push(h('button', {
    type: 'button', class: 'ghost notify-mute',
    'aria-pressed': muted ? 'true' : 'false',
    title: muted ? 'Notifications for this room are off on this browser' : 'Turn off notifications for this room on this browser',
    onclick: () => {
      setMuted(name, !isMuted(name));
      hooks.renderRoomHeader(room(name));
    },
  }, muted ? 'Unmute notifications' : 'Mute notifications'));
  return out;
}
