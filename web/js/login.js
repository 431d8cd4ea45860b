// The log-in / sign-up screen.

import { clear, h, root } from './dom.js';
import { hooks } from './hooks.js';
import { session } from './auth.js';
import { ApiError } from './api.js';
import { renderOidcButtons } from './oidc.js';

export function renderAuth(notice) {
  document.title = 'Parley — log in';
  const container = clear(root());
  let mode = 'login';
  const error = h('p', { class: 'form-error', role: 'alert' });
  const username = h('input', {
    id: 'auth-username', name: 'username', autocomplete: 'username', required: true,
    minlength: 3, maxlength: 32, pattern: '[A-Za-z][A-Za-z0-9_.\\-]{2,31}',
    title: '3–32 letters, digits, _ - or . starting with a letter',
  });
  const password = h('input', {
    id: 'auth-password', name: 'password', type: 'password', autocomplete: 'current-password',
    required: true, minlength: 8, maxlength: 72,
  });
  const email = h('input', { id: 'auth-email', name: 'email', type: 'email', autocomplete: 'email' });
  const emailRow = h('div', { class: 'field', hidden: true }, h('label', { for: 'auth-email' }, 'Email (optional)'), email);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const heading = h('h1', { id: 'auth-heading' }, 'Log in to Parley');
  const loginTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'true', id: 'tab-login' }, 'Log in');
  const signupTab = h('button', { type: 'button', role: 'tab', 'aria-selected': 'false', id: 'tab-signup' }, 'Sign up');
  const setMode = (m) => {
    mode = m;
    loginTab.setAttribute('aria-selected', String(m === 'login'));
    signupTab.setAttribute('aria-selected', String(m === 'signup'));
    heading.textContent = m === 'login' ? 'Log in to Parley' : 'Create a Parley account';
    submit.textContent = m === 'login' ? 'Log in' : 'Sign up';
    emailRow.hidden = m === 'login';
    password.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    error.textContent = '';
  };
  loginTab.addEventListener('click', () => setMode('login'));
  signupTab.addEventListener('click', () => setMode('signup'));

  const form = h(
    'form',
    {
      class: 'auth-form',
      'aria-labelledby': 'auth-heading',
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        const creds = { username: username.value.trim(), password: password.value };
        try {
          if (mode === 'signup') await session.register(creds.username, creds.password, email.value.trim() || undefined);
          await session.login(creds.username, creds.password);
          hooks.startApp();
        } catch (err) {
          error.textContent = describeAuthError(err, mode);
        } finally {
          submit.disabled = false;
        }
      },
    },
    heading,
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Log in or sign up' }, loginTab, signupTab),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('div', { class: 'field' }, h('label', { for: 'auth-username' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'auth-password' }, 'Password'), password),
    emailRow,
    error,
    submit,
  );
  const guestForm = renderGuest();
  container.append(h('main', { class: 'auth' }, h('div', { class: 'brand big', 'aria-hidden': 'true' }, 'Parley'), form, renderOidcButtons(), guestForm));
  username.focus();
}

/** "Continue as guest": shown once the server says it allows guests (`GET /api/auth/guest`). */
function renderGuest() {
  const error = h('p', { class: 'form-error', role: 'alert' });
  const name = h('input', {
    id: 'guest-name', name: 'guest-name', autocomplete: 'nickname', required: true,
    minlength: 3, maxlength: 20, pattern: '[A-Za-z][A-Za-z0-9_.\\-]{2,19}', value: 'Anonymous',
    title: '3–20 letters, digits, _ - or . starting with a letter',
  });
  const submit = h('button', { type: 'submit' }, 'Continue as guest');
  const form = h(
    'form',
    {
      class: 'guest-form',
      hidden: true,
      'aria-label': 'Continue as guest',
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          await session.guest(name.value.trim());
          hooks.startApp();
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : `Could not reach the server (${err.message}).`;
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('p', {}, 'No account? Chat in public rooms as a guest.'),
    h('div', { class: 'field' }, h('label', { for: 'guest-name' }, 'Your name'), name),
    error,
    submit,
  );
  fetch('/api/auth/guest').then((r) => {
    form.hidden = r.status !== 204;
    form.dataset.guests = r.status === 204 ? 'on' : 'off';
  }, () => {});
  return form;
}

function describeAuthError(err, mode) {
  if (!(err instanceof ApiError)) return `Could not reach the server (${err.message}).`;
  switch (err.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.';
    case 'username_taken':
      return 'That username is taken.';
    case 'weak_password':
      return `Password ${err.message.replace(/^.*?password:?\s*/i, '')}`.trim();
    default:
      return err.message || (mode === 'login' ? 'Login failed.' : 'Sign-up failed.');
  }
}
