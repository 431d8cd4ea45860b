// Parley web client: a dependency-free single-page app served by parley-server. The entry
// module: start-up, routing (#/room/<name>), logout, the room list poll, and the wiring of
// hooks.js (the calls lower modules make up the layers).

import { h } from './dom.js';
import { hooks } from './hooks.js';
import { screen, state } from './state.js';
import { AuthLost, readStoredAuth, session, setAuth } from './auth.js';
import { ApiError, api } from './api.js';
import { socket } from './connection.js';
import { loadRoomList, scheduleRoomListRefresh } from './rooms.js';
import { hangUp } from './calls.js';
import { renderAuth } from './login.js';
import { completeOidcReturn } from './oidc.js';
import { renderAll, renderRoomHeader, renderRoomList, renderShell, setConn, showLobby, showRoom } from './views.js';
import { handleFrame, onSocketClosed, onSocketOpen } from './frames.js';
import { showAdmin } from './admin.js';
import { showProfile } from './profile.js';

function logout(notice) {
  const auth = state.auth;
  if (state.call) hangUp();
  socket.stop();
  // Revokes the refresh token and forgets the tokens (the request finishes in the background).
  if (auth) session.logout().catch(() => {});
  else setAuth(null);
  clearInterval(roomListPoll);
  state.rooms.clear();
  state.summaries.clear();
  state.publicRooms.clear();
  state.publicMore.clear();
  state.publicNext = null;
  state.active = null;
  screen.shell = null;
  screen.pane = null;
  document.body.classList.remove('in-room');
  if (location.hash) history.replaceState(null, '', location.pathname);
  renderAuth(notice);
}

function route() {
  if (!state.auth || !screen.shell) return;
  const match = /^#\/room\/(.+)$/.exec(location.hash);
  if (location.hash === '#/admin') showAdmin();
  else if (location.hash === '#/profile') showProfile();
  else if (match) showRoom(decodeURIComponent(match[1]).toLowerCase());
  else showLobby();
}

window.addEventListener('hashchange', route);

/** How often the room list (the user's rooms, the directory's first page) is reloaded: the
 *  server does not announce new memberships (a direct chat someone opened with us, a private
 *  room we were added to). */
const ROOM_LIST_POLL_MS = 10_000;
let roomListPoll = null;

async function startApp() {
  renderShell();
  route();
  socket.start();
  clearInterval(roomListPoll);
  roomListPoll = setInterval(() => {
    if (state.auth && state.conn === 'online') loadRoomList();
  }, ROOM_LIST_POLL_MS);
  await loadRoomList();
}

window.addEventListener('focus', () => {
  if (state.auth && screen.shell && state.conn === 'online') scheduleRoomListRefresh();
});

async function boot() {
  const host = document.body;
  if (!document.getElementById('toasts')) host.append(h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' }));
  if (!document.getElementById('call-root')) host.append(h('div', { id: 'call-root' }));
  // Back from a "Sign in with …" provider: trade the one-time code for tokens first.
  const oidc = await completeOidcReturn();
  if (oidc?.error) {
    renderAuth(oidc.error);
    return;
  }
  const stored = readStoredAuth();
  if (!stored) {
    renderAuth();
    return;
  }
  setAuth(stored);
  try {
    const data = await api('GET', '/api/me');
    const user = data?.user ?? data;
    if (user?.username) setAuth({ ...state.auth, user });
    startApp();
  } catch (e) {
    if (e instanceof AuthLost || (e instanceof ApiError && e.status === 401)) {
      setAuth(null);
      renderAuth('Your session has ended. Please log in again.');
    } else {
      // The server is unreachable: start anyway; the socket keeps retrying.
      startApp();
    }
  }
}

Object.assign(hooks, {
  logout,
  startApp,
  setConn,
  onSocketOpen,
  onSocketClosed,
  handleFrame,
  renderAll,
  renderRoomList,
  renderRoomHeader,
});

boot();
