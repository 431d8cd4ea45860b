// Message search (issue 17): a search box in the sidebar and a results list under it.
// GET /api/search answers snippets as text segments (`{text, hit}`); a hit becomes a <mark>
// whose text is set with textContent — no HTML from the server is ever parsed. Clicking a
// result opens its room (through the router, as the room list does).

import { h, clear, dateTimeFormat } from './dom.js';
import { api, ApiError } from './api.js';

/** Shows one result: room, sender (with the guest mark), time and the highlighted snippet. */
function resultItem(hit) {
  const m = hit.message;
  const snippet = h('span', { class: 'search-snippet' });
  for (const seg of hit.snippet) {
    snippet.append(seg.hit ? h('mark', {}, seg.text) : document.createTextNode(seg.text));
  }
  const who = h('span', { class: 'search-sender' }, m.sender);
  if (m.guest) who.append(' ', h('span', { class: 'badge guest-badge' }, 'guest'));
  const open = h('button', {
    type: 'button',
    class: 'search-result',
    dataset: { room: m.room, id: String(m.id) },
    onclick: () => { location.hash = `#/room/${encodeURIComponent(m.room)}`; },
  },
  h('span', { class: 'search-meta' }, h('span', { class: 'search-room' }, `#${m.room}`), ' · ', who,
    ' · ', h('time', {}, dateTimeFormat.format(new Date(m.created_at)))),
  snippet);
  return h('li', {}, open);
}

/** The search form and its results list, for the sidebar. */
export function searchBox() {
  const input = h('input', { type: 'search', name: 'q', placeholder: 'Search messages', 'aria-label': 'Search messages', maxlength: '200' });
  const list = h('ul', { class: 'search-results', 'aria-label': 'Search results' });
  const status = h('p', { class: 'search-status', role: 'status' });
  const more = h('button', { type: 'button', class: 'search-more', hidden: true }, 'More results');
  let query = '';
  let before = null;

  async function load(append) {
    const params = new URLSearchParams({ q: query });
    if (append && before) params.set('before', String(before));
    status.textContent = 'Searching…';
    try {
      const page = await api('GET', `/api/search?${params}`);
      if (!append) clear(list);
      for (const hit of page.results) list.append(resultItem(hit));
      before = page.next_before;
      more.hidden = !page.has_more;
      status.textContent = list.children.length ? '' : 'No messages found.';
    } catch (e) {
      more.hidden = true;
      if (!append) clear(list);
      status.textContent = e instanceof ApiError && e.code === 'invalid_field'
        ? 'Type a word to search for (letters or digits).'
        : 'Search failed. Try again.';
    }
  }

  const form = h('form', {
    class: 'search-form',
    role: 'search',
    onsubmit: (ev) => {
      ev.preventDefault();
      query = input.value.trim();
      if (!query) { clear(list); status.textContent = ''; more.hidden = true; return; }
      load(false);
    },
  }, input);
  more.addEventListener('click', () => load(true));
  return h('div', { class: 'search' }, form, status, list, more);
}
