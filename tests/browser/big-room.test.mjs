// A room over the server's presence limit: `joined` lists only some of who is online, and the
// web client shows the whole count ("Online (3)") with "and N more" instead of a short list
// presented as everyone. The server runs with PARLEY_PRESENCE_FANOUT_LIMIT=1 so three users
// make a "big" room.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `big-${stamp}`;

let server;
let browser;

before(async () => {
  server = new TestServer({ PARLEY_PRESENCE_FANOUT_LIMIT: '1' });
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
});

test('a room over the presence limit shows the full count and "and N more"', async () => {
  const alice = await openUser(browser, server);
  await alice.page.getByRole('tab', { name: 'Sign up' }).click();
  await alice.page.getByLabel('Username').fill(`alice${stamp}`);
  await alice.page.getByLabel('Password').fill(PASSWORD);
  await alice.page.locator('form.auth-form button[type=submit]').click();
  await alice.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  // Two other users online in the room before Alice opens it: raw sockets from the page,
  // kept open until the end of the test.
  const others = [`bob${stamp}`, `carol${stamp}`];
  await alice.page.evaluate(async ({ others, password, room }) => {
    const api = (path, body, token) => fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    window.__others = [];
    for (const [i, username] of others.entries()) {
      await api('/api/auth/register', { username, password });
      const { body: { access } } = await api('/api/auth/login', { username, password });
      if (i === 0) await api('/api/rooms', { name: room }, access);
      const ws = new WebSocket(`ws://${location.host}/ws?token=${access}`);
      await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
      const joined = await new Promise((ok) => {
        ws.onmessage = (e) => ok(JSON.parse(e.data));
        ws.send(JSON.stringify({ type: 'join', room, ref: 'j' }));
      });
      if (joined.type !== 'joined') throw new Error(`join: ${JSON.stringify(joined)}`);
      window.__others.push(ws);
    }
  }, { others, password: PASSWORD, room: ROOM });

  await alice.page.getByLabel('Join a room by name').fill(ROOM);
  await alice.page.getByRole('button', { name: 'Join', exact: true }).click();
  await alice.page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();

  await alice.page.locator('#online-title', { hasText: 'Online (3)' }).waitFor();
  await alice.page.locator('.online-more', { hasText: 'and 2 more' }).waitFor();
  const listed = await alice.page.locator('.online-user').count();
  assert.equal(listed, 1, 'the limit of 1 lists Alice herself only');
  assert.deepEqual(await alice.page.evaluate(() => window.__others.map((ws) => ws.readyState)), [1, 1]);
  await alice.context.close();
});
