// "Sign in with …" (OpenID Connect): one link per provider the server lists
// (`GET /api/auth/oidc`), and the return from the provider. The server's callback sends the
// browser to `/#oidc_provider=…&oidc_code=…` (a one-time code, in the fragment, which is never
// sent to a server) or `/#oidc_error=…`; the page trades the code for tokens by POST.

import { h } from './dom.js';
import { setAuth } from './auth.js';

/** What the failed sign-in's error code means to the user. */
const ERRORS = {
  provider_unavailable: 'The sign-in provider cannot be reached right now. Try again later.',
  unauthorized: 'The sign-in was cancelled.',
  token_expired: 'The sign-in took too long. Please try again.',
  token_revoked: 'That sign-in was already used. Please sign in again.',
};

/** The links, filled in once the server lists its providers (hidden while there are none). */
export function renderOidcButtons() {
  const list = h('div', { class: 'oidc-providers', hidden: true, 'aria-label': 'Sign in with another account' });
  fetch('/api/auth/oidc', { headers: { accept: 'application/json' } })
    .then((r) => (r.ok ? r.json() : { providers: [] }))
    .then(({ providers }) => {
      for (const p of providers ?? []) {
        list.append(
          h('a', { class: 'oidc-button', href: `/api/auth/oidc/${encodeURIComponent(p.name)}/start`, 'data-provider': p.name },
            `Sign in with ${p.display_name}`),
        );
      }
      list.hidden = !providers?.length;
    }, () => {});
  return list;
}

/** The return from a provider, if this page load is one: the fragment is read and removed
 *  at once (so the one-time code does not linger in the address bar or history), the code
 *  traded for tokens. Resolves to `null` (not a return), `{ ok: true }` (signed in: the tokens
 *  are set) or `{ error: message }`. */
export async function completeOidcReturn() {
  if (!location.hash.startsWith('#oidc_')) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const error = params.get('oidc_error');
  if (error) return { error: ERRORS[error] ?? `The sign-in failed (${error}).` };
  const provider = params.get('oidc_provider');
  const code = params.get('oidc_code');
  if (!provider || !code) return { error: 'The sign-in failed.' };
  try {
    const r = await fetch(`/api/auth/oidc/${encodeURIComponent(provider)}/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ code }),
    });
    const data = await r.json().catch(() => null);
    if (!r.ok) return { error: ERRORS[data?.error?.code] ?? data?.error?.message ?? 'The sign-in failed.' };
    setAuth({ access: data.access, refresh: data.refresh, user: data.user });
    return { ok: true };
  } catch (e) {
    return { error: `Could not reach the server (${e.message}).` };
  }
}
