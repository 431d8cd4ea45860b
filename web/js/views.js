// The app's screens: the shell (top bar, connection state, sidebar forms), the room list, the
// room pane (header, online list, typing, notices, composer) and routing to a room.

import { appendChildren, avatar, clear, dateTimeFormat, h, icon, root, toast } from './dom.js';
import { clearError, describeError, showError } from './errors.js';
import { plainPreview } from './markup.js';
import { hooks } from './hooks.js';
import { me, room, screen, state } from './state.js';
import { api, guarded } from './api.js';
import { socket } from './connection.js';
import { editLastOwn, guestDisplay, isGuestName, onComposerInput, onMessagesScroll, postMessage, renderMessages, stopOwnTyping } from './messages.js';
import { cancelReply, renderReplyBar } from './reactions.js';
import { directPeer, isDirect, joinRoom, loadMorePublicRooms, loadRoomList, markRead, rememberPeer, roomLabel } from './rooms.js';
import { startCall } from './calls.js';
import { roomSettings } from './room-settings.js';
import { mentionBadge, notifyControls } from './notify.js';
import { searchBox } from './search.js';

export function renderShell() {
  const container = clear(root());
  const connLabel = h('span', { class: 'conn-label' }, 'Offline');
  const retry = h('button', { type: 'button', class: 'link', hidden: true, onclick: () => socket.retryNow() }, 'Retry now');
  const conn = h('div', { class: 'conn', id: 'conn', role: 'status', 'aria-live': 'polite', dataset: { state: 'offline' } },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), connLabel, retry);

  const roomList = h('nav', { class: 'room-list', 'aria-label': 'Rooms' });
  const sidebar = h('aside', { class: 'sidebar', id: 'sidebar' }, searchBox(), roomList, renderSidebarForms());
  const pane = h('section', { class: 'room', id: 'room', 'aria-label': 'Room' });

  container.append(
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, 'Parley'),
      conn,
      h('span', { class: 'whoami', title: 'Logged in as' }, h('span', { class: 'sr-only' }, 'Logged in as '), me()),
      // Staff only (the page itself is admin.js).
      state.auth?.user?.is_staff ? h('a', { class: 'admin-link', href: '#/admin' }, 'Admin') : null,
      h('a', { class: 'profile-link', href: '#/profile' }, 'Profile'),
      h('button', { type: 'button', class: 'ghost', onclick: () => hooks.logout() }, 'Log out'),
    ),
    h('div', { class: 'layout' }, sidebar, pane),
  );
  screen.shell = { conn, connLabel, retry, roomList, pane, sidebar };
  setConn(state.conn);
}

