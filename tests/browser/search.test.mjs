// Message search in the web client (issue 17): Bob (a raw socket in Alice's page) posts in a
// public room, one message carrying markup; Alice searches from the sidebar box, sees the
// results newest first with the query word in <mark> and the markup as plain text, and a
// click on a result opens the room.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `srch-${stamp}`;
const ALICE = `alice${stamp}`;
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

test('search box: highlighted results as text, click opens the room', async () => {
  const { page } = await openUser(browser, server);
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(ALICE);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  await page.evaluate(async ({ username, password, room }) => {
    const api = (path, body, token) => fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    await api('/api/auth/register', { username, password });
    const { body: { access } } = await api('/api/auth/login', { username, password });
    await api('/api/rooms', { name: room }, access);
    const ws = new WebSocket(`ws://${location.host}/ws?token=${access}`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    const ask = (frame) => new Promise((ok) => {
      const waiting = (e) => {
        const f = JSON.parse(e.data);
        if (f.ref === frame.ref) { ws.removeEventListener('message', waiting); ok(f); }
      };
      ws.addEventListener('message', waiting);
      ws.send(JSON.stringify(frame));
    });
    await ask({ type: 'join', room, ref: 'j' });
    await ask({ type: 'send', room, body: 'the first Needle here', ref: 's1' });
    await ask({ type: 'send', room, body: 'not this one', ref: 's2' });
    await ask({ type: 'send', room, body: '<b>bold</b> needle <img src=x onerror=alert(1)>', ref: 's3' });
    ws.close();
  }, { username: BOB, password: PASSWORD, room: ROOM });

  const box = page.getByRole('searchbox', { name: 'Search messages' });
  await box.fill('needle');
  await box.press('Enter');
  const results = page.locator('.search-results .search-result');
  await results.nth(1).waitFor({ timeout: 10_000 });
  assert.equal(await results.count(), 2);
  // Newest first; the markup is text, never elements.
  assert.equal(await results.nth(0).locator('.search-snippet').textContent(),
    '<b>bold</b> needle <img src=x onerror=alert(1)>');
  assert.equal(await page.locator('.search-results b, .search-results img').count(), 0);
  assert.deepEqual(await results.nth(0).locator('mark').allTextContents(), ['needle']);
  assert.deepEqual(await results.nth(1).locator('mark').allTextContents(), ['Needle']);
  assert.match(await results.nth(0).textContent(), new RegExp(`#${ROOM}`));
  await screenshot(page, 'search-results');

  // Punctuation only: a plain-words hint, no crash.
  await box.fill('*&:');
  await box.press('Enter');
  await page.locator('.search-status', { hasText: 'Type a word' }).waitFor({ timeout: 10_000 });

  // Clicking a result opens its room.
  await box.fill('needle');
  await box.press('Enter');
  await results.nth(0).waitFor({ timeout: 10_000 });
  await results.nth(0).click();
  await page.waitForFunction((room) => location.hash === `#/room/${room}`, ROOM, { timeout: 10_000 });
});
