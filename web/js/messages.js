// A room's messages: sending (queued while offline, sent with a client_id), history paging
// and gap filling, edit and delete, own typing notices, and the message list on screen.

import { avatar, dateTimeFormat, dayKey, dayLabel, h, randomId, timeFormat } from './dom.js';
import { clearError, describeError, showError } from './errors.js';
import { renderBody } from './markup.js';
import { authorName } from './profile.js';
import { me, screen, state } from './state.js';
import { FrameError, socket } from './connection.js';
import { reactionRow, replyQuote, startReply } from './reactions.js';
import { moderationControl } from './moderation.js';
import { mentionClass } from './notify.js';

const TYPING_REFRESH_MS = 3_000;
const TYPING_IDLE_MS = 4_000;
const PAGE_SIZE = 50;

/** After a reconnect: fetch everything newer than what we had, page by page. */
export function fillGap(r, after) {
  return socket.historyAfter(r.name, after, (messages) => r.merge(messages));
}

async function loadOlder(r) {
  if (r.loadingOlder || !r.hasMore || !socket.open) return;
  r.loadingOlder = true;
  renderLoadingOlder(r);
  try {
    const before = r.oldestId();
    const frame = { type: 'history', room: r.name, limit: PAGE_SIZE };
    if (before) frame.before = before;
    const reply = await socket.request(frame);
    const messages = Array.isArray(reply.messages) ? reply.messages : [];
    r.merge(messages);
    r.olderError = null;
    r.hasMore = Boolean(reply.has_more) && messages.length > 0;
  } catch (e) {
    if (e instanceof FrameError) r.olderError = `Could not load older messages: ${describeError(e)}`;
  } finally {
    r.loadingOlder = false;
    if (r.name === state.active) renderMessages(r, { keepOffsetFromBottom: true });
  }
}

export function flushPending(r) {
  for (const p of r.pending) {
    if (p.inFlight) continue;
    sendPending(r, p);
  }
}

function sendPending(r, p) {
  // Not joined yet: flushPending sends it once the room is joined.
  if (p.inFlight || !socket.open || !r.joined) return;
  p.inFlight = true;
  p.failed = null;
  // The library waits while offline and retries under the same client_id (the server
  // stores it once) until acknowledged; it rejects only when the server refuses it for good
  // (or after many failed attempts): show why and let the user retry or drop it.
  socket
    .send(r.name, p.body, p.client_id, p.replyTo?.id)
    .then((reply) => {
      r.merge([{ ...reply, type: undefined, ref: undefined }]);
    })
    .catch((e) => {
      p.failed = describeError(e, 'send');
    })
    .finally(() => {
      p.inFlight = false;
      if (r.name === state.active) renderMessages(r);
    });
}

export function postMessage(r, body, replyTo = null) {
  const p = { client_id: randomId(), body, replyTo, failed: null, inFlight: false };
  r.pending.push(p);
  sendPending(r, p);
  renderMessages(r, { stickToBottom: true });
}

function renderLoadingOlder(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  screen.pane.olderStatus.textContent = r.olderError && !r.loadingOlder ? r.olderError : r.loadingOlder ? 'Loading older messages…' : r.hasMore ? '' : 'Start of the conversation';
}

export function onMessagesScroll(r) {
  if (!screen.pane) return;
  const { scroller } = screen.pane;
  if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60) screen.pane.jump.hidden = true;
  if (scroller.scrollTop < 120) loadOlder(r);
}

const DELETE_CONFIRM_MS = 4_000;
/** Message id → until when its delete button is armed. */
const confirmingDelete = new Map();

/** Whether `name` is a guest's user name (`guest.{name}.{tag}`; accounts cannot take the prefix). */
export function isGuestName(name) {
  return name.startsWith('guest.');
}

/** The name a guest chose: `guest.{name}.{tag}` without the prefix and the tag. */
export function guestDisplay(sender) {
  const parts = sender.split('.');
  return parts.length >= 3 ? parts.slice(1, -1).join('.') : sender;
}

/** Functions other modules add to decorate every message element as it is built:
 *  `(el, m, r) => void` (e.g. highlighting a mention). Called after the element is complete. */
export const messageDecorators = [];

/** Minutes within which one sender's messages share a header (avatar, name). */
const GROUP_WINDOW_MS = 60_000;