function renderSidebarForms() {
  const newName = h('input', { id: 'new-room-name', required: true, maxlength: 64, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}', placeholder: 'e.g. rust-talk' });
  const newKind = h('select', { id: 'new-room-kind' }, h('option', { value: 'public' }, 'Public'), h('option', { value: 'private' }, 'Private'));
  const newTopic = h('input', { id: 'new-room-topic', maxlength: 200, placeholder: 'What is it about?' });
  const createButton = h('button', { type: 'submit' }, 'Create room');
  const create = h('form', {
    class: 'side-form',
    'aria-label': 'Create a room',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: newName.value.trim(), kind: newKind.value };
      if (newTopic.value.trim()) body.topic = newTopic.value.trim();
      clearError(createButton);
      if (!isRoomName(body.name)) {
        showError(createButton, describeError({ code: 'invalid_room_name' }));
        return;
      }
      const created = await guarded(() => api('POST', '/api/rooms', body), (err) => showError(createButton, describeError(err, 'create')));
      if (!created) return;
      newName.value = '';
      newTopic.value = '';
      create.closest('details')?.removeAttribute('open');
      await loadRoomList();
      openRoom(created.name ?? body.name.toLowerCase());
    },
  },
  h('h2', {}, 'New room'),
  h('label', { for: 'new-room-name' }, 'Room name'), newName,
  h('label', { for: 'new-room-kind' }, 'Visibility'), newKind,
  h('label', { for: 'new-room-topic' }, 'Topic (optional)'), newTopic,
  createButton);

  const joinName = h('input', { id: 'join-room-name', required: true, maxlength: 64, placeholder: 'room name', oninput: () => { clearError(joinRow); joinName.removeAttribute('aria-invalid'); } });
  const joinRow = h('div', { class: 'inline' }, joinName, h('button', { type: 'submit' }, 'Join'));
  const join = h('form', {
    class: 'side-form',
    'aria-label': 'Join a room',
    onsubmit: (e) => {
      e.preventDefault();
      const name = joinName.value.trim().replace(/^#/, '').toLowerCase();
      if (!name) return;
      if (!isRoomName(name)) {
        showError(joinRow, describeError({ code: 'invalid_room_name' }));
        joinName.setAttribute('aria-invalid', 'true');
        joinName.focus();
        return;
      }
      clearError(joinRow);
      joinName.removeAttribute('aria-invalid');
      joinName.value = '';
      openRoom(name);
    },
  }, h('label', { for: 'join-room-name' }, 'Join a room by name'), joinRow);

  const dmName = h('input', { id: 'dm-username', required: true, maxlength: 32, placeholder: 'username', oninput: () => clearError(dmRow) });
  const dmRow = h('div', { class: 'inline' }, dmName, h('button', { type: 'submit' }, 'Chat'));
  const dm = h('form', {
    class: 'side-form',
    'aria-label': 'Start a direct chat',
    onsubmit: async (e) => {
      e.preventDefault();
      const peer = dmName.value.trim().replace(/^@/, '').toLowerCase();
      if (!peer) return;
      clearError(dmRow);
      const created = await guarded(() => api('POST', `/api/direct/${encodeURIComponent(peer)}`), (err) => showError(dmRow, describeError(err, 'direct')));
      if (!created?.name) return;
      dmName.value = '';
      rememberPeer(created.name, peer);
      await loadRoomList();
      openRoom(created.name);
    },
  }, h('label', { for: 'dm-username' }, 'Direct chat with'), dmRow);

  // Guests may not open direct chats (the server refuses it): no form to offer one.
  const guest = Boolean(state.auth?.user?.is_guest);
  return h('div', { class: 'side-forms' }, join, guest ? null : dm, h('details', { class: 'new-room' }, h('summary', {}, 'Create a room'), create));
}

export function setConn(value) {
  state.conn = value;
  if (!screen.shell) return;
  screen.shell.conn.dataset.state = value;
  const labels = { offline: 'Offline', connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…' };
  screen.shell.connLabel.textContent = labels[value] ?? value;
  screen.shell.retry.hidden = value !== 'reconnecting';
  updateRetryCountdown();
  const composer = document.getElementById('composer-input');
  if (composer) composer.placeholder = composerPlaceholder();
}

let countdownTimer = null;

function updateRetryCountdown() {
  clearTimeout(countdownTimer);
  if (!screen.shell || state.conn !== 'reconnecting') return;
  const secs = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
  screen.shell.connLabel.textContent = secs > 0 ? `Reconnecting in ${secs} s…` : 'Reconnecting…';
  countdownTimer = setTimeout(updateRetryCountdown, 500);
}

export function renderAll() {
  if (!screen.shell) return;
  renderRoomList();
  if (state.active) renderRoomPane(room(state.active));
}

/** The tab's title: the room on screen, and how many messages wait unread elsewhere. */
function updateTitle() {
  let unread = 0;
  for (const r of state.rooms.values()) if (r.name !== state.active) unread += r.unread;
  const where = state.active ? roomLabel(state.active) : 'Parley';
  document.title = `${unread ? `(${unread}) ` : ''}${where}${state.active ? ' — Parley' : ''}`;
}

export function renderRoomList() {
  if (!screen.shell) return;
  updateTitle();
  const list = clear(screen.shell.roomList);
  const mine = [];
  const direct = [];
  const discover = [];
  const names = new Set([...state.summaries.keys(), ...[...state.rooms.values()].filter((r) => r.joined).map((r) => r.name)]);
  for (const name of names) {
    const s = state.summaries.get(name);
    const member = Boolean(s?.role) || room(name).joined;
    if (isDirect(name)) direct.push(name);
    else if (member) mine.push(name);
    else discover.push(name);
  }
  const item = (name) => {
    const r = room(name);
    const unread = r.unread > 0 && name !== state.active ? r.unread : 0;
    return h('li', {},
      h('a', {
        href: `#/room/${encodeURIComponent(name)}`,
        class: `room-link${name === state.active ? ' active' : ''}${unread ? ' has-unread' : ''}`,
        'aria-current': name === state.active ? 'page' : null,
        dataset: { room: name },
      },
      h('span', { class: 'room-name' }, roomLabel(name)),
      unread ? h('span', { class: 'badge', 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread)) : null,
      mentionBadge(name),
      lastLine(state.summaries.get(name)?.last_message)));
  };
  const section = (title, names, empty) =>
    h('div', { class: 'room-section' },
      h('h2', {}, title),
      names.length ? h('ul', {}, names.sort((a, b) => roomLabel(a).localeCompare(roomLabel(b))).map(item)) : h('p', { class: 'muted' }, empty));
  const more = state.publicNext
    ? h('button', { type: 'button', class: 'link more-rooms', onclick: () => loadMorePublicRooms() }, 'More public rooms')
    : null;
  appendChildren(list, [
    section('Your rooms', mine, 'None yet: join or create one.'),
    section('Direct chats', direct, 'No direct chats yet.'),
    discover.length || more ? section('Public rooms', discover, '') : null,
    more,
  ]);
}

function openRoom(name) {
  if (!name) return;
  const target = `#/room/${encodeURIComponent(name)}`;
  if (location.hash !== target) {
    location.hash = target;
    return; // the hashchange handler comes back here
  }
  showRoom(name);
}

/** Whether `name` can be a room's name (the server's rule, docs/protocol.md): checked before
 *  asking the server, so a typo gets a sentence rather than a protocol error. */
export function isRoomName(name) {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name);
}

