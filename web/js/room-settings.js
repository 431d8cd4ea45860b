// The room settings panel for a room's owners and staff: name, topic and visibility,
// read-only, members and their roles, mutes, bans, deleting the room (the REST routes of docs/api.md "Room moderation"). Every
// destructive step asks to be confirmed with a second click on the same button, and every
// error shows next to the control that caused it.

import { clear, h, toast } from './dom.js';
import { me, state } from './state.js';
import { api, guarded } from './api.js';
import { fillModeration, mayManage } from './moderation.js';

/** One panel per room, kept across header repaints (the room list reload repaints them). */
const panels = new Map();

/** How long a mute lasts: the choices offered (seconds; '' is until lifted). */
const MUTE_CHOICES = [
  ['600', '10 minutes'],
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['', 'Until unmuted'],
];

const path = (roomName, ...rest) =>
  ['/api/rooms', roomName, ...rest].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');

export { mayManage };

/** The settings panel of `roomName` (a disclosure for the room header), or null when the user
 *  may not manage it. */
export function roomSettings(roomName) {
  if (!mayManage(roomName)) {
    panels.delete(roomName);
    return null;
  }
  // The messages drawn before the room list said the user manages the room get their
  // moderator controls now.
  fillModeration(roomName);
  let panel = panels.get(roomName);
  if (!panel) {
    const body = h('div', { class: 'settings-body', role: 'group', 'aria-label': 'Room settings' });
    panel = h('details', {
      class: 'room-settings',
      ontoggle: () => {
        if (panel.open) load(roomName, body);
      },
    }, h('summary', {}, 'Room settings'), body);
    panels.set(roomName, panel);
  }
  return panel;
}

/** A place for a control's error, right after it. */
function errorSlot() {
  return h('span', { class: 'field-error', role: 'alert' });
}

function showError(slot, e) {
  slot.textContent = e?.message || String(e);
}

/** Runs `action`; its error goes to `slot`, success clears it and reloads the panel. */
async function act(roomName, body, slot, action, done) {
  slot.textContent = '';
  let failed = false;
  const result = await guarded(action, (e) => {
    failed = true;
    showError(slot, e);
  });
  if (failed) return;
  if (done) done(result);
  await load(roomName, body);
}

/** A button that asks for a second click before `action` runs. */
function confirmButton(label, confirmLabel, onConfirm) {
  const button = h('button', { type: 'button', class: 'danger' }, label);
  let armed = false;
  button.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add('armed');
      return;
    }
    armed = false;
    button.textContent = label;
    button.classList.remove('armed');
    onConfirm();
  });
  button.addEventListener('blur', () => {
    armed = false;
    button.textContent = label;
    button.classList.remove('armed');
  });
  return button;
}

async function load(roomName, body) {
  const failed = errorSlot();
  let error = null;
  const [details, bans, mutes] = await Promise.all([
    guarded(() => api('GET', path(roomName)), (e) => (error = e)),
    guarded(() => api('GET', path(roomName, 'bans')), (e) => (error = e)),
    guarded(() => api('GET', path(roomName, 'mutes')), (e) => (error = e)),
  ]);
  clear(body);
  if (!details || !bans || !mutes) {
    showError(failed, error ?? 'could not load the room settings');
    body.append(failed);
    return;
  }
  body.append(
    generalSection(roomName, body, details),
    readOnlySection(roomName, body, details),
    membersSection(roomName, body, details, mutes.mutes ?? []),
    mutesSection(roomName, body, mutes.mutes ?? []),
    bansSection(roomName, body, bans.bans ?? []),
    dangerSection(roomName),
  );
}

/** Name, topic and visibility (`PATCH /api/rooms/{room}`), saved together; only what changed
 *  is sent. After a rename the page moves to the room's new name. */
function generalSection(roomName, body, details) {
  const slot = errorSlot();
  const id = (what) => `room-${what}-${roomName}`;
  const name = h('input', { id: id('name'), value: details.name, maxlength: 64, required: true });
  const topic = h('input', { id: id('topic'), value: details.topic ?? '', maxlength: 200 });
  const kind = h('select', { id: id('kind') },
    h('option', { value: 'public' }, 'Public: anyone may find and join it'),
    h('option', { value: 'private' }, 'Private: members only'));
  kind.value = details.kind;
  const form = h('form', {
    class: 'settings-general',
    onsubmit: (e) => {
      e.preventDefault();
      const change = {};
      const newName = name.value.trim().toLowerCase();
      if (newName && newName !== details.name) change.name = newName;
      if (topic.value.trim() !== (details.topic ?? '')) change.topic = topic.value.trim();
      if (kind.value !== details.kind) change.kind = kind.value;
      if (!Object.keys(change).length) return;
      act(roomName, body, slot, () => api('PATCH', path(roomName), change), (room) => {
        if (room && room.name !== roomName) {
          panels.delete(roomName);
          toast(`#${roomName} is now #${room.name}`);
          location.hash = `#/room/${encodeURIComponent(room.name)}`;
        }
      });
    },
  },
  h('label', { for: id('name') }, 'Name'), name,
  h('label', { for: id('topic') }, 'Topic'), topic,
  h('label', { for: id('kind') }, 'Visibility'), kind,
  h('button', { type: 'submit' }, 'Save'),
  slot);
  return h('section', { class: 'settings-section' }, form);
}

