// Rooms: joining (and rejoining after a reconnect), read markers, direct-chat peers, labels,
// the room list from the REST API (the user's rooms, and the public directory page by page).

import { toast } from './dom.js';
import { describeError } from './errors.js';
import { hooks } from './hooks.js';
import { me, room, state } from './state.js';
import { api, guarded } from './api.js';
import { FrameError, socket } from './connection.js';
import { fillGap, flushPending } from './messages.js';
import { clearMentions, noteSummary } from './notify.js';

/** The rooms this connection should be in: every room the user belongs to, and the one shown. */
export function wantedRooms() {
  // The room on screen first: joins are rate-limited, so it should not wait behind others.
  const names = new Set(state.active ? [state.active] : []);
  for (const s of state.summaries.values()) if (s.role) names.add(s.name);
  return [...names].slice(0, 90);
}

export async function joinRoom(r) {
  if (r.joining) return r.joining;
  r.joining = (async () => {
    const hadNewest = r.newestId();
    try {
      const reply = await socket.request({ type: 'join', room: r.name });
      r.joined = true;
      r.error = null;
      r.id = reply.room_id ?? r.id;
      r.kind = reply.kind ?? r.kind;
      r.online = Array.isArray(reply.online) ? reply.online : [];
      // Big rooms list only some of who is online (the server's presence limit): the count is whole.
      r.onlineCount = Number.isInteger(reply.online_count) ? reply.online_count : r.online.length;
      const history = Array.isArray(reply.history) ? reply.history : [];
      if (r.messages.size === 0) r.hasMore = history.length > 0;
      r.merge(history);
      learnDirectPeer(r);
      if (hadNewest) {
        try {
          await fillGap(r, hadNewest);
        } catch (e) {
          // The room stays joined; the next reconnect tries again from what we hold.
          if (e instanceof FrameError) toast(`Could not load the messages you missed in ${roomLabel(r.name)}: ${describeError(e)}`, 'error');
        }
      }
      flushPending(r);
      if (!state.summaries.has(r.name) || !state.summaries.get(r.name).role) scheduleRoomListRefresh();
    } catch (e) {
      r.joined = false;
      if (e instanceof FrameError && e.code === 'rate_limited') {
        setTimeout(() => {
          if (socket.open && !r.joined && wantedRooms().includes(r.name)) joinRoom(r);
        }, 1_000 + Math.random() * 1_000);
      } else if (e instanceof FrameError) r.error = e;
    } finally {
      r.joining = null;
      hooks.renderAll();
      if (r.name === state.active) markRead(r);
    }
  })();
  return r.joining;
}

let readTimer = null;

/** Moves the read marker to the newest message of the room shown, if the page is visible. */
export function markRead(r) {
  if (!r || r.name !== state.active || document.visibilityState !== 'visible') return;
  clearMentions(r.name);
  if (r.unread) {
    r.unread = 0;
    hooks.renderRoomList();
  }
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const newest = r.newestId();
    if (!newest || newest <= r.lastReadSent || !r.joined) return;
    r.lastReadSent = newest;
    socket.request({ type: 'read', room: r.name, message_id: newest }).catch(() => {
      r.lastReadSent = 0;
    });
  }, 300);
}

document.addEventListener('visibilitychange', () => {
  if (state.active) markRead(room(state.active));
});

// Direct rooms are named dm.<id>.<id>; the peer's name comes from the server when it gives
// one, else from what we have seen (who we opened it with, who wrote in it).
/** Per user: another account logged in on this browser has other direct rooms. */
const peersKey = () => `parley.dmPeers.${me()}`;

function knownPeers() {
  try {
    return JSON.parse(localStorage.getItem(peersKey()) || '{}') || {};
  } catch {
    return {};
  }
}

export function rememberPeer(roomName, peer) {
  if (!peer || peer === me()) return;
  const peers = knownPeers();
  if (peers[roomName] === peer) return;
  peers[roomName] = peer;
  localStorage.setItem(peersKey(), JSON.stringify(peers));
}

export function directPeer(roomName) {
  const s = state.summaries.get(roomName);
  const fromServer =
    s?.peer?.username ?? (typeof s?.peer === 'string' ? s.peer : null) ??
    (Array.isArray(s?.members) ? s.members.map((m) => m?.username ?? m).find((u) => u && u !== me()) : null);
  return fromServer || knownPeers()[roomName] || null;
}