export function showRoom(name) {
  if (!isRoomName(name)) {
    showBadRoomName(name);
    return;
  }
  state.active = name;
  const r = room(name);
  r.error = null;
  document.body.classList.add('in-room');
  if (socket.open && !r.joined) joinRoom(r);
  renderRoomList();
  renderRoomPane(r);
  markRead(r);
}

/** The page for a link or address naming no possible room (`#/room/bad name!`). */
function showBadRoomName(name) {
  state.active = null;
  document.body.classList.add('in-room');
  renderRoomList();
  if (!screen.shell) return;
  screen.pane = null;
  screen.shell.pane.removeAttribute('aria-labelledby');
  clear(screen.shell.pane).append(
    h('div', { class: 'empty bad-room' },
      h('h1', {}, 'That is not a room name'),
      h('p', {}, `“${name.slice(0, 80)}” cannot be the name of a room.`),
      h('p', {}, describeError({ code: 'invalid_room_name' })),
      h('p', {}, h('a', { href: '#/', class: 'button-link' }, 'Back to your rooms'))));
  document.title = 'No such room — Parley';
}

export function showLobby() {
  state.active = null;
  document.body.classList.remove('in-room');
  renderRoomList();
  if (!screen.shell) return;
  screen.pane = null;
  clear(screen.shell.pane).append(
    h('div', { class: 'empty' },
      h('h1', {}, `Welcome, ${me()}`),
      h('p', {}, 'Pick a room on the left, join one by name, or start a direct chat.')));
}

function renderRoomPane(r) {
  if (!screen.shell) return;
  if (screen.pane?.room !== r.name) buildRoomPane(r);
  renderRoomHeader(r);
  renderOnline(r);
  renderMembers(r);
  renderMessages(r);
  renderTyping(r);
  renderReplyBar(r);
  renderComposerState(r);
}

