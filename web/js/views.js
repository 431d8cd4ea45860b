// The app's screens: the shell (top bar, connection state, sidebar forms), the room list, the
// room pane (header, online list, typing, notices, composer) and routing to a room.

import { appendChildren, clear, dateTimeFormat, h, icon, root, toast } from './dom.js';
import { hooks } from './hooks.js';
import { me, room, screen, state } from './state.js';
import { api, guarded } from './api.js';
import { socket } from './connection.js';
import { guestDisplay, isGuestName, onComposerInput, onMessagesScroll, postMessage, renderMessages, stopOwnTyping } from './messages.js';
import { cancelReply, renderReplyBar } from './reactions.js';
import { directPeer, isDirect, joinRoom, loadMorePublicRooms, loadRoomList, markRead, rememberPeer, roomLabel } from './rooms.js';
import { startCall } from './calls.js';
import { roomSettings } from './room-settings.js';
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
  const create = h('form', {
    class: 'side-form',
    'aria-label': 'Create a room',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: newName.value.trim(), kind: newKind.value };
      if (newTopic.value.trim()) body.topic = newTopic.value.trim();
      const created = await guarded(() => api('POST', '/api/rooms', body));
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
  h('button', { type: 'submit' }, 'Create room'));

  const joinName = h('input', { id: 'join-room-name', required: true, maxlength: 64, placeholder: 'room name' });
  const join = h('form', {
    class: 'side-form',
    'aria-label': 'Join a room',
    onsubmit: (e) => {
      e.preventDefault();
      const name = joinName.value.trim().replace(/^#/, '').toLowerCase();
      if (!name) return;
      joinName.value = '';
      openRoom(name);
    },
  }, h('label', { for: 'join-room-name' }, 'Join a room by name'), h('div', { class: 'inline' }, joinName, h('button', { type: 'submit' }, 'Join')));

  const dmName = h('input', { id: 'dm-username', required: true, maxlength: 32, placeholder: 'username' });
  const dm = h('form', {
    class: 'side-form',
    'aria-label': 'Start a direct chat',
    onsubmit: async (e) => {
      e.preventDefault();
      const peer = dmName.value.trim().replace(/^@/, '').toLowerCase();
      if (!peer) return;
      const created = await guarded(() => api('POST', `/api/direct/${encodeURIComponent(peer)}`));
      if (!created?.name) return;
      dmName.value = '';
      rememberPeer(created.name, peer);
      await loadRoomList();
      openRoom(created.name);
    },
  }, h('label', { for: 'dm-username' }, 'Direct chat with'), h('div', { class: 'inline' }, dmName, h('button', { type: 'submit' }, 'Chat')));

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

export function showRoom(name) {
  state.active = name;
  const r = room(name);
  r.error = null;
  document.body.classList.add('in-room');
  if (socket.open && !r.joined) joinRoom(r);
  renderRoomList();
  renderRoomPane(r);
  markRead(r);
}

export function showLobby() {
  state.active = null;
  document.body.classList.remove('in-room');
  renderRoomList();
  if (!screen.shell) return;
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
  const scroller = h('div', { class: 'scroller', onscroll: () => onMessagesScroll(r) }, olderStatus, messages);
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
  const input = h('textarea', {
    id: 'composer-input', rows: 1, maxlength: 4000, placeholder: composerPlaceholder(),
    'aria-label': 'Message', enterkeyhint: 'send',
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
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
    scroller,
    jump,
    typing,
    notice,
    replyBar,
    form,
  );
  screen.shell.pane.setAttribute('aria-labelledby', 'room-title');
  screen.pane = { room: r.name, title, topic, actions, online, strip, olderStatus, messages, scroller, jump, typing, notice, input, form, replyBar, elements: new Map() };
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
          const ok = await guarded(() => api('POST', `/api/rooms/${encodeURIComponent(r.name)}/members`, { username }));
          if (ok !== undefined) {
            toast(`${username} added to ${roomLabel(r.name)}`);
            who.value = '';
          }
        },
      }, who, h('button', { type: 'submit' }, 'Add'))));
  }
  const settings = roomSettings(r.name);
  if (settings) actions.append(settings);
  if (s?.role && kind !== 'direct') {
    actions.append(h('button', {
      type: 'button', class: 'ghost',
      onclick: async () => {
        const ok = await guarded(() => api('DELETE', `/api/rooms/${encodeURIComponent(r.name)}/members/${encodeURIComponent(me())}`));
        if (ok === undefined) return;
        socket.request({ type: 'leave', room: r.name }).catch(() => {});
        state.rooms.delete(r.name);
        await loadRoomList();
        location.hash = '#/';
      },
    }, 'Leave room'));
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
  screen.pane.scroller.hidden = Boolean(e);
  screen.pane.strip.hidden = Boolean(e);
}

function roomErrorText(e, r) {
  switch (e.code) {
    case 'not_found':
      return `There is no room called ${r.name}.`;
    case 'not_member':
      return `${roomLabel(r.name)} is private: ask a member to add you.`;
    default:
      return e.message;
  }
}

/** The room list's second line: the room's newest message (`last_message` of the room list,
 *  kept current by `message` frames), or nothing. */
function lastLine(last) {
  if (!last || typeof last.preview !== 'string') return null;
  const time = new Date(last.created_at);
  return h('span', { class: 'last-message', title: dateTimeFormat.format(time) },
    h('span', { class: 'last-sender' }, `${last.sender}: `), last.preview);
}
