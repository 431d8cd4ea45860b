// Mentions and notifications in the web client (issue 17): a message that mentions Alice is
// highlighted; a room she is not looking at gets a mention badge in the sidebar; the
// notification permission is asked only from the button (never on load); with the tab hidden
// a mention raises a browser notification, except from a room muted on this browser (kept
// across a reload). Headless Chromium cannot prompt (it denies every request), so the page's
// Notification API is a recording stand-in (see `fakeNotifications`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `ment-${stamp}`;
const OTHER = `ment2-${stamp}`;
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

/** Bob (a raw socket in Alice's page) sends `body` to `room`; resolves to the stored message. */
function bobSays(page, room, body) {
  return page.evaluate(({ room, body }) => window.__bob.say(room, body), { room, body });
}

/** Headless Chromium answers every permission request with "denied" and never shows a
 *  prompt, so the page gets a stand-in Notification API before its scripts run: permission
 *  "default" until `requestPermission` (counted) grants it; each notification is recorded. */
function fakeNotifications() {
  window.__notes = [];
  window.__asked = 0;
  let permission = 'default';
  window.Notification = class {
    constructor(title, options) {
      window.__notes.push({ title, body: options?.body ?? '' });
    }
    close() {}
    static get permission() {
      return permission;
    }
    static async requestPermission() {
      window.__asked += 1;
      permission = 'granted';
      return permission;
    }
  };
}

async function joinByName(page, room) {
  await page.getByLabel('Join a room by name').fill(room);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#room-title', { hasText: `#${room}` }).waitFor();
}

test('mentions are highlighted, badged, and notified only while hidden and not muted', async () => {
  const alice = await openUser(browser, server);
  const { page, context } = alice;
  await context.addInitScript(fakeNotifications);
  await page.reload();
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(ALICE);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  // Nothing asked on load.
  assert.equal(await page.evaluate(() => window.__asked), 0);

  await page.evaluate(async ({ username, password, rooms }) => {
    const api = (path, body, token) => fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    await api('/api/auth/register', { username, password });
    const { body: { access } } = await api('/api/auth/login', { username, password });
    for (const room of rooms) await api('/api/rooms', { name: room }, access);
    const ws = new WebSocket(`ws://${location.host}/ws?token=${access}`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    let n = 0;
    const ask = (frame) => new Promise((ok) => {
      const ref = `b${++n}`;
      const waiting = (e) => {
        const f = JSON.parse(e.data);
        if (f.ref === ref) {
          ws.removeEventListener('message', waiting);
          ok(f);
        }
      };
      ws.addEventListener('message', waiting);
      ws.send(JSON.stringify({ ...frame, ref }));
    });
    for (const room of rooms) await ask({ type: 'join', room });
    window.__bob = { say: (room, body) => ask({ type: 'send', room, body }) };
  }, { username: BOB, password: PASSWORD, rooms: [ROOM, OTHER] });

  // Alice joins both rooms (a member of each) and looks at the first.
  await joinByName(page, OTHER);
  await joinByName(page, ROOM);

  // Highlight: only the message that mentions her.
  const plain = await bobSays(page, ROOM, 'hello everyone');
  const pinged = await bobSays(page, ROOM, `@${ALICE} can you review this?`);
  assert.deepEqual(pinged.mentions, [ALICE]);
  await page.locator(`li.msg.mentions-me[data-id="${pinged.id}"]`).waitFor();
  await page.locator(`li.msg[data-id="${plain.id}"]`).waitFor();
  assert.equal(await page.locator(`li.msg.mentions-me[data-id="${plain.id}"]`).count(), 0);

  // Badge: a mention in the room she is not looking at.
  await bobSays(page, OTHER, `ping @${ALICE}`);
  const badge = page.locator(`.room-link[data-room="${OTHER}"] .mention-badge`);
  await badge.waitFor();
  assert.equal(await badge.textContent(), '@1');
  assert.equal(await page.locator(`.room-link[data-room="${ROOM}"] .mention-badge`).count(), 0);
  await screenshot(page, 'mentions-highlight-and-badge');

  // Permission: asked from the button only.
  const ask = page.getByRole('button', { name: 'Enable notifications' });
  await ask.waitFor();
  assert.equal(await page.evaluate(() => window.__asked), 0);
  await ask.click();
  assert.equal(await page.evaluate(() => window.__asked), 1);
  await ask.waitFor({ state: 'detached' });

  // Visible tab: no notification (the badge is enough).
  await bobSays(page, OTHER, `again @${ALICE}`);
  await page.locator(`.room-link[data-room="${OTHER}"] .mention-badge`, { hasText: '@2' }).waitFor();
  assert.equal(await page.evaluate(() => window.__notes.length), 0);

  // Hidden tab: a notification.
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  });
  await bobSays(page, OTHER, `@${ALICE} are you there?`);
  await page.waitForFunction(() => window.__notes.length === 1);
  const note = await page.evaluate(() => window.__notes[0]);
  assert.equal(note.title, `${BOB} mentioned you in ${OTHER}`);
  assert.equal(note.body, `@${ALICE} are you there?`);

  // Mute the room shown (ROOM): its mentions raise none, the other room's still do.
  const mute = page.getByRole('button', { name: 'Mute notifications' });
  await mute.click();
  await page.getByRole('button', { name: 'Unmute notifications' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Unmute notifications' }).getAttribute('aria-pressed'), 'true');
  await bobSays(page, ROOM, `muted @${ALICE}`);
  await bobSays(page, OTHER, `loud @${ALICE}`);
  await page.waitForFunction(() => window.__notes.length === 2);
  assert.equal(await page.evaluate(() => window.__notes[1].body), `loud @${ALICE}`);
  assert.deepEqual(await page.evaluate(() => JSON.parse(localStorage.getItem('parley.mutedRooms'))), [ROOM]);

  // The mute outlives a reload; the unread mentions come back from the room list.
  await page.reload();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await page.locator(`.room-link[data-room="${OTHER}"] .mention-badge`, { hasText: '@4' }).waitFor();
  await page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await page.getByRole('button', { name: 'Unmute notifications' }).waitFor();
  // Opening the room reads it: its badge goes.
  await page.locator(`.room-link[data-room="${OTHER}"]`).click();
  await page.locator(`.room-link[data-room="${OTHER}"] .mention-badge`).waitFor({ state: 'detached' });

  assert.deepEqual(alice.errors, [], 'no page errors');
  await context.close();
});
