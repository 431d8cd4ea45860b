// The web client in a real browser: two users in two browser contexts, against a real
// parley-server (SQLite) that the test kills and restarts. Steps run in order and build on
// each other; screenshots of the main screens go to target/browser-screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ACCESS_TTL_SECS, TestServer, launchBrowser, openUser, screenshot, webAssets } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const XSS = '<img src=x onerror=alert(1)>';

let server;
let browser;
/** @type {Record<string, {context, page, errors: string[], dialogs: string[], console: string[]}>} */
const users = {};
const stamp = Date.now().toString(36).slice(-5);
const names = { alice: `alice${stamp}`, bob: `bob${stamp}`, carol: `carol${stamp}` };
const ROOM = `general-${stamp}`;
const QUIET = `quiet-${stamp}`;
const LONG = `long-${stamp}`;
const PRIVATE = `private-${stamp}`;

// ---- helpers -------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check()` returns a truthy value; fails with `what` and the last value. */
async function eventually(what, check, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(100);
  }
}

async function signUp(user, username) {
  const { page } = user;
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await waitOnline(page);
}

async function logIn(user, username) {
  const { page } = user;
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await waitOnline(page);
}

async function waitOnline(page, timeout = 20_000) {
  await page.locator('#conn[data-state="online"]').waitFor({ timeout });
}

async function openRoomByName(page, name) {
  await page.getByLabel('Join a room by name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#room-title', { hasText: `#${name}` }).waitFor();
}

async function createRoom(page, name, kind = 'public') {
  if (!(await page.locator('details.new-room').evaluate((d) => d.open))) await page.locator('details.new-room summary').click();
  await page.locator('#new-room-name').fill(name);
  await page.locator('#new-room-kind').selectOption(kind);
  await page.getByRole('button', { name: 'Create room' }).click();
  await page.locator('#room-title', { hasText: `#${name}` }).waitFor();
}

