// The staff page (#/admin): a staff member finds an account, deactivates it after a second,
// explicit click (the deactivated user's page is logged out: close 4005), sees the change in
// the table and the audit log; a refusal (demoting oneself) shows next to the control; a user
// who is not staff gets no link to the page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const BOSS = `boss${stamp}`;
const BOB = `bob${stamp}`;

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

async function register(name) {
  const r = await fetch(`${server.url}/api/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: name, password: PASSWORD }),
  });
  assert.equal(r.status, 201);
}

async function logIn(user, name) {
  await user.page.getByLabel('Username').fill(name);
  await user.page.getByLabel('Password').fill(PASSWORD);
  await user.page.locator('form.auth-form button[type=submit]').click();
  await user.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
}

test('staff deactivate an account from the admin page; the user is logged out', async () => {
  await register(BOSS);
  await register(BOB);
  // The first staff member comes from the command line, beside the running server.
  const promoted = spawnSync(server.bin, ['user', 'promote', BOSS], { cwd: server.dir, env: server.env() });
  assert.equal(promoted.status, 0, String(promoted.stderr));

  const bob = await openUser(browser, server);
  await logIn(bob, BOB);
  assert.equal(await bob.page.locator('a.admin-link').count(), 0, 'no admin link for a user who is not staff');

  const boss = await openUser(browser, server);
  await logIn(boss, BOSS);
  await boss.page.locator('a.admin-link').click();
  await boss.page.locator('#admin h1', { hasText: 'Administration' }).waitFor();
  await boss.page.getByLabel('Search accounts').fill(BOB);
  await boss.page.getByRole('button', { name: 'Search', exact: true }).click();
  const row = boss.page.locator(`tr[data-user="${BOB}"]`);
  await row.waitFor();
  // The search's answer replaces the first listing (every account), which may still be shown.
  await boss.page.waitForFunction(() => document.querySelectorAll('table.admin-users tbody tr').length === 1);

  // Deactivating asks once more.
  await row.getByRole('button', { name: 'Deactivate', exact: true }).click();
  await row.getByRole('button', { name: 'Yes, deactivate' }).click();
  await boss.page.locator(`tr[data-user="${BOB}"] td.admin-active`, { hasText: 'no' }).waitFor();
  await boss.page.locator('.audit-log li[data-action="deactivate_user"]', { hasText: BOB }).waitFor();
  // Bob's page lost its session.
  await bob.page.getByLabel('Username').waitFor({ timeout: 20_000 });
  await screenshot(boss.page, 'admin-deactivated');

  // A refusal shows next to the control that caused it: staff cannot demote themselves.
  await boss.page.getByLabel('Search accounts').fill(BOSS);
  await boss.page.getByRole('button', { name: 'Search', exact: true }).click();
  const me = boss.page.locator(`tr[data-user="${BOSS}"]`);
  await me.getByRole('button', { name: 'Demote' }).click();
  await me.locator('.field-error', { hasText: 'conflict' }).waitFor();

  for (const u of [boss, bob]) assert.deepEqual(u.errors, [], 'no page errors');
  await boss.context.close();
  await bob.context.close();
});

test('staff reset a password and turn guests off and on from the admin page', async () => {
  const CARL = `carl${stamp}`;
  await register(CARL);
  const boss = await openUser(browser, server);
  await logIn(boss, BOSS);
  await boss.page.locator('a.admin-link').click();
  await boss.page.locator('#admin h1', { hasText: 'Administration' }).waitFor();

  // A password reset: a weak one is refused beside the form; a good one takes.
  await boss.page.getByLabel('Search accounts').fill(CARL);
  await boss.page.getByRole('button', { name: 'Search', exact: true }).click();
  const row = boss.page.locator(`tr[data-user="${CARL}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: 'Reset password' }).click();
  await row.getByLabel(`New password for ${CARL}`).fill(CARL);
  await row.getByRole('button', { name: 'Set password' }).click();
  await row.locator('.field-error', { hasText: 'weak_password' }).waitFor();
  await row.getByLabel(`New password for ${CARL}`).fill('a brand new password');
  await row.getByRole('button', { name: 'Set password' }).click();
  await row.locator('.admin-done', { hasText: 'Password reset' }).waitFor();
  const old = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: CARL, password: PASSWORD }),
  });
  assert.equal(old.status, 401);
  const fresh = await fetch(`${server.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: CARL, password: 'a brand new password' }),
  });
  assert.equal(fresh.status, 200);
  await boss.page.locator('.audit-log li[data-action="reset_password"]', { hasText: CARL }).waitFor();

  // The guest switch: this server's settings keep guests off, so the box is off and disabled.
  const box = boss.page.getByLabel('Guests may sign in');
  await box.waitFor();
  assert.equal(await box.isChecked(), false);
  assert.equal(await box.isDisabled(), true);
  await boss.page.locator('#admin-guests', { hasText: 'off in the server settings' }).waitFor();

  assert.deepEqual(boss.errors, [], 'no page errors');
  await boss.context.close();
});

test('with guests allowed, staff turn them off and on at run time', async () => {
  const guestServer = new TestServer({ PARLEY_GUESTS: 'true' });
  await guestServer.start();
  try {
    const name = `gboss${stamp}`;
    const r = await fetch(`${guestServer.url}/api/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: name, password: PASSWORD }),
    });
    assert.equal(r.status, 201);
    const promoted = spawnSync(guestServer.bin, ['user', 'promote', name], { cwd: guestServer.dir, env: guestServer.env() });
    assert.equal(promoted.status, 0, String(promoted.stderr));
    const boss = await openUser(browser, guestServer);
    await logIn(boss, name);
    await boss.page.locator('a.admin-link').click();
    const box = boss.page.getByLabel('Guests may sign in');
    await box.waitFor();
    assert.equal(await box.isChecked(), true);
    const guestLogin = () => fetch(`${guestServer.url}/api/auth/guest`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'visitor' }),
    }).then((res) => res.status);
    assert.equal(await guestLogin(), 200);
    await box.uncheck();
    await boss.page.locator('.audit-log li[data-action="set_guests"]', { hasText: 'off' }).waitFor();
    assert.notEqual(await guestLogin(), 200);
    await box.check();
    await boss.page.locator('.audit-log li[data-action="set_guests"]', { hasText: 'on' }).waitFor();
    assert.equal(await guestLogin(), 200);
    assert.deepEqual(boss.errors, [], 'no page errors');
    await boss.context.close();
  } finally {
    await guestServer.stop().catch(() => {});
  }
});