export function learnDirectPeer(r) {
  if (!isDirect(r.name)) return;
  if (directPeer(r.name)) return;
  const other =
    r.online.find((u) => u !== me()) ?? [...r.messages.values()].map((m) => m.sender).find((u) => u !== me());
  if (other) {
    rememberPeer(r.name, other);
    return;
  }
  // Nobody else has spoken or is online: ask the server who the members are (once).
  if (r.peerLookup) return;
  r.peerLookup = guarded(() => api('GET', `/api/rooms/${encodeURIComponent(r.name)}`), () => {}).then((detail) => {
    const peer = (detail?.members ?? []).map((m) => m?.username).find((u) => u && u !== me());
    if (!peer) return;
    rememberPeer(r.name, peer);
    hooks.renderRoomList();
    if (state.active === r.name) hooks.renderRoomHeader(r);
  });
}

export function isDirect(name) {
  return /^dm\.\d+\.\d+$/.test(name) || state.summaries.get(name)?.kind === 'direct';
}

export function roomLabel(name) {
  if (isDirect(name)) {
    const peer = directPeer(name);
    return peer ? `@${peer}` : 'Direct chat';
  }
  return `#${name}`;
}

let roomListTimer = null;

export function scheduleRoomListRefresh() {
  clearTimeout(roomListTimer);
  roomListTimer = setTimeout(() => loadRoomList(), 200);
}

/** Largest page the server serves: the sidebar reads the user's rooms in pages this big. */
const MY_ROOMS_PAGE = 200;
/** Pages of the user's own rooms read per refresh (the sidebar shows at most 1,000 rooms;
 *  the client joins no more than 90 anyway). */
const MY_ROOMS_MAX_PAGES = 5;
/** Public rooms fetched per page of the directory ("More public rooms" reads the next). */
export const PUBLIC_PAGE = 50;

function pageUrl(path, limit, after) {
  return `${path}?limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`;
}

function summariesOf(page) {
  return (Array.isArray(page?.rooms) ? page.rooms : []).filter((s) => s && typeof s.name === 'string');
}

/** The rooms the user belongs to (`GET /api/me/rooms`, page after page), or null if the
 *  first page could not be read. */
async function fetchMyRooms() {
  const rooms = [];
  let after = null;
  for (let i = 0; i < MY_ROOMS_MAX_PAGES; i++) {
    const page = await guarded(() => api('GET', pageUrl('/api/me/rooms', MY_ROOMS_PAGE, after)), () => {});
    if (!page) return i === 0 ? null : rooms;
    rooms.push(...summariesOf(page));
    if (typeof page.next !== 'string') break;
    after = page.next;
  }
  return rooms;
}

/** Reloads the room list: every room the user belongs to, and the first page of the public
 *  directory (with any further pages "More public rooms" loaded kept as they are). */
export async function loadRoomList() {
  const [mine, directory] = await Promise.all([
    fetchMyRooms(),
    guarded(() => api('GET', pageUrl('/api/rooms', PUBLIC_PAGE, null)), () => {}),
  ]);
  if (!mine) return;
  const summaries = new Map(mine.map((s) => [s.name, s]));
  if (directory) {
    state.publicRooms = new Map(summariesOf(directory).map((s) => [s.name, s]));
    if (state.publicMore.size === 0) state.publicNext = typeof directory.next === 'string' ? directory.next : null;
  }
  for (const listed of [state.publicRooms, state.publicMore]) {
    for (const s of listed.values()) if (!summaries.has(s.name)) summaries.set(s.name, s);
  }
  state.summaries = summaries;
  for (const s of state.summaries.values()) {
    const r = room(s.name);
    r.kind = s.kind ?? r.kind;
    // The server's count is authoritative for rooms we do not have open.
    if (s.name !== state.active && typeof s.unread === 'number') r.unread = s.unread;
    noteSummary(s);
    if (s.kind === 'direct' && !directPeer(s.name)) learnDirectPeer(r);
  }
  if (socket.open) for (const name of wantedRooms()) if (!room(name).joined) joinRoom(room(name));
  hooks.renderRoomList();
  if (state.active) hooks.renderRoomHeader(room(state.active));
}

/** Reads the next page of the public directory into the room list. */
export async function loadMorePublicRooms() {
  const after = state.publicNext;
  if (!after) return;
  const page = await guarded(() => api('GET', pageUrl('/api/rooms', PUBLIC_PAGE, after)));
  if (!page || state.publicNext !== after) return;
  for (const s of summariesOf(page)) {
    state.publicMore.set(s.name, s);
    if (!state.summaries.has(s.name)) state.summaries.set(s.name, s);
  }
  state.publicNext = typeof page.next === 'string' ? page.next : null;
  hooks.renderRoomList();
}
