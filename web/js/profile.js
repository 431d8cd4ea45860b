// The profile page (#/profile, issue 15): one's display name and e-mail, a password change,
// the linked sign-ins, and deleting the account (with a second, explicit step). Every rule
// is the server's (`/api/me`, docs/api.md "Profiles and accounts"); this page asks, shows
// the answer, and puts a refusal next to the control that caused it.

import { clear, h } from './dom.js';
import { api } from './api.js';
import { setAuth } from './auth.js';
import { hooks } from './hooks.js';
import { screen, state } from './state.js';

/** The name shown for a message's author: the display name when it has one (the user name
 *  stays available, e.g. as a tooltip). */
export function authorName(m) {
  return m.sender_display_name || null;
}

function errorLine(id) {
  return h('p', { class: 'field-error', id, role: 'alert' });
}

function fail(el, e) {
  el.textContent = e?.message || String(e);
}

/** Renders the profile page into the main pane. */
export async function showProfile() {
  if (!screen.shell) return;
  state.active = null;
  document.body.classList.remove('in-room');
  const pane = clear(screen.shell.pane);
  let me;
  try {
    me = await api('GET', '/api/me');
  } catch (e) {
    pane.append(h('div', { class: 'empty' }, h('h1', {}, 'Profile'), h('p', { role: 'alert' }, e.message || String(e))));
    return;
  }

  const display = h('input', { id: 'profile-display-name', maxlength: '64', value: me.display_name ?? '', 'aria-describedby': 'profile-display-error' });
  const email = h('input', { id: 'profile-email', type: 'email', value: me.email ?? '', 'aria-describedby': 'profile-email-error' });
  const displayError = errorLine('profile-display-error');
  const emailError = errorLine('profile-email-error');
  const saved = h('p', { class: 'saved', id: 'profile-saved', role: 'status' });
  const profileForm = h('form', {
    id: 'profile-form',
    onsubmit: async (e) => {
      e.preventDefault();
      displayError.textContent = emailError.textContent = saved.textContent = '';
      try {
        const user = await api('PATCH', '/api/me', { display_name: display.value, email: email.value });
        if (state.auth) setAuth({ ...state.auth, user: { ...state.auth.user, ...user } });
        saved.textContent = 'Saved.';
      } catch (err) {
        fail(err.code === 'invalid_display_name' ? displayError : emailError, err);
      }
    },
  },
  h('label', { for: 'profile-display-name' }, 'Display name'), display, displayError,
  h('label', { for: 'profile-email' }, 'E-mail'), email, emailError,
  h('button', { type: 'submit' }, 'Save'), saved);

  const current = h('input', { id: 'profile-current-password', type: 'password', autocomplete: 'current-password' });
  const next = h('input', { id: 'profile-new-password', type: 'password', autocomplete: 'new-password' });
  const currentError = errorLine('profile-current-error');
  const nextError = errorLine('profile-new-error');
  const changed = h('p', { class: 'saved', id: 'profile-password-saved', role: 'status' });
  const passwordForm = h('form', {
    id: 'profile-password-form',
    onsubmit: async (e) => {
      e.preventDefault();
      currentError.textContent = nextError.textContent = changed.textContent = '';
      try {
        const fresh = await api('POST', '/api/me/password', { current_password: current.value, new_password: next.value });
        // The answer's pair replaces ours (same login: the socket renews with it).
        setAuth(fresh);
        current.value = next.value = '';
        changed.textContent = 'Password changed. Your other sign-ins were signed out.';
      } catch (err) {
        fail(err.code === 'weak_password' ? nextError : currentError, err);
      }
    },
  },
  h('label', { for: 'profile-current-password' }, 'Current password'), current, currentError,
  h('label', { for: 'profile-new-password' }, 'New password'), next, nextError,
  h('button', { type: 'submit' }, 'Change password'), changed);

  const identities = h('ul', { id: 'profile-identities', 'aria-label': 'Linked sign-ins' },
    ...(me.identities ?? []).map((i) => h('li', {}, `${i.issuer} — linked ${new Date(i.linked_at).toLocaleDateString()}`)));
  if (!me.identities?.length) identities.append(h('li', { class: 'muted' }, 'None'));

  const deletePassword = h('input', { id: 'profile-delete-password', type: 'password', autocomplete: 'current-password', placeholder: 'Password (if your account has one)' });
  const deleteError = errorLine('profile-delete-error');
  const confirm = h('button', { type: 'button', id: 'profile-delete-confirm', class: 'danger', hidden: true }, 'Yes, delete my account');
  const start = h('button', { type: 'button', id: 'profile-delete', class: 'danger' }, 'Delete account…');
  start.onclick = () => {
    confirm.hidden = false;
    start.hidden = true;
  };
  confirm.onclick = async () => {
    deleteError.textContent = '';
    try {
      const body = deletePassword.value ? { password: deletePassword.value } : {};
      await api('DELETE', '/api/me', body);
      hooks.logout('Your account was deleted.');
    } catch (err) {
      fail(deleteError, err);
    }
  };

  pane.append(
    h('div', { class: 'profile', id: 'profile' },
      h('h1', {}, 'Profile'),
      h('p', {}, 'User name: ', h('strong', {}, me.username)),
      profileForm,
      h('h2', {}, 'Password'), passwordForm,
      h('h2', {}, 'Linked sign-ins'), identities,
      h('h2', {}, 'Delete account'),
      h('p', {}, 'Your messages stay, shown as a deleted user.'),
      deletePassword, start, confirm, deleteError));
}
