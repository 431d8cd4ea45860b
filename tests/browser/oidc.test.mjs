// "Sign in with …" (OpenID Connect, issue 15) in Chromium through the button: a small real
// OpenID Connect provider runs in this test (node:http, an RSA key generated at start, RS256
// ID tokens; discovery, keys, an authorization endpoint that signs in at once and a token
// endpoint that checks the client secret, PKCE and the redirect URI and hands each code out
// once); parley-server runs as its own process configured for it with settings alone
// (`PARLEY_OIDC_PROVIDERS`, `PARLEY_OIDC_TEST_CLIENT_SECRET`). The user clicks the button, the
// browser goes to the provider and back, and the app starts signed in; no access or refresh
// token ever appears in a URL the browser asked for. A cancelled sign-in comes back as a
// message on the login screen.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const CLIENT_ID = 'parley-browser';
const CLIENT_SECRET = 'browser-client-secret';
const KID = 'browser-key';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** The provider: `start()` listens on a free loopback port. */
class Issuer {
  constructor() {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.jwk = { ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };
    this.codes = new Map();
    this.spent = new Set();
    this.cancel = false;
    this.user = { sub: 'browser-sub-1', email: 'brenda@example.com', email_verified: true, preferred_username: 'brenda' };
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  idToken(claims) {
    const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: KID }));
    const body = b64url(JSON.stringify(claims));
    const signature = sign('sha256', Buffer.from(`${head}.${body}`), this.privateKey);
    return `${head}.${body}.${b64url(signature)}`;
  }

  async start() {
    this.server = createServer((req, res) => this.handle(req, res).catch((e) => {
      res.writeHead(500).end(String(e));
    }));
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = this.server.address().port;
  }

  stop() {
    return new Promise((r) => this.server.close(r));
  }

  json(res, status, body) {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' }).end(JSON.stringify(body));
  }

  async handle(req, res) {
    const url = new URL(req.url, this.url);
    if (url.pathname === '/.well-known/openid-configuration') {
      return this.json(res, 200, {
        issuer: this.url,
        authorization_endpoint: `${this.url}/authorize`,
        token_endpoint: `${this.url}/token`,
        jwks_uri: `${this.url}/jwks`,
      });
    }
    if (url.pathname === '/jwks') return this.json(res, 200, { keys: [this.jwk] });
    if (url.pathname === '/authorize') {
      const q = url.searchParams;
      const redirect = new URL(q.get('redirect_uri'));
      if (this.cancel) {
        redirect.searchParams.set('error', 'access_denied');
      } else {
        if (q.get('client_id') !== CLIENT_ID || q.get('code_challenge_method') !== 'S256' || q.get('response_type') !== 'code') {
          return res.writeHead(400).end('bad authorization request');
        }
        const code = randomUUID();
        this.codes.set(code, { redirect: q.get('redirect_uri'), nonce: q.get('nonce'), challenge: q.get('code_challenge') });
        redirect.searchParams.set('code', code);
      }
      redirect.searchParams.set('state', q.get('state'));
      return res.writeHead(302, { location: redirect.toString() }).end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      if (form.get('client_id') !== CLIENT_ID || form.get('client_secret') !== CLIENT_SECRET) {
        return this.json(res, 401, { error: 'invalid_client' });
      }
      const code = form.get('code');
      const pending = this.codes.get(code);
      if (!pending || this.spent.has(code)) return this.json(res, 400, { error: 'invalid_grant' });
      this.spent.add(code);
      const challenge = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
      if (challenge !== pending.challenge || form.get('redirect_uri') !== pending.redirect) {
        return this.json(res, 400, { error: 'invalid_grant' });
      }
      const now = Math.floor(Date.now() / 1000);
      const id_token = this.idToken({
        iss: this.url, aud: CLIENT_ID, iat: now, exp: now + 600, nonce: pending.nonce, ...this.user,
      });
      return this.json(res, 200, { access_token: 'unused', token_type: 'Bearer', id_token });
    }
    res.writeHead(404).end();
  }
}

let issuer;
let server;
let browser;

before(async () => {
  issuer = new Issuer();
  await issuer.start();
  server = new TestServer({
    PARLEY_OIDC_PROVIDERS: `{test={issuer="${issuer.url}",client_id="${CLIENT_ID}",display_name="Test SSO"}}`,
    PARLEY_OIDC_TEST_CLIENT_SECRET: CLIENT_SECRET,
  });
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
  if (issuer) await issuer.stop().catch(() => {});
});

test('the button signs in through the provider and no token is ever in a URL', async () => {
  const user = await openUser(browser, server);
  const { page } = user;
  const asked = [];
  page.on('request', (r) => asked.push(r.url()));
  const button = page.getByRole('link', { name: 'Sign in with Test SSO' });
  await button.waitFor();
  await screenshot(page, 'oidc-button');
  await button.click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  assert.match(await page.locator('.whoami').textContent(), /brenda/);
  // The one-time code left the address bar at once.
  assert.equal(new URL(page.url()).hash, '');
  // The round trip went through the provider and back through the callback.
  assert.ok(asked.some((u) => u.startsWith(`${issuer.url}/authorize?`)), asked.join('\n'));
  assert.ok(asked.some((u) => u.startsWith(`${server.url}/api/auth/oidc/test/callback?`)), asked.join('\n'));
  // The tokens the page holds appear in no URL it asked for.
  const stored = JSON.parse(await page.evaluate(() => localStorage.getItem('parley.auth')));
  assert.ok(stored.access && stored.refresh);
  for (const u of asked) {
    assert.ok(!u.includes(stored.access) && !u.includes(stored.refresh), `a token in ${u}`);
  }
  // The same account over REST.
  const me = await fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${stored.access}` } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).email, 'brenda@example.com');
  await screenshot(page, 'oidc-signed-in');
  assert.deepEqual(user.errors, []);
  await user.context.close();
});

test('a sign-in cancelled at the provider comes back to the login screen with a message', async () => {
  issuer.cancel = true;
  try {
    const user = await openUser(browser, server);
    const { page } = user;
    await page.getByRole('link', { name: 'Sign in with Test SSO' }).click();
    await page.getByRole('status').filter({ hasText: 'The sign-in was cancelled.' }).waitFor();
    assert.equal(new URL(page.url()).hash, '');
    assert.equal(await page.evaluate(() => localStorage.getItem('parley.auth')), null);
    assert.deepEqual(user.errors, []);
    await user.context.close();
  } finally {
    issuer.cancel = false;
  }
});
