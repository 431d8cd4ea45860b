// "Continue as guest": with the server's `guests` setting on, the login screen offers it; a
// visitor picks a name, joins a public room someone else made, reads its history and posts,
// and both pages mark the guest's message. With guests off (the other test files' servers)
// the form never shows; here a second server without the setting checks that.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `guests-${stamp}`;

let server;
let browser;

before(async () => {
  server = new TestServer({ PARLEY_GUESTS: 'true' });
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
});

async function api(path, body, token) {
  const r = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

test('a visitor continues as a guest, reads and posts in a public room, marked as a guest', async () => {
  // An account makes the room and says something first (through the API).
  const owner = `owner${stamp}`;
  assert.equal((await api('/api/auth/register', { username: owner, password: PASSWORD })).status, 201);
  const { body: { access } } = await api('/api/auth/login', { username: owner, password: PASSWORD });
  assert.equal((await api('/api/rooms', { name: ROOM }, access)).status, 201);

  const owner_page = await openUser(browser, server);
  await owner_page.page.getByLabel('Username').fill(owner);
  await owner_page.page.getByLabel('Password').fill(PASSWORD);
  await owner_page.page.locator('form.auth-form button[type=submit]').click();
  await owner_page.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await owner_page.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await owner_page.page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();
  const ownerBox = owner_page.page.getByRole('textbox', { name: 'Message', exact: true });
  await ownerBox.fill('welcome, whoever you are');
  await ownerBox.press('Enter');

  const visitor = await openUser(browser, server);
  const { page } = visitor;
  const continueAsGuest = page.getByRole('button', { name: 'Continue as guest' });
  await continueAsGuest.waitFor();
  await page.getByLabel('Your name').fill('Wanderer');
  await continueAsGuest.click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await page.getByLabel('Join a room by name').fill(ROOM);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();
  // The history is there, unmarked (an account wrote it).
  const welcome = page.locator('#messages li.msg', { hasText: 'welcome, whoever you are' });
  await welcome.waitFor();
  assert.equal(await welcome.locator('.guest-mark').count(), 0);

  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill('hello from a guest');
  await box.press('Enter');
  for (const p of [page, owner_page.page]) {
    const mine = p.locator('#messages li.msg:not(.pending)', { hasText: 'hello from a guest' });
    await mine.waitFor();
    assert.equal(await mine.locator('.guest-mark').textContent(), 'guest');
    assert.equal(await mine.locator('.sender').textContent(), 'wanderer');
  }
  await screenshot(page, 'guest-posted');

  // The online list names the guest by the chosen name with the guest mark, and offers no
  // call to or from a guest (guests may not signal); a guest gets no direct-chat form.
  const guestOnline = owner_page.page.locator('.online-list .online-user', { has: owner_page.page.locator('.guest-mark') });
  await guestOnline.waitFor();
  assert.equal(await guestOnline.locator('.online-name').textContent(), 'wanderer');
  assert.equal(await guestOnline.getByRole('button', { name: /call/i }).count(), 0);
  const ownerOnline = page.locator(`.online-list .online-user[data-user="${owner}"]`);
  await ownerOnline.waitFor();
  assert.equal(await ownerOnline.getByRole('button', { name: /call/i }).count(), 0);
  assert.equal(await page.getByLabel('Direct chat with').count(), 0);

  // Guests may not make rooms: the server's refusal reaches the page, in plain words beside
  // the button (errors.js), not as the server's text.
  if (!(await page.locator('details.new-room').evaluate((d) => d.open))) await page.locator('details.new-room summary').click();
  await page.locator('#new-room-name').fill(`mine-${stamp}`);
  await page.getByRole('button', { name: 'Create room' }).click();
  await page.locator('form[aria-label="Create a room"] .control-error', { hasText: 'Guests cannot create rooms. Sign up for an account to make one.' }).waitFor();

  for (const u of [visitor, owner_page]) assert.deepEqual(u.errors, [], 'no page errors');
  await visitor.context.close();
  await owner_page.context.close();
});

test('with guests off the login screen does not offer it', async () => {
  const off = new TestServer();
  await off.start();
  try {
    const user = await openUser(browser, off);
    await user.page.getByLabel('Username').waitFor();
    // The page asked, heard "no", and keeps the form hidden.
    await user.page.locator('form.guest-form[data-guests="off"]').waitFor({ state: 'attached' });
    assert.equal(await user.page.locator('form.guest-form').isHidden(), true);
    assert.equal(await user.page.getByRole('button', { name: 'Continue as guest' }).count(), 0);
    assert.deepEqual(user.errors, [], 'no page errors');
    await user.context.close();
  } finally {
    await off.stop();
  }
});