function buildRoomPane(r) {
  const title = h('h1', { class: 'room-title', id: 'room-title' });
  const topic = h('p', { class: 'room-topic' });
  const actions = h('div', { class: 'room-actions' });
  const online = h('ul', { class: 'online-list', 'aria-label': 'Online' });
  const olderStatus = h('div', { class: 'older', role: 'status' });
  const messages = h('ol', { class: 'messages', id: 'messages', role: 'log', 'aria-label': 'Messages', 'aria-live': 'polite', tabindex: '0' });
  // Whether the reader is at the newest message: kept there when the list's box shrinks or
  // grows (the reply bar or an error line appears, the phone's keyboard opens).
  let stuck = true;
  const scroller = h('div', {
    class: 'scroller',
    onscroll: () => {
      stuck = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
      onMessagesScroll(r);
    },
  }, olderStatus, messages);
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      if (stuck) scroller.scrollTop = scroller.scrollHeight;
    }).observe(scroller);
  }
  const jump = h('button', {
    type: 'button', class: 'jump primary small', hidden: true,
    onclick: () => {
      scroller.scrollTop = scroller.scrollHeight;
      jump.hidden = true;
    },
  }, 'New messages ↓');
  const typing = h('div', { class: 'typing', id: 'typing', 'aria-live': 'polite' });
  const notice = h('div', { class: 'room-notice', role: 'alert', hidden: true });
  const replyBar = h('div', { class: 'reply-bar', hidden: true });
  const strip = h('div', { class: 'online-strip' }, h('span', { class: 'online-title', id: 'online-title' }, 'Online'), online);
  const memberList = h('ul', { class: 'member-list' });
  const memberTitle = h('h2', { id: 'members-title' }, 'Members');
  const members = h('aside', { class: 'member-panel', id: 'member-panel', 'aria-labelledby': 'members-title', hidden: !membersOpen() },
    h('div', { class: 'member-head' }, memberTitle,
      h('button', { type: 'button', class: 'link', 'aria-label': 'Close the member list', onclick: () => toggleMembers(r, false) }, 'Close')),
    memberList);
  const body = h('div', { class: 'room-main' }, scroller, members);
  const input = h('textarea', {
    id: 'composer-input', rows: 1, maxlength: 4000, placeholder: composerPlaceholder(),
    'aria-label': 'Message', enterkeyhint: 'send',
    onkeydown: (e) => {
      // Enter sends, Shift+Enter starts a new line (the textarea's own behaviour).
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      } else if (e.key === 'ArrowUp' && !input.value && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
        // Up in an empty composer edits my last message.
        if (editLastOwn(r)) e.preventDefault();
      } else if (e.key === 'Escape' && r.replyTo) {
        e.preventDefault();
        cancelReply(r);
      }
    },
    oninput: () => {
      autoGrow(input);
      onComposerInput(r, input.value);
    },
  });
  const form = h('form', {
    class: 'composer', 'aria-label': 'Send a message',
    onsubmit: (e) => {
      e.preventDefault();
      const body = input.value;
      if (!body.trim()) return;
      input.value = '';
      autoGrow(input);
      stopOwnTyping(r);
      const replyTo = r.replyTo;
      postMessage(r, body, replyTo);
      cancelReply(r);
      input.focus();
    },
  }, input, h('button', { type: 'submit', class: 'primary' }, 'Send'));

  clear(screen.shell.pane).append(
    h('div', { class: 'room-header' },
      h('a', { href: '#/', class: 'back', 'aria-label': 'Back to rooms' }, '‹'),
      h('div', { class: 'room-heading' }, title, topic),
      actions),
    strip,
    body,
    jump,
    typing,
    notice,
    replyBar,
    form,
  );
  screen.shell.pane.setAttribute('aria-labelledby', 'room-title');
  screen.pane = { room: r.name, title, topic, actions, online, strip, olderStatus, messages, scroller, body, members, memberList, memberTitle, jump, typing, notice, input, form, replyBar, elements: new Map() };
}

function composerPlaceholder() {
  const where = state.active ? roomLabel(state.active) : '';
  return state.conn === 'online' ? `Message ${where}` : `Message ${where} (sent when back online)`;
}

function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
}