/** Whether `m` continues `prev`'s group: same sender, same day, and the same minute (within
 *  a minute of it, so 12:00:59 and 12:01:10 still go together). */
export function continuesGroup(prev, m) {
  if (!prev || prev.sender !== m.sender || prev.deleted_at || m.deleted_at) return false;
  const a = new Date(prev.created_at);
  const b = new Date(m.created_at);
  return dayKey(a) === dayKey(b) && b - a >= 0 && b - a < GROUP_WINDOW_MS;
}

/** The name shown for a sender (a guest's chosen name without prefix and tag). */
function shownName(m) {
  return m.guest || isGuestName(m.sender) ? guestDisplay(m.sender) : authorName(m) ?? m.sender;
}

/** One message on screen: `grouped` when it continues the previous message's group (no
 *  avatar or name of its own). Exported for other views (e.g. search results). */
export function messageElement(r, m, { grouped = false } = {}) {
  const own = m.sender === me();
  const deleted = Boolean(m.deleted_at);
  const el = h('li', {
    class: `msg${own ? ' own' : ''}${deleted ? ' deleted' : ''}${grouped ? ' grouped' : ''}${mentionClass(m)}`,
    dataset: { id: String(m.id), sender: m.sender },
  });
  const time = new Date(m.created_at);
  const stamp = h('time', { datetime: time.toISOString(), title: dateTimeFormat.format(time) }, timeFormat.format(time));
  const bubble = h('div', { class: 'bubble' });
  el.append(grouped ? h('span', { class: 'avatar-gap', 'aria-hidden': 'true' }) : avatar(m.sender), bubble);
  if (grouped) {
    // The name stays for screen readers; the time shows in the gutter on hover or focus.
    bubble.append(h('div', { class: 'meta meta-grouped' }, h('span', { class: 'sr-only sender' }, shownName(m)), stamp));
  } else {
    bubble.append(h('div', { class: 'meta' },
      h('span', { class: 'sender', title: m.guest || m.sender_display_name ? m.sender : null }, shownName(m)),
      m.guest ? h('span', { class: 'guest-mark', title: 'a guest: no account' }, 'guest') : null,
      stamp,
      m.edited_at && !deleted ? h('span', { class: 'edited', title: `edited ${dateTimeFormat.format(new Date(m.edited_at))}` }, '(edited)') : null));
  }
  const quote = replyQuote(m);
  if (quote) bubble.append(quote);
  bubble.append(h('div', { class: 'body' }, deleted ? 'This message was deleted.' : renderBody(m.body)));
  if (grouped && m.edited_at && !deleted) bubble.append(h('span', { class: 'edited edited-after', title: `edited ${dateTimeFormat.format(new Date(m.edited_at))}` }, '(edited)'));
  const reactions = reactionRow(m);
  if (reactions) bubble.append(reactions);
  const reply = deleted ? null : h('button', { type: 'button', class: 'link', 'aria-label': 'Reply to message', onclick: () => startReply(r, m) }, 'Reply');
  if (reply && !own) bubble.append(h('div', { class: 'actions' }, reply, moderationControl(r.name, m)));
  if (own && !deleted) {
    // Deleting takes two clicks; the first arms the button for a few seconds. The armed state
    // lives outside the element, which may be rebuilt meanwhile (a read marker moved).
    const armed = (confirmingDelete.get(m.id) ?? 0) > Date.now();
    const actions = h('div', { class: 'actions' });
    const del = h('button', {
      type: 'button', class: 'link', 'aria-label': armed ? 'Confirm delete message' : 'Delete message',
      onclick: () => {
        if ((confirmingDelete.get(m.id) ?? 0) <= Date.now()) {
          confirmingDelete.set(m.id, Date.now() + DELETE_CONFIRM_MS);
          del.textContent = 'Really delete?';
          del.setAttribute('aria-label', 'Confirm delete message');
          setTimeout(() => {
            confirmingDelete.delete(m.id);
            if (!del.isConnected) return;
            del.textContent = 'Delete';
            del.setAttribute('aria-label', 'Delete message');
          }, DELETE_CONFIRM_MS);
          return;
        }
        confirmingDelete.delete(m.id);
        clearError(actions);
        socket.request({ type: 'delete', message_id: m.id }).catch((e) => showError(actions, `Not deleted: ${describeError(e, 'delete')}`));
      },
    }, armed ? 'Really delete?' : 'Delete');
    actions.append(
      reply,
      h('button', { type: 'button', class: 'link', 'aria-label': 'Edit message', onclick: () => startEdit(r, m, el) }, 'Edit'),
      del);
    bubble.append(actions);
  }
  for (const decorate of messageDecorators) {
    try {
      decorate(el, m, r);
    } catch (e) {
      console.warn('message decorator failed', e);
    }
  }
  return el;
}

