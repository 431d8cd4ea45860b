// DOM building (text only: user data never goes through innerHTML), icons, time formats,
// toasts, random ids. Imports nothing.

/** Builds an element. Children that are strings become text nodes (never parsed as HTML). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked' || key === 'muted' || key === 'srcObject') {
      el[key] = value;
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  appendChildren(el, children);
  return el;
}

export function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const ICONS = {
  video: 'M3 7h11a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1zm13 3.5 5-3v9l-5-3z',
  phone: 'M6.62 10.79a15.05 15.05 0 0 0 6.59 6.59l2.2-2.2a1 1 0 0 1 1.01-.24c1.12.37 2.33.57 3.58.57a1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.46.57 3.58a1 1 0 0 1-.25 1.01l-2.2 2.2z',
};

/** A small inline icon (no icon font, no emoji font needed). */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name]);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Avatar backgrounds: each gives white initials at least 4.5:1 contrast (WCAG AA). */
const AVATAR_COLOURS = ['#b3261e', '#a0522d', '#8a6d00', '#2e7d32', '#00796b', '#0b6e99', '#1f5fbf', '#5b3fc4', '#8e24aa', '#ad1457', '#546e7a', '#6d5d00'];

/** The initials shown for `name`: the first letters of its first two parts (`ann.lee` → AL),
 *  else its first two characters; a guest's prefix and tag are left out. */
export function initials(name) {
  const shown = String(name ?? '?').replace(/^guest\.(.+)\.[^.]+$/, '$1');
  const parts = shown.split(/[._\-\s]+/).filter(Boolean);
  const letters = parts.length >= 2 ? parts[0][0] + parts[1][0] : shown.slice(0, 2);
  return (letters || '?').toUpperCase();
}

/** The same colour for a name on every page and every device (a hash of the name). */
export function avatarColour(name) {
  let hash = 0;
  for (const ch of String(name ?? '')) hash = (Math.imul(hash, 31) + ch.codePointAt(0)) | 0;
  return AVATAR_COLOURS[Math.abs(hash) % AVATAR_COLOURS.length];
}

/** A round avatar with `name`'s initials (decorative: the name is always written beside it).
 *  The colour is a CSS custom property, so no inline style attribute is needed. */
export function avatar(name, size = '') {
  const el = h('span', { class: `avatar${size ? ` avatar-${size}` : ''}`, 'aria-hidden': 'true', dataset: { user: name } }, initials(name));
  el.style.setProperty('--avatar-bg', avatarColour(name));
  return el;
}

/** The local calendar day of a time, `YYYY-MM-DD` (for date separators). */
export function dayKey(time) {
  const d = new Date(time);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });

/** "Today", "Yesterday" or the full date of `time`, for a date separator. */
export function dayLabel(time, now = new Date()) {
  const key = dayKey(time);
  if (key === dayKey(now)) return 'Today';
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (key === dayKey(yesterday)) return 'Yesterday';
  return dayFormat.format(new Date(time));
}

export const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
export const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** A short-lived notice at the bottom of the screen (role=status, so screen readers hear it). */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** The page's root element. */

export const root = () => document.getElementById('app');