async function send(page, text) {
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The message item whose body is exactly `text`. */
function message(page, text) {
  return page.locator('#messages li.msg:not(.pending)').filter({ has: page.locator('.body', { hasText: text }) });
}

async function bodies(page) {
  return page.locator('#messages li.msg .body').allTextContents();
}

async function seeMessage(page, text, timeout) {
  await eventually(`"${text}" to show`, async () => (await bodies(page)).includes(text), timeout);
}

/** Posts `bodies` to `room` through a WebSocket of the page's user (opened beside the app's
 *  own), waiting out rate limits. Faster than typing them. */
function sendViaSocket(page, username, room, texts) {
  return page.evaluate(async ({ username, password, room, texts }) => {
    // A login of its own: the app's stored token may be mid-refresh.
    const login = await fetch('/api/auth/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
    });
    if (!login.ok) throw new Error(`login: HTTP ${login.status}`);
    const { access } = await login.json();
    const ws = new WebSocket(`ws://${location.host}/ws?token=${access}`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    const replies = new Map();
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.ref) replies.get(f.ref)?.(f);
    };
    let n = 0;
    const call = (frame) => new Promise((ok) => { const ref = `x${++n}`; replies.set(ref, ok); ws.send(JSON.stringify({ ...frame, ref })); });
    const joined = await call({ type: 'join', room });
    if (joined.type !== 'joined') throw new Error(`join: ${joined.message}`);
    for (const body of texts) {
      for (;;) {
        const reply = await call({ type: 'send', room, body });
        if (reply.type === 'message') break;
        if (reply.code !== 'rate_limited') throw new Error(reply.message);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    ws.close();
  }, { username, password: PASSWORD, room, texts });
}

/** The page's user's rooms (`GET /api/me/rooms`: one page is enough here). */
function serverRooms(page) {
  return page.evaluate(async () => {
    const auth = JSON.parse(localStorage.getItem('parley.auth'));
    const r = await fetch('/api/me/rooms', { headers: { Authorization: `Bearer ${auth.access}` } });
    return (await r.json()).rooms;
  });
}

function noErrors(user) {
  assert.deepEqual(user.errors, [], 'page errors');
  // Network errors are expected while the server is down; policy violations never are.
  assert.deepEqual(user.console.filter((m) => /Content.Security.Policy|Uncaught/i.test(m)), [], 'console errors');
  assert.deepEqual(user.dialogs, [], 'dialogs (alert/confirm) opened by the page');
}

// ---- setup -----------------------------------------------------------------------------------

before(async () => {
  server = new TestServer();
  await server.start();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
});

// ---- steps -----------------------------------------------------------------------------------

test('the page is served by the server itself, with no external assets', async () => {
  const res = await fetch(`${server.url}/`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /<script type="module" src="\/js\/main.js">/);
  assert.doesNotMatch(html, /https?:\/\//, 'no absolute URLs (no CDN) in index.html');
  const assets = webAssets();
  assert.ok(assets.includes('/js/main.js') && assets.includes('/app.css') && assets.includes('/js/parley/index.js'), assets.join(' '));
  for (const asset of assets) {
    const r = await fetch(`${server.url}${asset}`);
    assert.equal(r.status, 200, asset);
    assert.doesNotMatch(await r.text(), /(src|href|url\()\s*=?\s*["']?https?:\/\//, `${asset} loads nothing from elsewhere`);
  }
});

test('two users sign up in two browser contexts', async () => {
  users.alice = await openUser(browser, server);
  await users.alice.page.getByRole('tab', { name: 'Sign up' }).waitFor();
  await screenshot(users.alice.page, '01-login');
  await signUp(users.alice, names.alice);
  users.bob = await openUser(browser, server);
  await signUp(users.bob, names.bob);
  await screenshot(users.alice.page, '02-lobby');
  for (const u of [users.alice, users.bob]) {
    assert.equal(await u.page.locator('.whoami').textContent().then((t) => t.includes(u === users.alice ? names.alice : names.bob)), true);
  }
});

test('a wrong password is refused with a message', async () => {
  const probe = await openUser(browser, server);
  await probe.page.getByLabel('Username').fill(names.alice);
  await probe.page.getByLabel('Password').fill('not the password');
  await probe.page.locator('form.auth-form button[type=submit]').click();
  await probe.page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
  await probe.context.close();
});

test('both join the same room and see each other online', async () => {
  const { alice, bob } = users;
  await createRoom(alice.page, ROOM);
  await openRoomByName(bob.page, ROOM);
  await alice.page.locator(`.online-user[data-user="${names.bob}"]`).waitFor();
  await bob.page.locator(`.online-user[data-user="${names.alice}"]`).waitFor();
  // The room is now in both room lists.
  await bob.page.locator(`.room-link[data-room="${ROOM}"]`).waitFor();
});

test('typing shows on the other side', async () => {
  const { alice, bob } = users;
  await alice.page.getByRole('textbox', { name: 'Message', exact: true }).pressSequentially('hel', { delay: 30 });
  await bob.page.locator('#typing', { hasText: `${names.alice} is typing` }).waitFor();
  await screenshot(bob.page, '03-typing');
});

test('messages go both ways', async () => {
  const { alice, bob } = users;
  await send(alice.page, 'hello bob');
  await seeMessage(bob.page, 'hello bob');
  // Sending cleared the typing indicator.
  await eventually('typing indicator to clear', async () => (await bob.page.locator('#typing').textContent()) === '');
  await send(bob.page, 'hi alice, multi\nline');
  await seeMessage(alice.page, 'hi alice, multi\nline');
  await seeMessage(bob.page, 'hello bob');
});

test('a message body with HTML shows as text', async () => {
  const { alice, bob } = users;
  await send(bob.page, XSS);
  await seeMessage(alice.page, XSS);
  await seeMessage(bob.page, XSS);
  for (const u of [alice, bob]) {
    assert.equal(await u.page.locator('#messages img').count(), 0, 'no <img> element was created');
    noErrors(u);
  }
  await screenshot(alice.page, '04-room');
});

test('edits and deletes reach the other user', async () => {
  const { alice, bob } = users;
  const mine = message(alice.page, 'hello bob');
  await mine.getByRole('button', { name: 'Edit message' }).click();
  const editor = alice.page.getByRole('textbox', { name: 'Edit message' });
  await editor.fill('hello bob (edited text)');
  await editor.press('Enter');
  await seeMessage(bob.page, 'hello bob (edited text)');
  await message(bob.page, 'hello bob (edited text)').locator('.edited').waitFor();
  assert.equal((await bodies(bob.page)).includes('hello bob'), false, 'the old body is gone');

  // Only one's own messages can be edited.
  assert.equal(await message(alice.page, XSS).getByRole('button', { name: 'Edit message' }).count(), 0);

  const edited = message(alice.page, 'hello bob (edited text)');
  await edited.getByRole('button', { name: 'Delete message' }).click();
  await edited.getByRole('button', { name: 'Confirm delete message' }).click();
  await seeMessage(bob.page, 'This message was deleted.');
  await seeMessage(alice.page, 'This message was deleted.');
  assert.equal((await bodies(bob.page)).includes('hello bob (edited text)'), false);
  await screenshot(bob.page, '05-edited-deleted');
});

test('read markers: the sender sees that the other has read', async () => {
  const { alice, bob } = users;
  await send(alice.page, 'did you read this?');
  await seeMessage(bob.page, 'did you read this?');
  await message(alice.page, 'did you read this?').locator('.seen', { hasText: `Seen by ${names.bob}` }).waitFor();
});

test('unread counts show for rooms not on screen and clear when opened', async () => {
  const { alice, bob } = users;
  await createRoom(alice.page, QUIET);
  await send(bob.page, 'while you were away 1');
  await send(bob.page, 'while you were away 2');
  const badge = alice.page.locator(`.room-link[data-room="${ROOM}"] .badge`);
  await eventually('unread badge of 2', async () => (await badge.textContent({ timeout: 1000 })) === '2');
  assert.equal(await badge.getAttribute('aria-label'), '2 unread');
  assert.match(await alice.page.title(), /^\(2\) #quiet-/, 'the tab title counts unread messages');
  await screenshot(alice.page, '06-unread');
  await alice.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await seeMessage(alice.page, 'while you were away 2');
  await eventually('badge to clear', async () => (await badge.count()) === 0);
  // The server's count agrees after the read marker moved.
  await eventually('server unread count 0', async () => (await serverRooms(alice.page)).find((r) => r.name === ROOM)?.unread === 0);
});

test('history scrolls back page by page', async () => {
  const { alice } = users;
  // carol fills a room with 75 messages through her own socket (faster than typing them).
  users.carol = await openUser(browser, server);
  await signUp(users.carol, names.carol);
  await createRoom(users.carol.page, LONG);
  await sendViaSocket(users.carol.page, names.carol, LONG, Array.from({ length: 75 }, (_, i) => `history ${i + 1}`));
  await openRoomByName(alice.page, LONG);
  await seeMessage(alice.page, 'history 75');
  // The first page is the newest 50 (or fewer: the client may already have scrolled once).
  await alice.page.locator('.scroller').evaluate((el) => { el.scrollTop = 0; });
  await eventually('older pages to load as the user scrolls up', async () => {
    await alice.page.locator('.scroller').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    return (await bodies(alice.page)).includes('history 1');
  }, 20_000);
  const all = await bodies(alice.page);
  const numbers = all.filter((b) => b.startsWith('history ')).map((b) => Number(b.slice(8)));
  assert.deepEqual(numbers, Array.from({ length: 75 }, (_, i) => i + 1), 'every message once, in order');
  await alice.page.locator('.older', { hasText: 'Start of the conversation' }).waitFor();
  // A message arriving while alice reads old ones does not move her view; a button does.
  await alice.page.locator('.scroller').evaluate((el) => { el.scrollTop = 0; });
  await sendViaSocket(users.carol.page, names.carol, LONG, ['a new one while alice reads']);
  await seeMessage(alice.page, 'a new one while alice reads');
  assert.equal(await alice.page.locator('.scroller').evaluate((el) => el.scrollTop), 0, 'the view stayed put');
  await alice.page.getByRole('button', { name: 'New messages ↓' }).click();
  await eventually('the view to reach the newest message', () =>
    alice.page.locator('.scroller').evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 60));
  // Having seen the room, alice has nothing unread in it.
  await eventually('server unread count 0 for the long room', async () => (await serverRooms(alice.page)).find((r) => r.name === LONG)?.unread === 0);
});

test('a room that does not exist is offered for creation', async () => {
  const { carol } = users;
  const name = `nowhere-${stamp}`;
  await openRoomByName(carol.page, name);
  await carol.page.locator('.room-notice', { hasText: `There is no room called ${name}` }).waitFor();
  assert.equal(await carol.page.getByRole('textbox', { name: 'Message', exact: true }).isVisible(), false);
  await carol.page.getByRole('button', { name: `Create #${name}` }).click();
  await send(carol.page, 'first!');
  await seeMessage(carol.page, 'first!');
  await carol.page.locator(`.room-link[data-room="${name}"]`).waitFor();
});

test('a private room: the owner adds a member, who can then leave', async () => {
  const { alice, bob, carol } = users;
  await createRoom(alice.page, PRIVATE, 'private');
  await alice.page.locator('details.invite summary').click();
  await alice.page.getByLabel('Username to add').fill(names.bob);
  await alice.page.getByRole('button', { name: 'Add', exact: true }).click();
  await alice.page.locator('.toast', { hasText: `${names.bob} added` }).waitFor();
  // Bob's room list picks the room up by itself.
  const link = bob.page.locator(`.room-link[data-room="${PRIVATE}"]`);
  await link.waitFor({ timeout: 30_000 });
  await link.click();
  await send(bob.page, 'glad to be in');
  await seeMessage(alice.page, 'glad to be in');
  // Others cannot look in.
  await openRoomByName(carol.page, PRIVATE);
  await carol.page.locator('.room-notice', { hasText: 'private' }).waitFor();
  assert.equal((await bodies(carol.page)).includes('glad to be in'), false);

  await bob.page.getByRole('button', { name: 'Leave room' }).click();
  await link.waitFor({ state: 'detached' });
  await alice.page.locator(`.online-user[data-user="${names.bob}"]`).waitFor({ state: 'detached' });
});

test('access tokens are refreshed silently', async () => {
  const { alice, bob } = users;
  const token = () => alice.page.evaluate(() => JSON.parse(localStorage.getItem('parley.auth')).access);
  await alice.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await bob.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  // The socket's authorization ends with its token: the client renews it on the open socket
  // (`renew`), so no new socket is opened while the tokens rotate.
  const opened = [];
  const onSocket = (ws) => opened.push(ws.url());
  alice.page.on('websocket', onSocket);
  const first = await token();
  // The server under test issues access tokens that live ACCESS_TTL_SECS seconds.
  await eventually('a new access token', async () => (await token()) !== first, (ACCESS_TTL_SECS + 15) * 1000);
  await eventually('the first token to expire', async () => {
    const exp = await alice.page.evaluate((t) => JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp * 1000, first);
    return Date.now() > exp + 1000;
  }, (ACCESS_TTL_SECS + 5) * 1000);
  // Still logged in, still connected, REST and socket both work.
  assert.equal(await alice.page.locator('form.auth-form').count(), 0);
  await send(alice.page, 'still here after the refresh');
  await seeMessage(bob.page, 'still here after the refresh');
  const status = await alice.page.evaluate(async () => {
    const auth = JSON.parse(localStorage.getItem('parley.auth'));
    return (await fetch('/api/me', { headers: { Authorization: `Bearer ${auth.access}` } })).status;
  });
  assert.equal(status, 200);
  alice.page.off('websocket', onSocket);
  assert.deepEqual(opened, [], 'the socket was renewed, not reopened');
});

test('a direct chat between the two', async () => {
  const { alice, bob } = users;
  await alice.page.getByLabel('Direct chat with').fill(names.bob);
  await alice.page.getByRole('button', { name: 'Chat', exact: true }).click();
  await alice.page.locator('#room-title', { hasText: `@${names.bob}` }).waitFor();
  await send(alice.page, 'psst, just us');
  // Bob's room list picks the new direct room up by itself.
  const link = bob.page.locator('.room-link', { hasText: `@${names.alice}` });
  await link.waitFor({ timeout: 30_000 });
  await link.click();
  await seeMessage(bob.page, 'psst, just us');
  await send(bob.page, 'hello in private');
  await seeMessage(alice.page, 'hello in private');
  // carol cannot open it.
  const dmName = await alice.page.evaluate(() => decodeURIComponent(location.hash.replace('#/room/', '')));
  await users.carol.page.evaluate((n) => { location.hash = `#/room/${n}`; }, dmName);
  await users.carol.page.locator('.room-notice').filter({ hasText: /private|no room/ }).waitFor();
  await screenshot(bob.page, '07-direct');
});

test('a video call between the two connects on both sides', async () => {
  const { alice, bob } = users;
  await alice.page.getByRole('button', { name: `Video call ${names.bob}` }).first().click();
  await alice.page.locator('#call[data-call-state="calling"]').waitFor();
  await bob.page.locator('#call[data-call-state="ringing"]').waitFor();
  await screenshot(bob.page, '08-incoming-call');
  await bob.page.getByRole('button', { name: 'Accept' }).click();
  await alice.page.locator('#call[data-call-state="connected"]').waitFor({ timeout: 30_000 });
  await bob.page.locator('#call[data-call-state="connected"]').waitFor({ timeout: 30_000 });
  // Media flows: the remote video has frames from the fake camera.
  await eventually('remote video to play', () =>
    bob.page.locator('.remote-video').evaluate((v) => v.videoWidth > 0 && v.readyState >= 2), 20_000);
  await screenshot(alice.page, '09-call-connected');
  await alice.page.getByRole('button', { name: 'Hang up' }).click();
  await bob.page.locator('#call').waitFor({ state: 'detached' });
  await alice.page.locator('#call').waitFor({ state: 'detached' });
});

test('a voice call: declined once, then answered, connects with audio only', async () => {
  const { alice, bob } = users;
  const voice = alice.page.getByRole('button', { name: `Voice call ${names.bob}` });
  await voice.click();
  await bob.page.getByRole('button', { name: 'Decline' }).click();
  await alice.page.locator('.toast', { hasText: 'declined' }).waitFor();
  await alice.page.locator('#call').waitFor({ state: 'detached' });

  await voice.click();
  await bob.page.locator('#call[data-call-state="ringing"]', { hasText: 'is calling you' }).waitFor();
  await bob.page.getByRole('button', { name: 'Accept' }).click();
  for (const u of [alice, bob]) await u.page.locator('#call[data-call-state="connected"]').waitFor({ timeout: 30_000 });
  const tracks = await bob.page.locator('.remote-video').evaluate((v) => ({
    audio: v.srcObject?.getAudioTracks().length ?? 0,
    video: v.srcObject?.getVideoTracks().filter((t) => t.readyState === 'live' && !t.muted).length ?? 0,
  }));
  assert.equal(tracks.audio, 1, 'the remote audio arrives');
  assert.equal(await alice.page.locator('.local-video').isVisible(), false, 'no camera preview in a voice call');
  await bob.page.getByRole('button', { name: 'Hang up' }).click();
  await alice.page.locator('#call').waitFor({ state: 'detached' });
  await alice.page.locator('.toast', { hasText: 'hung up' }).waitFor();
});

test('the client survives a server restart and shows what was sent meanwhile', async () => {
  const { alice, bob } = users;
  await alice.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await bob.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await seeMessage(bob.page, 'did you read this?');

  await server.kill();
  for (const u of [alice, bob]) {
    await u.page.locator('#conn[data-state="reconnecting"], #conn[data-state="connecting"]').waitFor();
  }
  // Keep bob away from the server after it is back, so his client has a gap to fill.
  await bob.context.setOffline(true);
  // Written while the server is down: queued, sent after the reconnect.
  await send(alice.page, 'queued while the server was down');
  await alice.page.locator('#messages li.msg.pending', { hasText: 'queued while the server was down' }).waitFor();

  await server.start();
  await waitOnline(alice.page, 30_000);
  await seeMessage(alice.page, 'queued while the server was down');
  await eventually('the queued message to be acknowledged', async () => (await alice.page.locator('#messages li.msg.pending').count()) === 0);
  await send(alice.page, 'sent after the restart');
  await seeMessage(alice.page, 'sent after the restart');
  // More than one page of history (the server sends the newest 50 on join), so bob's client
  // has to page through the gap.
  const gap = Array.from({ length: 60 }, (_, i) => `gap ${i + 1}`);
  await sendViaSocket(users.carol.page, names.carol, ROOM, gap);
  await seeMessage(alice.page, 'gap 60');
  assert.notEqual(await bob.page.locator('#conn').getAttribute('data-state'), 'online', 'bob is still away');
  assert.equal((await bodies(bob.page)).includes('sent after the restart'), false, 'bob has not seen it yet');
  await screenshot(bob.page, '10-reconnecting');

  await bob.context.setOffline(false);
  await waitOnline(bob.page, 30_000);
  await seeMessage(bob.page, 'queued while the server was down');
  await seeMessage(bob.page, 'sent after the restart');
  await seeMessage(bob.page, 'gap 60');
  const seen = await bodies(bob.page);
  assert.equal(seen.filter((b) => b === 'queued while the server was down').length, 1, 'no duplicates');
  const after = seen.slice(seen.indexOf('did you read this?'));
  const expected = ['did you read this?', 'while you were away 1', 'while you were away 2', 'still here after the refresh',
    'queued while the server was down', 'sent after the restart', ...gap];
  assert.deepEqual(after.slice(0, expected.length), expected, 'every message once, in order, none missed');
  // Live traffic works again both ways.
  await send(bob.page, 'back online');
  await seeMessage(alice.page, 'back online');
  await alice.page.locator(`.online-user[data-user="${names.bob}"]`).waitFor();
  for (const u of [alice, bob]) noErrors(u);
});

test('usable on a phone-sized screen', async () => {
  const phone = await openUser(browser, server, { viewport: { width: 390, height: 844 }, isMobile: true });
  await screenshot(phone.page, '11-phone-login');
  await logIn(phone, names.bob);
  await screenshot(phone.page, '12-phone-rooms');
  await phone.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await seeMessage(phone.page, 'back online');
  const box = phone.page.getByRole('textbox', { name: 'Message', exact: true });
  assert.equal(await box.isVisible(), true, 'the composer is on screen');
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
  await send(phone.page, 'from my phone');
  await seeMessage(users.alice.page, 'from my phone');
  await screenshot(phone.page, '13-phone-room');
  await phone.page.getByRole('link', { name: 'Back to rooms' }).click();
  await phone.page.locator('.room-list').waitFor();
  noErrors(phone);
  await phone.context.close();
});

test('every control has an accessible name', async () => {
  const { alice } = users;
  const unnamed = await alice.page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href]')) {
      if (el.type === 'hidden' || el.closest('[hidden]')) continue;
      const labelled = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label') || el.textContent.trim();
      if (!labelled) bad.push(el.outerHTML.slice(0, 80));
    }
    return bad;
  });
  assert.deepEqual(unnamed, []);
});

test('a reload keeps the session and the room on screen', async () => {
  const { alice } = users;
  await alice.page.locator(`.room-link[data-room="${ROOM}"]`).click();
  await alice.page.reload();
  await waitOnline(alice.page);
  await alice.page.locator('#room-title', { hasText: `#${ROOM}` }).waitFor();
  await seeMessage(alice.page, 'from my phone');
});

test('logout returns to the login screen and a new login works', async () => {
  const { alice } = users;
  await alice.page.getByRole('button', { name: 'Log out' }).click();
  await alice.page.locator('form.auth-form').waitFor();
  assert.equal(await alice.page.evaluate(() => localStorage.getItem('parley.auth')), null);
  await logIn(alice, names.alice);
  await alice.page.locator(`.room-link[data-room="${ROOM}"]`).waitFor();
  noErrors(alice);
});