/** Edits the newest message of mine in room `r` that is not deleted (the composer's Up key).
 *  True if there was one. */
export function editLastOwn(r) {
  if (!screen.pane || screen.pane.room !== r.name) return false;
  const mine = r.sorted().filter((m) => m.sender === me() && !m.deleted_at).at(-1);
  const el = mine && screen.pane.elements.get(`m${mine.id}`);
  if (!el) return false;
  if (el.dataset.editing !== 'yes') startEdit(r, mine, el);
  else el.querySelector('.edit-input')?.focus();
  return true;
}

function startEdit(r, m, el) {
  const body = el.querySelector('.body');
  const editor = h('textarea', { class: 'edit-input', 'aria-label': 'Edit message', value: m.body, rows: 2, maxlength: 4000 });
  const buttons = h('div', { class: 'inline' }, h('button', { type: 'submit', class: 'primary small' }, 'Save'), h('button', { type: 'button', class: 'ghost small', onclick: () => cancel() }, 'Cancel'));
  const form = h('form', {
    class: 'edit-form',
    onsubmit: (e) => {
      e.preventDefault();
      const text = editor.value;
      if (!text.trim() || text === m.body) {
        cancel();
        return;
      }
      clearError(buttons);
      socket
        .request({ type: 'edit', message_id: m.id, body: text })
        .then(() => cancel())
        .catch((err) => showError(buttons, `Not saved: ${describeError(err, 'edit')}`));
    },
  }, editor, buttons);
  const cancel = () => {
    el.dataset.editing = '';
    // Rebuilt from the record, even when nothing changed (the form is in its place now).
    el.dataset.signature = '';
    renderMessages(r);
    screen.pane?.input.focus();
  };
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      cancel();
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  el.dataset.editing = 'yes';
  body.replaceWith(form);
  el.querySelector('.actions')?.remove();
  el.querySelector('.control-error')?.remove();
  editor.focus();
  editor.setSelectionRange(editor.value.length, editor.value.length);
}

