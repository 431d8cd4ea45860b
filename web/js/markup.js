// A message body on screen: a small markdown subset (```code blocks```, `inline code`,
// **bold**, *italic* or _italic_) and clickable links, built as DOM nodes — user text is
// only ever a text node, never parsed as HTML. Imports only dom.js.

import { h } from './dom.js';

/** Schemes a link may have: anything else (`javascript:`, `data:`, …) stays plain text. */
const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/** Bare URLs are linked when they start like this; the scheme is checked again on the parsed URL. */
const URL_START = /(?:https?:\/\/|mailto:)[^\s<>]+/gi;

/** The inline constructs, earliest match wins: `code`, **bold**, *italic*, _italic_, a URL. */
const INLINE = /`([^`\n]+)`|\*\*(?=\S)([\s\S]*?\S)\*\*|(?<![\w*])\*(?=[^\s*])([\s\S]*?[^\s*])\*(?![\w*])|(?<![\w_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w_])|((?:https?:\/\/|mailto:)[^\s<>]+)/gi;

/** The link's href when `text` is a URL the client may link to, else null. */
export function safeHref(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (!SAFE_SCHEMES.has(url.protocol)) return null;
  if (url.protocol !== 'mailto:' && !url.hostname) return null;
  return url.href;
}

/** An `<a>` opening `href` in a new tab without giving it this page (`window.opener`) or
 *  the referrer. */
export function linkElement(href, text) {
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'msg-link' }, text);
}

/** Splits a matched URL from the punctuation that usually follows one in prose ("see
 *  https://x.org." or "(https://x.org)"). */
function trimUrl(raw) {
  let url = raw;
  for (;;) {
    const last = url.at(-1);
    if ('.,;:!?\'"'.includes(last)) url = url.slice(0, -1);
    else if (last === ')' && (url.match(/\(/g) ?? []).length < (url.match(/\)/g) ?? []).length) url = url.slice(0, -1);
    else break;
  }
  return [url, raw.slice(url.length)];
}

/** Inline markup of `text` (no code blocks in it) as nodes appended to `parent`. */
function inline(parent, text, depth = 0) {
  if (depth > 4) {
    parent.append(text);
    return;
  }
  let at = 0;
  // A fresh regex per level: the recursion below would reset a shared one's lastIndex.
  const re = new RegExp(INLINE.source, 'gi');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > at) parent.append(text.slice(at, m.index));
    const [whole, code, bold, star, under, url] = m;
    if (code !== undefined) parent.append(h('code', {}, code));
    else if (bold !== undefined) inline(parent.appendChild(h('strong')), bold, depth + 1);
    else if (star !== undefined || under !== undefined) inline(parent.appendChild(h('em')), star ?? under, depth + 1);
    else if (url !== undefined) {
      const [link, rest] = trimUrl(url);
      const href = safeHref(link);
      parent.append(href ? linkElement(href, link) : link);
      if (rest) parent.append(rest);
    } else parent.append(whole);
    at = m.index + whole.length;
  }
  if (at < text.length) parent.append(text.slice(at));
}

/** A message body as a fragment of DOM nodes: fenced code blocks (``` on their own, an
 *  optional language word after the opening fence) as `<pre><code>`, the rest inline markup.
 *  An unclosed fence is plain text. */
export function renderBody(text) {
  const out = document.createDocumentFragment();
  const source = String(text ?? '');
  const fence = /```[^\n`]*\n?([\s\S]*?)```/g;
  let at = 0;
  for (let m = fence.exec(source); m; m = fence.exec(source)) {
    if (m.index > at) inline(out, source.slice(at, m.index).replace(/\n$/, ''));
    out.append(h('pre', { class: 'code-block' }, h('code', {}, m[1].replace(/\n$/, ''))));
    at = m.index + m[0].length;
    if (source[at] === '\n') at += 1;
  }
  if (at < source.length) inline(out, source.slice(at));
  return out;
}

/** A one-line preview of a body: the markdown markers left out (`**`, `` ` ``, fences), lines
 *  joined, so the room list and the reply bar read as text. */
export function plainPreview(text) {
  return String(text ?? '')
    .replace(/```[^\n`]*\n?/g, '')
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '$1')
    .replace(/`([^`\n]+)`/g, '$1')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

/** Plain text with its URLs linked (no markdown): for previews and notices. */
export function linkify(text) {
  const out = document.createDocumentFragment();
  const source = String(text ?? '');
  let at = 0;
  URL_START.lastIndex = 0;
  for (let m = URL_START.exec(source); m; m = URL_START.exec(source)) {
    const [link, rest] = trimUrl(m[0]);
    if (m.index > at) out.append(source.slice(at, m.index));
    const href = safeHref(link);
    out.append(href ? linkElement(href, link) : link);
    if (rest) out.append(rest);
    at = m.index + m[0].length;
  }
  if (at < source.length) out.append(source.slice(at));
  return out;
}
