// Replies and reactions in the web client (issue 17): Alice (the browser) answers a message
// of Bob's (a raw socket in her page) and her reply quotes it; clicking the quote jumps to
// the original; she reacts from the picker and un-reacts by clicking her chip; Bob's reaction
// arrives live as a chip; what Bob's socket receives is checked too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `feat-${stamp}`;
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

test('reply with a quote that jumps to the original; reactions toggle and arrive live', async () => {
  const alice = await openUser(browser, server);
  const { page } = alice;
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(ALICE);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  // Bob: an account, the room, a socket that records what it receives, and a message.
  const original = await page.evaluate(async ({ username, password, room }) => {
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
    window.__bob = { ws, frames: [] };
    const reply = (ref) => new Promise((ok) => {
      const waiting = (e) => {
        const f = JSON.parse(e.data);
        if (f.ref === ref) {
          ws.removeEventListener('message', waiting);
          ok(f);
        }
      };
      ws.addEventListener('message', waiting);
    });
    ws.addEventListener('message', (e) => window.__bob.frames.push(JSON.parse(e.data)));
    ws.send(JSON.stringify({ type: 'join', room, ref: 'j' }));
    await reply('j');
    ws.send(JSON.stringify({ type: 'send', room, body: 'Shall we meet at noon?', ref: 's' }));
    return reply('s');
  }, { username: BOB, password: PASSWORD, room: ROOM });
  assert.equal(original.type, 'message');

  await page.getByLabel('Join a room by name').fill(ROOM);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();
  const bobsMessage = page.locator(`li.msg[data-id="${original.id}"]`);
  await bobsMessage.waitFor();
  // A message that answers nothing shows no quote (nor any stray text for one).
  assert.equal(await bobsMessage.locator('.reply-quote').count(), 0);
  assert.ok(!(await bobsMessage.textContent()).includes('null'), await bobsMessage.textContent());

  // Reply: the bar names the original, the sent message quotes it.
  await bobsMessage.getByRole('button', { name: 'Reply to message' }).click();
  await page.locator('.reply-bar', { hasText: `Replying to ${BOB}: Shall we meet at noon?` }).waitFor();
  await page.getByLabel('Message', { exact: true }).fill('Noon works');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  const mine = page.locator('li.msg.own:not(.pending)', { hasText: 'Noon works' });
  await mine.waitFor();
  const quote = mine.locator('.reply-quote');
  assert.equal(await quote.textContent(), `${BOB}: Shall we meet at noon?`);
  assert.equal(await page.locator('.reply-bar').isHidden(), true, 'the reply bar closes once sent');
  // Bob's socket got the reply with its preview.
  const got = await page.waitForFunction(
    () => window.__bob.frames.find((f) => f.type === 'message' && f.body === 'Noon works'),
  ).then((h) => h.jsonValue());
  assert.equal(got.reply_to.id, original.id);
  assert.equal(got.reply_to.excerpt, 'Shall we meet at noon?');
  // Clicking the quote jumps to (and flashes) the original.
  await quote.click();
  await page.locator(`li.msg.flash[data-id="${original.id}"]`).waitFor();

  // React from the picker: a pressed chip; Bob hears of it.
  await bobsMessage.getByRole('button', { name: 'Add reaction' }).click();
  await bobsMessage.getByRole('button', { name: 'React with 🎉' }).click();
  const chip = bobsMessage.locator('.reactions .chip', { hasText: '🎉 1' });
  await chip.waitFor();
  assert.equal(await chip.getAttribute('aria-pressed'), 'true');
  await page.waitForFunction(
    (user) => window.__bob.frames.some((f) => f.type === 'reaction' && f.emoji === '🎉' && f.user === user && f.active),
    ALICE,
  );
  await screenshot(page, 'features-reply-and-reaction');
  // Clicking her own chip takes the reaction back.
  await chip.click();
  await bobsMessage.locator('.reactions .chip').waitFor({ state: 'detached' });

  // Bob reacts to Alice's reply: a chip that is not hers appears live.
  await page.evaluate(({ id }) => {
    window.__bob.ws.send(JSON.stringify({ type: 'react', message_id: id, emoji: '👍', ref: 'r' }));
  }, { id: got.id });
  const theirs = mine.locator('.reactions .chip', { hasText: '👍 1' });
  await theirs.waitFor();
  assert.equal(await theirs.getAttribute('aria-pressed'), 'false');
  assert.equal(await theirs.getAttribute('title'), BOB);

  // The room list shows the room's newest message under its name.
  await page.locator(`.room-link[data-room="${ROOM}"] .last-message`, { hasText: `${ALICE}: Noon works` }).waitFor();

  assert.deepEqual(alice.errors, [], 'no page errors');
  await alice.context.close();
});
