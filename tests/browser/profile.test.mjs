// The profile page (#/profile, issue 15): a user sets a display name (shown on their
// messages, the user name in the tooltip), sees a refusal next to the field that caused it,
// changes their password (a wrong current password refused beside that field), and deletes
// their account after a second, explicit click, which logs the page out.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ANN = `ann${stamp}`;

let server;
let browser;

before(async () => {
  server = new TestServer();
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
});

test('profile: display name, password change, deleting the account', async () => {
  const r = await fetch(`${server.url}/api/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: ANN, password: PASSWORD }),
  });
  assert.equal(r.status, 201);
  const ann = await openUser(browser, server);
  const page = ann.page;
  await page.getByLabel('Username').fill(ANN);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  await page.locator('a.profile-link').click();
  await page.locator('#profile h1', { hasText: 'Profile' }).waitFor();
  // A refusal shows beside the field.
  await page.locator('#profile-display-name').fill('Bell\u0007');
  await page.locator('#profile-form button[type=submit]').click();
  await page.locator('#profile-display-error').filter({ hasText: /display name/i }).waitFor();
  await page.locator('#profile-display-name').fill('Ann Example');
  await page.locator('#profile-form button[type=submit]').click();
  await page.locator('#profile-saved', { hasText: 'Saved.' }).waitFor();
  const me = await page.evaluate(async () => JSON.parse(localStorage.getItem('parley.auth')).user.display_name);
  assert.equal(me, 'Ann Example');

  // Wrong current password: the error is beside that field.
  await page.locator('#profile-current-password').fill('not my password');
  await page.locator('#profile-new-password').fill('a brand new secret');
  await page.locator('#profile-password-form button[type=submit]').click();
  await page.locator('#profile-current-error').filter({ hasText: /./ }).waitFor();
  await page.locator('#profile-current-password').fill(PASSWORD);
  await page.locator('#profile-password-form button[type=submit]').click();
  await page.locator('#profile-password-saved', { hasText: 'Password changed' }).waitFor();
  const login = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: ANN, password: 'a brand new secret' }),
  });
  assert.equal(login.status, 200);

  // Delete: a second, explicit click; a wrong password refused beside the control.
  await page.locator('#profile-delete-password').fill('wrong');
  await page.locator('#profile-delete').click();
  await page.locator('#profile-delete-confirm').click();
  await page.locator('#profile-delete-error').filter({ hasText: /./ }).waitFor();
  await page.locator('#profile-delete-password').fill('a brand new secret');
  await page.locator('#profile-delete-confirm').click();
  await page.locator('form.auth-form').waitFor({ timeout: 20_000 });
  const gone = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: ANN, password: 'a brand new secret' }),
  });
  assert.equal(gone.status, 401);
});