export function renderRoomHeader(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const s = state.summaries.get(r.name);
  screen.pane.title.textContent = roomLabel(r.name);
  updateTitle();
  const kind = s?.kind ?? r.kind;
  screen.pane.topic.textContent = s?.topic || (kind === 'direct' ? 'Direct chat' : kind === 'private' ? 'Private room' : '');
  const actions = clear(screen.pane.actions);
  const peer = isDirect(r.name) ? directPeer(r.name) : null;
  if (peer) {
    actions.append(
      h('button', { type: 'button', class: 'icon', 'aria-label': `Video call ${peer}`, title: `Video call ${peer}`, onclick: () => startCall(peer, true) }, icon('video')),
      h('button', { type: 'button', class: 'icon', 'aria-label': `Voice call ${peer}`, title: `Voice call ${peer}`, onclick: () => startCall(peer, false) }, icon('phone')),
    );
  }
  if (kind === 'private' && s?.role) {
    const who = h('input', { id: 'invite-user', required: true, maxlength: 32, placeholder: 'username', 'aria-label': 'Username to add' });
    actions.append(h('details', { class: 'invite' }, h('summary', {}, 'Add member'),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          const username = who.value.trim().toLowerCase();
          clearError(e.target);
          const ok = await guarded(() => api('POST', `/api/rooms/${encodeURIComponent(r.name)}/members`, { username }), (err) => showError(e.target, describeError(err, 'invite')));
          if (ok !== undefined) {
            toast(`${username} added to ${roomLabel(r.name)}`);
            who.value = '';
            loadMembers(r);
          }
        },
      }, who, h('button', { type: 'submit' }, 'Add'))));
  }
  actions.append(h('button', {
    type: 'button', class: 'ghost members-toggle', 'aria-controls': 'member-panel',
    'aria-expanded': String(!screen.pane.members.hidden),
    onclick: () => toggleMembers(r, screen.pane.members.hidden),
  }, 'Members'));
  const settings = roomSettings(r.name);
  if (settings) actions.append(settings);
  actions.append(...notifyControls(r.name));
  if (s?.role && kind !== 'direct') {
    const leave = h('button', {
      type: 'button', class: 'ghost',
      onclick: async () => {
        clearError(leave);
        const ok = await guarded(() => api('DELETE', `/api/rooms/${encodeURIComponent(r.name)}/members/${encodeURIComponent(me())}`), (err) => showError(leave, describeError(err, 'leave')));
        if (ok === undefined) return;
        socket.request({ type: 'leave', room: r.name }).catch(() => {});
        state.rooms.delete(r.name);
        await loadRoomList();
        location.hash = '#/';
      },
    }, 'Leave room');
    actions.append(leave);
  }
}

