// The room list when someone else created many public rooms: the sidebar reads the user's own
// rooms (`GET /api/me/rooms`) and only the first page of the public directory (`GET /api/rooms`),
// and "More public rooms" reads the next page. The server runs with a room-creation burst
// large enough for one user to create 60 rooms at once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, openUser } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const COUNT = 60;
// The test files share one database: names starting with a digit sort before the other
// files' rooms, so these 60 are the directory's first pages.
const PREFIX = `0${stamp}-`;
const name = (i) => `${PREFIX}${String(i).padStart(2, '0')}`;

let server;
let browser;

before(async () => {
  server = new TestServer({ PARLEY_ROOM_CREATE_BURST: '100' });
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
});

test('the sidebar pages the public directory and keeps its own rooms whole', async () => {
  const alice = await openUser(browser, server);
  await alice.page.getByRole('tab', { name: 'Sign up' }).click();
  await alice.page.getByLabel('Username').fill(`alice${stamp}`);
  await alice.page.getByLabel('Password').fill(PASSWORD);
  await alice.page.locator('form.auth-form button[type=submit]').click();
  await alice.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });

  // Another user creates many public rooms (through the API, from the page).
  const requests = [];
  alice.page.on('request', (r) => requests.push(new URL(r.url()).pathname + new URL(r.url()).search));
  await alice.page.evaluate(async ({ username, password, names }) => {
    const api = (path, body, token) => fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    await api('/api/auth/register', { username, password });
    const { body: { access } } = await api('/api/auth/login', { username, password });
    for (const name of names) {
      const r = await api('/api/rooms', { name }, access);
      if (r.status !== 201) throw new Error(`create ${name}: ${JSON.stringify(r.body)}`);
    }
  }, { username: `spammer${stamp}`, password: PASSWORD, names: Array.from({ length: COUNT }, (_, i) => name(i)) });

  // A reload reads the list afresh: the first 50 public rooms, and the button for more.
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
  await alice.page.locator(`.room-link[data-room="${name(49)}"]`).waitFor();
  assert.equal(await alice.page.locator(`.room-link[data-room^="${PREFIX}"]`).count(), 50);
  assert.equal(await alice.page.locator(`.room-link[data-room="${name(50)}"]`).count(), 0);
  await alice.page.getByText('None yet: join or create one.').waitFor();

  await alice.page.getByRole('button', { name: 'More public rooms' }).click();
  await alice.page.locator(`.room-link[data-room="${name(COUNT - 1)}"]`).waitFor();
  assert.equal(await alice.page.locator(`.room-link[data-room^="${PREFIX}"]`).count(), COUNT);
  await alice.page.getByRole('button', { name: 'More public rooms' }).waitFor({ state: 'detached' });

  // Joining one makes it hers; the others stay listed.
  await alice.page.locator(`.room-link[data-room="${name(55)}"]`).click();
  await alice.page.locator('#room-title', { hasText: `#${name(55)}` }).waitFor();
  const yours = alice.page.locator('.room-section', { has: alice.page.getByRole('heading', { name: 'Your rooms' }) });
  await yours.locator(`.room-link[data-room="${name(55)}"]`).waitFor({ timeout: 15_000 });
  assert.equal(await alice.page.locator(`.room-link[data-room^="${PREFIX}"]`).count(), COUNT);

  // Every room list request was a bounded page.
  const lists = requests.filter((p) => p.startsWith('/api/rooms?') || p.startsWith('/api/me/rooms'));
  assert.ok(lists.length > 0, 'the list was read');
  for (const p of lists) assert.match(p, /[?&]limit=\d+/, p);
  await alice.context.close();
});
