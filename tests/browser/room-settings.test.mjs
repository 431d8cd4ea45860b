// The room settings panel for owners (web/js/room-settings.js): roles, mutes, bans and
// read-only through the panel, each confirmed where destructive, errors shown beside the
// control that caused them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `mod-${stamp}`;

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

test('an owner moderates a room from its settings panel', async () => {
  const alice = await openUser(browser, server);
  const page = alice.page;
  const owner = `alice${stamp}`;
  const member = `bob${stamp}`;
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(owner);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  // The room and its second member, through the API from the page.
  const access = await page.evaluate(async ({ owner, member, password, room }) => {
    const call = (method, path, body, token) => fetch(path, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: r.status === 204 ? null : await r.json() }));
    await call('POST', '/api/auth/register', { username: member, password });
    const { body: { access } } = await call('POST', '/api/auth/login', { username: owner, password });
    const made = await call('POST', '/api/rooms', { name: room }, access);
    if (made.status !== 201) throw new Error(`create: ${JSON.stringify(made.body)}`);
    const added = await call('POST', `/api/rooms/${room}/members`, { username: member }, access);
    if (added.status !== 201) throw new Error(`add: ${JSON.stringify(added.body)}`);
    return access;
  }, { owner, member, password: PASSWORD, room: ROOM });
  const roomState = () => page.evaluate(async ({ room, access }) => {
    const r = await fetch(`/api/rooms/${room}`, { headers: { Authorization: `Bearer ${access}` } });
    return r.json();
  }, { room: ROOM, access });

  await page.goto(`${server.url}/#/room/${ROOM}`);
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();
  await page.locator('.room-settings summary').click();
  const row = page.locator(`.settings-member[data-user="${member}"]`);
  await row.waitFor();

  // Roles: made an owner, the member cannot be muted; the refusal shows in his row.
  await row.getByRole('button', { name: 'Make owner' }).click();
  await row.getByRole('button', { name: 'Make member' }).waitFor();
  await row.getByRole('button', { name: 'Mute' }).click();
  await row.locator('.field-error', { hasText: 'owner' }).waitFor();
  await row.getByRole('button', { name: 'Make member' }).click();
  await row.getByRole('button', { name: 'Make owner' }).waitFor();

  // A mute until lifted, listed, then lifted.
  await row.getByLabel(`Mute ${member} for`).selectOption('');
  await row.getByRole('button', { name: 'Mute' }).click();
  const muted = page.locator(`.settings-mute[data-user="${member}"]`);
  await muted.waitFor();
  assert.match(await muted.textContent(), /until unmuted/);
  await muted.getByRole('button', { name: 'Unmute' }).click();
  await muted.waitFor({ state: 'detached' });

  // Read-only, on and off.
  const readOnly = page.getByLabel('Read-only: only owners and staff may post');
  await readOnly.check();
  await page.waitForFunction(() => document.querySelector('.settings-body input[type=checkbox]')?.checked === true);
  assert.equal((await roomState()).read_only, true);

  // A ban asks to be confirmed: the first click only arms the button.
  await row.getByRole('button', { name: 'Ban' }).click();
  assert.equal(await page.locator(`.settings-ban[data-user="${member}"]`).count(), 0);
  await row.getByRole('button', { name: `Confirm ban of ${member}` }).click();
  const banned = page.locator(`.settings-ban[data-user="${member}"]`);
  await banned.waitFor();
  await row.waitFor({ state: 'detached' });
  assert.ok(!(await roomState()).members.some((m) => m.username === member));
  await screenshot(page, 'room-settings');

  await banned.getByRole('button', { name: 'Unban' }).click();
  await banned.waitFor({ state: 'detached' });
  await page.getByText('Nobody is banned.').waitFor();

  // Banning an unknown name shows the error beside the form.
  await page.getByLabel('Username to ban').fill('nobody-here');
  await page.getByRole('button', { name: 'Ban user' }).click();
  await page.locator('.settings-inline .field-error').filter({ hasText: /./ }).waitFor();

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(alice.dialogs, []);
  await alice.context.close();
});

test('an owner renames, re-topics and hides a room, and removes a member\'s message', async () => {
  const alice = await openUser(browser, server);
  const page = alice.page;
  const owner = `carl${stamp}`;
  const member = `dana${stamp}`;
  const room = `gen-${stamp}`;
  const renamed = `gen2-${stamp}`;
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(owner);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  // The room, and a message of the member's posted over her own socket.
  const access = await page.evaluate(async ({ owner, member, password, room }) => {
    const call = (method, path, body, token) => fetch(path, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: r.status === 204 ? null : await r.json() }));
    await call('POST', '/api/auth/register', { username: member, password });
    const { body: { access } } = await call('POST', '/api/auth/login', { username: owner, password });
    const made = await call('POST', '/api/rooms', { name: room }, access);
    if (made.status !== 201) throw new Error(`create: ${JSON.stringify(made.body)}`);
    const { body: { access: hers } } = await call('POST', '/api/auth/login', { username: member, password });
    const ws = new WebSocket(`${location.origin.replace('http', 'ws')}/ws?token=${encodeURIComponent(hers)}`);
    await new Promise((resolve, reject) => {
      ws.onerror = reject;
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'joined') ws.send(JSON.stringify({ type: 'send', room, body: 'spam spam spam', ref: 's' }));
        if (f.type === 'message') resolve();
        if (f.type === 'error') reject(new Error(e.data));
      };
      ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room, ref: 'j' }));
    });
    ws.close();
    return access;
  }, { owner, member, password: PASSWORD, room });
  const roomState = (name) => page.evaluate(async ({ name, access }) => {
    const r = await fetch(`/api/rooms/${name}`, { headers: { Authorization: `Bearer ${access}` } });
    return r.json();
  }, { name, access });

  await page.goto(`${server.url}/#/room/${room}`);
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await page.locator('#room-title', { hasText: `#${room}` }).waitFor();

  // The member's message has a moderator's "Remove", which asks once more.
  const msg = page.locator(`.msg[data-sender="${member}"]`).first();
  await msg.waitFor();
  await msg.getByRole('button', { name: 'Remove message (moderator)' }).click();
  assert.equal(await page.locator('.msg.deleted').count(), 0, 'the first click only arms it');
  await msg.getByRole('button', { name: 'Confirm remove message' }).click();
  await page.locator(`.msg.deleted[data-sender="${member}"]`).waitFor();

  // Topic and visibility, saved together.
  await page.locator('.room-settings summary').click();
  await page.locator(`#room-topic-${room}`).fill('Announcements only');
  await page.locator(`#room-kind-${room}`).selectOption('private');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForFunction(async ({ name, access }) => {
    const r = await fetch(`/api/rooms/${name}`, { headers: { Authorization: `Bearer ${access}` } });
    return (await r.json()).kind === 'private';
  }, { name: room, access });
  const hidden = await roomState(room);
  assert.equal(hidden.topic, 'Announcements only');
  // A bad name: the error shows beside the form, nothing changes.
  await page.locator(`#room-name-${room}`).fill('Not a room name!');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.settings-general .field-error').filter({ hasText: /./ }).waitFor();
  assert.equal((await roomState(room)).name, room);
  // A rename moves the page to the new name.
  await page.locator(`#room-name-${room}`).fill(renamed);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#room-title', { hasText: `#${renamed}` }).waitFor({ timeout: 20_000 });
  assert.equal((await roomState(renamed)).kind, 'private');
  await screenshot(page, 'room-settings-general');

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(alice.dialogs, []);
  await alice.context.close();
});
