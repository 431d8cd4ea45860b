// The staff page (#/admin): find accounts, promote/demote, deactivate/reactivate, reset a
// password, delete, turn guests off or on at run time, and read the audit log. Every rule is the server's (`/api/admin`, docs/api.md
// "Administration"); this page asks, shows the answer, and puts a refusal next to the control
// that caused it. Destructive steps (deactivate, delete) ask for a second, explicit click.

import { clear, h } from './dom.js';
import { api, ApiError } from './api.js';
import { screen, state } from './state.js';

/** Whether the signed-in user is staff (as `GET /api/me` last said). */
export function isStaff() {
  return state.auth?.user?.is_staff === true;
}

/** Renders the staff page into the main pane. */
export function showAdmin() {
  if (!screen.shell) return;
  state.active = null;
  document.body.classList.remove('in-room');
  if (!isStaff()) {
    clear(screen.shell.pane).append(h('div', { class: 'empty' }, h('h1', {}, 'Administration'), h('p', {}, 'Only staff may see this page.')));
    return;
  }
  const search = h('input', { id: 'admin-search', type: 'search', placeholder: 'name or e-mail', 'aria-label': 'Search accounts' });
  const users = h('tbody', {});
  const usersError = h('p', { class: 'field-error', role: 'alert' });
  const audit = h('ol', { class: 'audit-log', 'aria-label': 'Audit log' });
  const guests = h('section', { class: 'admin-guests', id: 'admin-guests' });
  const load = () => loadUsers(search.value.trim(), users, usersError, () => loadAudit(audit));
  const form = h('form', {
    class: 'admin-search',
    role: 'search',
    onsubmit: (e) => {
      e.preventDefault();
      load();
    },
  }, search, h('button', { type: 'submit' }, 'Search'));
  clear(screen.shell.pane).append(
    h('div', { class: 'admin', id: 'admin' },
      h('h1', {}, 'Administration'),
      h('h2', {}, 'Accounts'),
      form,
      usersError,
      h('table', { class: 'admin-users', 'aria-label': 'Accounts' },
        h('thead', {}, h('tr', {}, ...['Name', 'E-mail', 'Staff', 'Active', 'Last login', 'Actions'].map((t) => h('th', {}, t)))),
        users),
      h('h2', {}, 'Guests'),
      guests,
      h('h2', {}, 'Audit log'),
      audit));
  screen.pane = { admin: true };
  load();
  loadAudit(audit);
  loadGuests(guests, () => loadAudit(audit));
}

/** The run-time guest switch (`GET`/`PUT /api/admin/guests`): the server's `guests` setting
 *  is the upper bound, so the box is disabled while guests are off there. */
async function loadGuests(section, onChange) {
  const error = h('span', { class: 'field-error', role: 'alert' });
  let sw;
  try {
    sw = await api('GET', '/api/admin/guests');
  } catch (e) {
    clear(section).append(h('p', { class: 'field-error', role: 'alert' }, e.message || String(e)));
    return;
  }
  const box = h('input', { type: 'checkbox', id: 'admin-guests-on', checked: sw.enabled, disabled: !sw.allowed });
  box.addEventListener('change', async () => {
    error.textContent = '';
    try {
      const now = await api('PUT', '/api/admin/guests', { enabled: box.checked });
      box.checked = now.enabled;
      onChange();
    } catch (e) {
      box.checked = !box.checked;
      error.textContent = e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message || e);
    }
  });
  clear(section).append(
    h('label', { for: 'admin-guests-on' }, box, ' Guests may sign in'),
    sw.allowed ? null : h('span', { class: 'muted' }, ' (off in the server settings)'),
    error);
}

async function loadUsers(q, tbody, errorEl, onChange) {
  errorEl.textContent = '';
  try {
    const page = await api('GET', `/api/admin/users?limit=200${q ? `&q=${encodeURIComponent(q)}` : ''}`);
    clear(tbody).append(...page.users.map((u) => userRow(u, () => loadUsers(q, tbody, errorEl, onChange), onChange)));
  } catch (e) {
    errorEl.textContent = e.message || String(e);
  }
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '—';
}

function userRow(u, reload, onChange) {
  const error = h('span', { class: 'field-error', role: 'alert' });
  const actions = h('td', { class: 'admin-actions' });
  const act = async (path, method = 'POST') => {
    error.textContent = '';
    try {
      await api(method, `/api/admin/users/${encodeURIComponent(u.username)}${path}`, {});
      await reload();
      onChange();
    } catch (e) {
      error.textContent = e instanceof ApiError ? `${e.message} (${e.code})` : String(e.message || e);
    }
  };
  // A destructive step: the button turns into "Sure? Yes / Cancel".
  const confirmed = (label, run) => h('button', {
    type: 'button',
    class: 'danger',
    onclick: () => {
      const keep = [...actions.childNodes];
      clear(actions).append(
        h('span', {}, `${label} ${u.username}? `),
        h('button', { type: 'button', class: 'danger', onclick: run }, `Yes, ${label.toLowerCase()}`),
        h('button', { type: 'button', class: 'ghost', onclick: () => clear(actions).append(...keep) }, 'Cancel'),
        error);
    },
  }, label);
  actions.append(
    u.is_staff
      ? h('button', { type: 'button', onclick: () => act('/demote') }, 'Demote')
      : h('button', { type: 'button', onclick: () => act('/promote') }, 'Promote'),
    u.is_active
      ? confirmed('Deactivate', () => act('/deactivate'))
      : h('button', { type: 'button', onclick: () => act('/reactivate') }, 'Reactivate'),
    h('button', { type: 'button', onclick: () => askPassword() }, 'Reset password'),
    confirmed('Delete', () => act('', 'DELETE')),
    error);
  // A new password, typed in place of the actions; the user's sockets close (signed out).
  function askPassword() {
    const keep = [...actions.childNodes];
    const input = h('input', {
      type: 'password', minlength: 8, autocomplete: 'new-password', 'aria-label': `New password for ${u.username}`,
    });
    const form = h('form', {
      class: 'admin-password',
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        try {
          await api('POST', `/api/admin/users/${encodeURIComponent(u.username)}/password`, { password: input.value });
          clear(actions).append(...keep);
          error.textContent = '';
          actions.append(h('span', { class: 'admin-done' }, 'Password reset'));
          onChange();
        } catch (err) {
          error.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : String(err.message || err);
        }
      },
    }, input,
    h('button', { type: 'submit', class: 'danger' }, 'Set password'),
    h('button', { type: 'button', class: 'ghost', onclick: () => clear(actions).append(...keep) }, 'Cancel'),
    error);
    clear(actions).append(form);
    input.focus();
  }
  return h('tr', { dataset: { user: u.username } },
    h('td', {}, u.username),
    h('td', {}, u.email ?? '—'),
    h('td', { class: 'admin-staff' }, u.is_staff ? 'yes' : 'no'),
    h('td', { class: 'admin-active' }, u.is_active ? 'yes' : 'no'),
    h('td', {}, when(u.last_login)),
    actions);
}

async function loadAudit(list) {
  try {
    const entries = await api('GET', '/api/admin/audit?limit=50');
    clear(list).append(...entries.map((e) => h('li', { dataset: { action: e.action } },
      `${when(e.at)} — ${e.actor} ${e.action.replaceAll('_', ' ')}`,
      [e.user, e.room, e.detail].filter(Boolean).map((t) => ` ${t}`).join(''),
      e.reason ? ` (“${e.reason}”)` : '')));
  } catch (e) {
    clear(list).append(h('li', { class: 'field-error' }, e.message || String(e)));
  }
}