function readOnlySection(roomName, body, details) {
  const slot = errorSlot();
  const box = h('input', {
    type: 'checkbox', id: `read-only-${roomName}`, checked: Boolean(details.read_only),
    onchange: () => act(roomName, body, slot, () => api('PATCH', path(roomName), { read_only: box.checked })),
  });
  return h('section', { class: 'settings-section' },
    h('label', { for: `read-only-${roomName}` }, box, ' Read-only: only owners and staff may post'),
    slot);
}

function membersSection(roomName, body, details, mutes) {
  const muted = new Set(mutes.map((m) => m.username));
  const rows = (details.members ?? []).filter((m) => m.username !== me()).map((m) => {
    const slot = errorSlot();
    const user = m.username;
    const other = m.role === 'owner' ? 'member' : 'owner';
    const duration = h('select', { 'aria-label': `Mute ${user} for` },
      MUTE_CHOICES.map(([value, label]) => h('option', { value }, label)));
    return h('li', { class: 'settings-member', dataset: { user } },
      h('span', { class: 'settings-name' }, user, ' ', h('span', { class: 'settings-role' }, m.role),
        muted.has(user) ? h('span', { class: 'settings-role' }, ' · muted') : null),
      h('button', {
        type: 'button',
        onclick: () => act(roomName, body, slot, () => api('PATCH', path(roomName, 'members', user), { role: other })),
      }, other === 'owner' ? 'Make owner' : 'Make member'),
      duration,
      h('button', {
        type: 'button',
        onclick: () => act(roomName, body, slot, () => api('POST', path(roomName, 'mutes', user),
          duration.value ? { seconds: Number(duration.value) } : {})),
      }, 'Mute'),
      confirmButton('Ban', `Confirm ban of ${user}`, () =>
        act(roomName, body, slot, () => api('POST', path(roomName, 'bans', user), {}))),
      confirmButton('Remove', `Confirm removal of ${user}`, () =>
        act(roomName, body, slot, () => api('DELETE', path(roomName, 'members', user)))),
      slot);
  });
  const who = h('input', { maxlength: 32, placeholder: 'username', 'aria-label': 'Username to ban' });
  const slot = errorSlot();
  const banForm = h('form', {
    class: 'settings-inline',
    onsubmit: (e) => {
      e.preventDefault();
      const user = who.value.trim().toLowerCase();
      if (user) act(roomName, body, slot, () => api('POST', path(roomName, 'bans', user), {}));
    },
  }, who, h('button', { type: 'submit', class: 'danger' }, 'Ban user'), slot);
  return h('section', { class: 'settings-section' },
    h('h3', {}, 'Members'),
    rows.length ? h('ul', { class: 'settings-list' }, rows) : h('p', { class: 'muted' }, 'No other members.'),
    banForm);
}

function mutesSection(roomName, body, mutes) {
  const rows = mutes.map((m) => {
    const slot = errorSlot();
    const until = m.until ? `until ${new Date(m.until).toLocaleString()}` : 'until unmuted';
    return h('li', { class: 'settings-mute', dataset: { user: m.username } },
      h('span', { class: 'settings-name' }, m.username, ' ', h('span', { class: 'settings-role' }, until)),
      h('button', {
        type: 'button',
        onclick: () => act(roomName, body, slot, () => api('DELETE', path(roomName, 'mutes', m.username))),
      }, 'Unmute'),
      slot);
  });
  return h('section', { class: 'settings-section' },
    h('h3', {}, 'Muted'),
    rows.length ? h('ul', { class: 'settings-list' }, rows) : h('p', { class: 'muted' }, 'Nobody is muted.'));
}

function bansSection(roomName, body, bans) {
  const rows = bans.map((b) => {
    const slot = errorSlot();
    return h('li', { class: 'settings-ban', dataset: { user: b.username } },
      h('span', { class: 'settings-name' }, b.username, b.reason ? h('span', { class: 'settings-role' }, ` (${b.reason})`) : null),
      h('button', {
        type: 'button',
        onclick: () => act(roomName, body, slot, () => api('DELETE', path(roomName, 'bans', b.username))),
      }, 'Unban'),
      slot);
  });
  return h('section', { class: 'settings-section' },
    h('h3', {}, 'Banned'),
    rows.length ? h('ul', { class: 'settings-list' }, rows) : h('p', { class: 'muted' }, 'Nobody is banned.'));
}

function dangerSection(roomName) {
  const slot = errorSlot();
  return h('section', { class: 'settings-section' },
    confirmButton('Delete room', `Confirm: delete #${roomName} and its messages`, async () => {
      slot.textContent = '';
      let failed = false;
      await guarded(() => api('DELETE', path(roomName)), (e) => {
        failed = true;
        showError(slot, e);
      });
      if (failed) return;
      panels.delete(roomName);
      toast(`#${roomName} was deleted`);
      location.hash = '#/';
    }),
    slot);
}
