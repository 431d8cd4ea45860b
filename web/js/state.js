// What the client holds: the session, every room's state (RoomState), the connection state,
// the call, and the parts of the page on screen. Imports nothing.

export const state = {
  /** `{access, refresh, user}` or null when logged out. */
  auth: null,
  /** Room name → RoomState. */
  rooms: new Map(),
  /** Room summaries by name: the user's rooms (`GET /api/me/rooms`) and the public rooms
   *  read from the directory (`GET /api/rooms`), the user's own entry first. */
  summaries: new Map(),
  /** The directory's first page, reloaded with the room list. */
  publicRooms: new Map(),
  /** Further directory pages read with "More public rooms", kept until logout. */
  publicMore: new Map(),
  /** Where the directory's next page starts, or null when it was all read. */
  publicNext: null,
  /** The room shown, or null. */
  active: null,
  /** 'offline' | 'connecting' | 'online' | 'reconnecting'. */
  conn: 'offline',
  /** The current call, or null. */
  call: null,
};

/** The parts of the page kept for updates (views.js builds them; logout drops them). */
export const screen = {
  /** The app shell's elements, or null while the login screen shows. */
  shell: null,
  /** Parts of the room pane, kept so updates touch only what changed. */
  pane: null,
};

export function me() {
  return state.auth?.user?.username ?? '';
}

/** One room as this client knows it. */
class RoomState {
  constructor(name) {
    this.name = name;
    this.id = null;
    this.kind = null;
    /** id → message record */
    this.messages = new Map();
    /** Sends not yet acknowledged: {client_id, body, failed} */
    this.pending = [];
    this.joined = false;
    this.joining = null;
    this.error = null;
    this.hasMore = true;
    this.loadingOlder = false;
    this.online = [];
    /** Users online in the room; more than `online` lists in rooms over the presence limit. */
    this.onlineCount = 0;
    /** user → expiry timer */
    this.typing = new Map();
    /** user → newest message id they read */
    this.reads = new Map();
    this.unread = 0;
    this.lastReadSent = 0;
    /** `external` messages (from a Django consumer on the shared layer): not stored, no id;
     *  shown after the newest message there was when they arrived. */
    this.external = [];
  }

  newestId() {
    let newest = 0;
    for (const id of this.messages.keys()) if (id > newest) newest = id;
    return newest;
  }

  oldestId() {
    let oldest = 0;
    for (const id of this.messages.keys()) if (oldest === 0 || id < oldest) oldest = id;
    return oldest;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.id - b.id);
  }

  merge(records) {
    for (const m of records || []) {
      if (typeof m?.id !== 'number') continue;
      this.messages.set(m.id, m);
      if (m.client_id) this.pending = this.pending.filter((p) => p.client_id !== m.client_id);
    }
  }
}

export function room(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = new RoomState(name);
    state.rooms.set(name, r);
  }
  return r;
}