/** Brings the message list in line with the room's state, touching changed items only. */
export function renderMessages(r, opts = {}) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const { scroller, messages } = screen.pane;
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;

  // Who has read up to where: each reader is shown under the newest message of someone
  // else's that they have seen.
  const sorted = r.sorted();
  const seenBy = new Map();
  for (const [user, upTo] of r.reads) {
    let last = null;
    for (const m of sorted) if (m.id <= upTo && m.sender !== user && !m.deleted_at) last = m.id;
    if (last !== null) seenBy.set(last, [...(seenBy.get(last) ?? []), user]);
  }

  const wanted = [];
  const externals = [...r.external];
  const placeExternals = (upTo) => {
    while (externals.length && externals[0].after <= upTo) {
      const x = externals.shift();
      let el = screen.pane.elements.get(x.key);
      if (!el) {
        const time = new Date(x.at);
        el = h('li', { class: 'msg external', dataset: { sender: x.username } },
          avatar(x.username),
          h('div', { class: 'bubble' },
            h('div', { class: 'meta' },
              h('span', { class: 'sender' }, x.username),
              h('time', { datetime: time.toISOString() }, timeFormat.format(time)),
              h('span', { class: 'via', title: 'Sent through the shared channel layer; not kept in history' }, 'external')),
            h('div', { class: 'body' }, x.message)));
        screen.pane.elements.set(x.key, el);
      }
      wanted.push(el);
    }
  };
  // A date separator before the first message of each day; one sender's messages within a
  // minute of each other share a header.
  let prev = null;
  let day = null;
  for (const m of sorted) {
    placeExternals(m.id - 1);
    const mDay = dayKey(m.created_at);
    if (mDay !== day) {
      day = mDay;
      prev = null;
      const label = dayLabel(m.created_at);
      const dkey = `d${mDay}`;
      let sep = screen.pane.elements.get(dkey);
      if (!sep || sep.dataset.signature !== label) {
        const fresh = h('li', { class: 'day-separator', role: 'separator', 'aria-label': label, dataset: { day: mDay, signature: label } }, h('span', {}, label));
        if (sep) sep.replaceWith(fresh);
        sep = fresh;
        screen.pane.elements.set(dkey, sep);
      }
      wanted.push(sep);
    }
    const grouped = continuesGroup(prev, m);
    prev = m;
    const key = `m${m.id}`;
    const seen = seenBy.get(m.id)?.sort().join(', ') ?? '';
    const signature = `${grouped}|${m.body}|${m.edited_at}|${m.deleted_at}|${seen}|${m.reply_to?.deleted ?? ''}|${JSON.stringify(m.reactions ?? [])}`;
    let el = screen.pane.elements.get(key);
    if (el?.dataset.editing === 'yes') {
      wanted.push(el);
      continue;
    }
    if (!el || el.dataset.signature !== signature) {
      const fresh = messageElement(r, m, { grouped });
      if (seen) fresh.querySelector('.bubble').append(h('div', { class: 'seen' }, `Seen by ${seen}`));
      fresh.dataset.signature = signature;
      if (el) el.replaceWith(fresh);
      el = fresh;
      screen.pane.elements.set(key, el);
    }
    wanted.push(el);
  }
  placeExternals(Infinity);
  for (const p of r.pending) {
    const key = `p${p.client_id}`;
    const signature = `${p.failed ?? ''}`;
    let el = screen.pane.elements.get(key);
    if (!el || el.dataset.signature !== signature) {
      const fresh = h('li', { class: 'msg own pending', dataset: { clientId: p.client_id, signature } },
        avatar(me()),
        h('div', { class: 'bubble' },
        h('div', { class: 'meta' }, h('span', { class: 'sender' }, me()), h('span', { class: `state${p.failed ? ' failed' : ''}`, role: p.failed ? 'alert' : null }, p.failed ? `Not sent: ${p.failed}` : 'Sending…')),
        h('div', { class: 'body' }, renderBody(p.body)),
        p.failed ? h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'link', onclick: () => sendPending(r, p) }, 'Retry'),
          h('button', { type: 'button', class: 'link', onclick: () => { r.pending = r.pending.filter((x) => x !== p); renderMessages(r); } }, 'Discard')) : null));
      if (el) el.replaceWith(fresh);
      el = fresh;
      screen.pane.elements.set(key, el);
    }
    wanted.push(el);
  }
  const keep = new Set(wanted);
  for (const [key, el] of screen.pane.elements) {
    if (!keep.has(el)) {
      el.remove();
      screen.pane.elements.delete(key);
    }
  }
  let cursor = messages.firstChild;
  for (const el of wanted) {
    if (el !== cursor) messages.insertBefore(el, cursor);
    else cursor = cursor.nextSibling;
  }

  if (opts.keepOffsetFromBottom) scroller.scrollTop = scroller.scrollHeight - fromBottom;
  else if (atBottom || opts.stickToBottom) scroller.scrollTop = scroller.scrollHeight;
  // Someone wrote while the user reads older messages: offer a way down, do not yank them.
  else if (opts.incoming) screen.pane.jump.hidden = false;
  renderLoadingOlder(r);
  // A short history does not fill the pane, so no scroll event would ever ask for more.
  if (r.hasMore && !r.loadingOlder && r.joined && scroller.scrollHeight <= scroller.clientHeight + 120) loadOlder(r);
}

let ownTyping = { room: null, sentAt: 0, idle: null };

export function onComposerInput(r, text) {
  if (!socket.open || !r.joined) return;
  if (!text.trim()) {
    stopOwnTyping(r);
    return;
  }
  const now = Date.now();
  if (ownTyping.room !== r.name || now - ownTyping.sentAt > TYPING_REFRESH_MS) {
    ownTyping = { room: r.name, sentAt: now, idle: ownTyping.idle };
    socket.notify({ type: 'typing', room: r.name, active: true });
  }
  clearTimeout(ownTyping.idle);
  ownTyping.idle = setTimeout(() => stopOwnTyping(r), TYPING_IDLE_MS);
}

export function stopOwnTyping(r) {
  clearTimeout(ownTyping.idle);
  if (ownTyping.room === r.name && ownTyping.sentAt) {
    socket.notify({ type: 'typing', room: r.name, active: false });
  }
  ownTyping = { room: null, sentAt: 0, idle: null };
}
