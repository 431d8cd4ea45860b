// Replies and reactions (issue 17): the quote above a reply (clicking it jumps to the
// original when it is loaded), the reply bar above the composer, reaction chips under a
// message with a small picker, and what a `reaction` frame does to a message record.

import { h, toast } from './dom.js';
import { describeError } from './errors.js';
import { plainPreview } from './markup.js';
import { me, screen, state } from './state.js';
import { socket } from './connection.js';

/** The emoji the picker offers (any emoji the server accepts may arrive from others). */
export const PICKER = ['👍', '❤️', '😂', '🎉', '😮', '😢'];

/** Guests may not react (the server refuses it with `guest_not_allowed`). */
function mayReact() {
  return !state.auth?.user?.is_guest;
}

/** The quote shown above a reply: the original's sender and first characters. */
export function replyQuote(m) {
  const p = m.reply_to;
  if (!p || typeof p !== 'object') return null;
  const text = p.deleted ? 'Original message deleted' : `${p.sender ?? 'unknown'}: ${p.excerpt ?? ''}`;
  return h('button', {
    type: 'button', class: `reply-quote${p.deleted ? ' gone' : ''}`,
    'aria-label': `Reply to ${p.deleted ? 'a deleted message' : `${p.sender}: ${p.excerpt}`}. Show the original`,
    onclick: () => jumpTo(p.id),
  }, text);
}

/** Scrolls to message `id` and flashes it, if it is loaded. */
export function jumpTo(id) {
  const el = screen.pane?.elements.get(`m${id}`);
  if (!el) {
    toast('The original message is further back; scroll up to load it.', 'info');
    return;
  }
  el.scrollIntoView({ block: 'center', behavior: 'smooth' });
  el.classList.add('flash');
  setTimeout(() => el.classList.remove('flash'), 1_500);
}

/** A room's reply in progress: `{id, sender, excerpt}` or null. */
export function startReply(r, m) {
  r.replyTo = { id: m.id, sender: m.sender, excerpt: m.body.slice(0, 100) };
  renderReplyBar(r);
  screen.pane?.input.focus();
}

export function cancelReply(r) {
  r.replyTo = null;
  renderReplyBar(r);
}

/** The bar above the composer naming the message being answered. */
export function renderReplyBar(r) {
  if (!screen.pane || screen.pane.room !== r.name) return;
  const bar = screen.pane.replyBar;
  bar.replaceChildren();
  bar.hidden = !r.replyTo;
  if (!r.replyTo) return;
  bar.append(
    h('span', { class: 'reply-to' }, `Replying to ${r.replyTo.sender}: ${plainPreview(r.replyTo.excerpt)}`),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Cancel reply', onclick: () => cancelReply(r) }, 'Cancel'));
}

/** The reaction chips under a message, and the picker to add one. */
export function reactionRow(m) {
  if (m.deleted_at) return null;
  const reactions = Array.isArray(m.reactions) ? m.reactions : [];
  const mine = (x) => Array.isArray(x.users) && x.users.includes(me());
  const can = mayReact();
  const row = h('div', { class: 'reactions' });
  for (const x of reactions) {
    row.append(h('button', {
      type: 'button', class: `chip${mine(x) ? ' mine' : ''}`, disabled: !can,
      'aria-pressed': mine(x) ? 'true' : 'false',
      'aria-label': `${x.emoji} ${x.count}: ${(x.users ?? []).join(', ')}`,
      title: (x.users ?? []).join(', '),
      onclick: () => toggle(m, x.emoji, !mine(x)),
    }, `${x.emoji} ${x.count}`));
  }
  if (can) {
    const picker = h('span', { class: 'picker', hidden: true },
      PICKER.map((emoji) => h('button', {
        type: 'button', class: 'pick', 'aria-label': `React with ${emoji}`,
        onclick: () => {
          picker.hidden = true;
          const existing = reactions.find((x) => x.emoji === emoji);
          toggle(m, emoji, !(existing && mine(existing)));
        },
      }, emoji)));
    row.append(h('button', {
      type: 'button', class: 'link add-reaction', 'aria-label': 'Add reaction',
      onclick: () => { picker.hidden = !picker.hidden; },
    }, '+☺'), picker);
  }
  return row;
}

function toggle(m, emoji, add) {
  socket
    .request({ type: add ? 'react' : 'unreact', message_id: m.id, emoji })
    .catch((e) => toast(describeError(e, 'react'), 'error'));
}

/** A `reaction` frame: the message record's reactions updated in place. True if it changed. */
export function applyReaction(r, f) {
  const m = r.messages.get(f.message_id);
  if (!m || typeof f.emoji !== 'string') return false;
  const reactions = Array.isArray(m.reactions) ? m.reactions.map((x) => ({ ...x, users: [...(x.users ?? [])] })) : [];
  let x = reactions.find((y) => y.emoji === f.emoji);
  if (!x) {
    if (!f.active) return false;
    x = { emoji: f.emoji, count: 0, users: [] };
    reactions.push(x);
  }
  if (f.active && !x.users.includes(f.user)) x.users.push(f.user);
  if (!f.active) x.users = x.users.filter((u) => u !== f.user);
  x.count = typeof f.count === 'number' ? f.count : x.users.length;
  r.messages.set(m.id, { ...m, reactions: reactions.filter((y) => y.count > 0) });
  return true;
}