export function renderOnline(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const list = clear(screen.pane.online);
  const users = [...new Set(r.online)].sort();
  // While disconnected the list is what it was: say so rather than show it as current.
  const stale = !r.joined;
  screen.pane.online.closest('.online-strip')?.classList.toggle('stale', stale);
  const count = Math.max(r.onlineCount, users.length);
  document.getElementById('online-title').textContent = stale ? 'Last seen online' : `Online (${count})`;
  // Guests may not signal: no call button for a guest, nor on a guest's own page.
  const iAmGuest = Boolean(state.auth?.user?.is_guest);
  for (const user of users) {
    const self = user === me();
    const guest = isGuestName(user);
    const name = guest ? guestDisplay(user) : user;
    const callable = !self && !guest && !iAmGuest;
    list.append(h('li', { class: 'online-user', dataset: { user } },
      h('span', { class: 'presence-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'online-name', title: guest ? user : null }, self ? `${name} (you)` : name),
      guest ? h('span', { class: 'guest-mark', title: 'a guest: no account' }, 'guest') : null,
      callable ? h('button', { type: 'button', class: 'icon small', 'aria-label': `Video call ${user}`, title: `Video call ${user}`, onclick: () => startCall(user, true) }, icon('video')) : null));
  }
  if (count > users.length) list.append(h('li', { class: 'online-more' }, `and ${count - users.length} more`));
  renderMembers(r);
}

export function renderTyping(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const users = [...r.typing.keys()].sort();
  screen.pane.typing.textContent =
    users.length === 0 ? '' :
    users.length === 1 ? `${users[0]} is typing…` :
    users.length === 2 ? `${users[0]} and ${users[1]} are typing…` :
    'Several people are typing…';
}

/** A room that cannot be shown (no such room, not a member, removed): say why instead. */
function renderComposerState(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const e = r.error;
  const notice = clear(screen.pane.notice);
  if (e) {
    notice.append(h('p', {}, roomErrorText(e, r)));
    if (e.code === 'not_found' && !isDirect(r.name)) {
      notice.append(h('button', {
        type: 'button', class: 'primary',
        onclick: async () => {
          const created = await guarded(() => api('POST', '/api/rooms', { name: r.name, kind: 'public' }));
          if (!created) return;
          r.error = null;
          await loadRoomList();
          if (socket.open) await joinRoom(r);
          renderRoomPane(r);
        },
      }, `Create ${roomLabel(r.name)}`));
    }
  }
  screen.pane.notice.hidden = !e;
  screen.pane.form.hidden = Boolean(e);
  screen.pane.body.hidden = Boolean(e);
  screen.pane.strip.hidden = Boolean(e);
}

function roomErrorText(e, r) {
  switch (e.code) {
    case 'not_found':
      return `There is no room called ${r.name}.`;
    case 'not_member':
      return `${roomLabel(r.name)} is private: ask a member to add you.`;
    case 'invalid_room_name':
      return `“${r.name}” cannot be the name of a room. ${describeError(e)}`;
    case 'banned':
      return `You have been banned from ${roomLabel(r.name)}.`;
    default:
      return describeError(e, 'join');
  }
}

/** The room list's second line: the room's newest message (`last_message` of the room list,
 *  kept current by `message` frames), or nothing. */
function lastLine(last) {
  if (!last || typeof last.preview !== 'string') return null;
  const time = new Date(last.created_at);
  return h('span', { class: 'last-message', title: dateTimeFormat.format(time) },
    h('span', { class: 'last-sender' }, `${last.sender}: `), plainPreview(last.preview));
}

// ---- the member list panel -------------------------------------------------------------

const MEMBERS_KEY = 'parley.membersOpen';

/** Open unless the user closed it; closed by default on narrow screens. */
function membersOpen() {
  const saved = localStorage.getItem(MEMBERS_KEY);
  if (saved !== null) return saved === 'yes';
  return window.matchMedia('(min-width: 1100px)').matches;
}

function toggleMembers(r, open) {
  localStorage.setItem(MEMBERS_KEY, open ? 'yes' : 'no');
  if (!screen.pane || screen.pane.room !== r.name) return;
  screen.pane.members.hidden = !open;
  screen.pane.actions.querySelector('.members-toggle')?.setAttribute('aria-expanded', String(open));
  if (open) loadMembers(r);
}

/** Reads the room's members (`GET /api/rooms/{room}`) into `r.members`, then shows them. */
export async function loadMembers(r) {
  if (r.membersLoading) return;
  r.membersLoading = true;
  try {
    const detail = await guarded(() => api('GET', `/api/rooms/${encodeURIComponent(r.name)}`), (err) => {
      r.membersError = describeError(err, 'join');
    });
    if (detail) {
      r.members = (Array.isArray(detail.members) ? detail.members : []).filter((m) => typeof m?.username === 'string');
      r.membersError = null;
    }
  } finally {
    r.membersLoading = false;
    renderMembers(r);
  }
}

/** The member panel: the room's members, online ones first, with their role; guests who are
 *  online but not members are listed too. */
export function renderMembers(r) {
  if (!screen.pane || screen.pane.room !== r.name || screen.pane.members.hidden) return;
  if (!r.members && !r.membersLoading && !r.membersError) {
    loadMembers(r);
    return;
  }
  const online = new Set(r.online);
  const byName = new Map((r.members ?? []).map((m) => [m.username, m]));
  for (const user of online) if (!byName.has(user)) byName.set(user, { username: user, role: null });
  const people = [...byName.values()].sort((a, b) =>
    Number(online.has(b.username)) - Number(online.has(a.username)) || a.username.localeCompare(b.username));
  screen.pane.memberTitle.textContent = `Members (${people.length})`;
  const list = clear(screen.pane.memberList);
  if (r.membersError) list.append(h('li', { class: 'control-error', role: 'alert' }, r.membersError));
  for (const m of people) {
    const user = m.username;
    const guest = isGuestName(user);
    const here = online.has(user);
    const self = user === me();
    list.append(h('li', { class: `member${here ? ' online' : ''}`, dataset: { user } },
      avatar(user, 'small'),
      h('span', { class: 'member-name', title: guest ? user : null }, guest ? guestDisplay(user) : user, self ? ' (you)' : ''),
      m.role === 'owner' ? h('span', { class: 'role-mark' }, 'owner') : null,
      guest ? h('span', { class: 'guest-mark', title: 'a guest: no account' }, 'guest') : null,
      h('span', { class: `presence${here ? ' here' : ''}` }, h('span', { class: 'presence-dot', 'aria-hidden': 'true' }), here ? 'online' : 'away')));
  }
}
