// The finished web client (issue 17, item 7): avatars, grouping by sender and minute, date
// separators, safe links, the markdown subset without script injection, the member panel,
// the keyboard, errors in plain words beside their control, the page for an invalid room
// name, the sidebar preview after a delete, colour contrast (axe-core's color-contrast rule,
// light and dark), the landscape phone layout, and calls built with the configured ICE servers.
//
// Bob is a raw WebSocket opened inside Alice's page (as in features.test.mjs): he writes the
// messages Alice's client has to render.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { TestServer, launchBrowser, openUser, screenshot } from './harness.mjs';

const require = createRequire(import.meta.url);
/** axe-core from npm (tests/browser's devDependencies), injected into the page under test. */
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
const ROOM = `look-${stamp}`;
const ALICE = `alice${stamp}`;
const BOB = `bob${stamp}`;
const DAY_MS = 86_400_000;

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

async function signUp(page, username) {
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
}

async function logIn(page, username) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.locator('form.auth-form button[type=submit]').click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 20_000 });
}

async function openRoom(page, name) {
  await page.getByLabel('Join a room by name').fill(name);
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.locator('#room-title', { hasText: `#${name}` }).waitFor();
}

/** Bob in Alice's page: an account (registered when `register`), a socket joined to `room`,
 *  and `window.__bob.send(body)` resolving to the stored message. */
async function bobJoins(page, { register, room, create }) {
  await page.evaluate(async ({ username, password, room, register, create }) => {
    const api = (path, body, token) => fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }));
    if (register) await api('/api/auth/register', { username, password });
    const { body: { access } } = await api('/api/auth/login', { username, password });
    if (create) await api('/api/rooms', { name: room }, access);
    const ws = new WebSocket(`ws://${location.host}/ws?token=${access}`);
    await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
    let seq = 0;
    const request = (frame) => new Promise((ok) => {
      const ref = `b${++seq}`;
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
    const frames = [];
    ws.addEventListener('message', (e) => frames.push(JSON.parse(e.data)));
    await request({ type: 'join', room });
    window.__bob = { ws, frames, request, send: (body) => request({ type: 'send', room, body }) };
  }, { username: BOB, password: PASSWORD, room, register, create });
}

/** Runs axe-core's color-contrast rule on the page as it is; the violations, readable. */
async function contrastViolations(page) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  // Evaluated through the debugging protocol, so the page's CSP (script-src 'self') allows it.
  if (!has) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'rule', values: ['color-contrast'] } });
    return {
      violations: r.violations.flatMap((v) => v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`)),
      checked: r.passes.reduce((n, v) => n + v.nodes.length, 0),
    };
  });
  // The rule did look at the page's text (an empty run would pass too).
  assert.ok(result.checked >= 3, `axe checked ${result.checked} elements`);
  return result.violations;
}

test('messages: avatars, grouping by sender and minute, date separators, safe links, markdown without injection', async () => {
  const alice = await openUser(browser, server);
  const { page, context } = alice;
  // The server's timestamps as if Bob's "[2 days ago]" messages were written two days ago:
  // the socket's frames pass through unchanged except for those messages' created_at.
  await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    const upstream = ws.connectToServer();
    upstream.onMessage((data) => {
      if (typeof data !== 'string') return ws.send(data);
      const f = JSON.parse(data);
      const shift = (m) => (typeof m?.body === 'string' && m.body.startsWith('[2 days ago]') ? { ...m, created_at: m.created_at - 2 * DAY_MS } : m);
      if (Array.isArray(f.history)) f.history = f.history.map(shift);
      if (Array.isArray(f.messages)) f.messages = f.messages.map(shift);
      ws.send(JSON.stringify(f.type === 'message' ? shift(f) : f));
    });
  });
  await page.reload();
  await signUp(page, ALICE);
  await bobJoins(page, { register: true, room: ROOM, create: true });
  const sent = [];
  for (const body of [
    '[2 days ago] first of the old ones',
    '[2 days ago] second of the old ones',
    'Read https://example.org/a_b_c. Or mail mailto:team@example.org, or (https://example.com/x).',
    '**bold** and *italic* and _underscored_ and `code <b>x</b>` in one',
    '```\nfn main() {}\n<script>window.__pwned = 1</script>\n```\nafter the block',
    'javascript:alert(1) [click](javascript:alert(2)) <img src=x onerror="window.__pwned = 2"> data:text/html,<b>x</b>',
  ]) sent.push(await page.evaluate((b) => window.__bob.send(b), body));
  assert.ok(sent.every((m) => m.type === 'message'), JSON.stringify(sent));
  await openRoom(page, ROOM);
  const msg = (i) => page.locator(`li.msg[data-id="${sent[i].id}"]`);
  await msg(5).waitFor();

  // Date separators: the old day, then today, each before its first message.
  const separators = await page.locator('#messages li.day-separator').allTextContents();
  assert.equal(separators.length, 2, JSON.stringify(separators));
  assert.equal(separators[1], 'Today');
  assert.notEqual(separators[0], 'Today');
  const order = await page.locator('#messages > li').evaluateAll((els) => els.map((e) => (e.classList.contains('day-separator') ? 'day' : e.dataset.id)));
  assert.deepEqual(order.slice(0, 4), ['day', String(sent[0].id), String(sent[1].id), 'day']);

  // Grouping: the second old message continues the first (no avatar or visible name of its
  // own); the first of today starts a new group after the separator, the rest continue it.
  assert.equal(await msg(0).locator('.avatar').count(), 1);
  assert.equal(await msg(0).getAttribute('class').then((c) => c.includes('grouped')), false);
  assert.ok((await msg(1).getAttribute('class')).includes('grouped'));
  assert.equal(await msg(1).locator('.avatar').count(), 0);
  assert.ok(!(await msg(2).getAttribute('class')).includes('grouped'), 'a new day starts a new group');
  for (const i of [3, 4, 5]) assert.ok((await msg(i).getAttribute('class')).includes('grouped'), `message ${i} continues the group`);
  // The avatar: Bob's initials on a colour of its own, the same for all his messages.
  const avatar = msg(2).locator('.avatar');
  assert.equal(await avatar.textContent(), BOB.slice(0, 2).toUpperCase());
  assert.equal(await avatar.getAttribute('aria-hidden'), 'true');
  const colour = await avatar.evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(colour, await msg(0).locator('.avatar').evaluate((el) => getComputedStyle(el).backgroundColor));

  // Links: http(s) and mailto only, trailing punctuation left out, opened safely.
  const links = msg(2).locator('.body a');
  assert.deepEqual(await links.evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.textContent, a.target, a.rel])), [
    ['https://example.org/a_b_c', 'https://example.org/a_b_c', '_blank', 'noopener noreferrer'],
    ['mailto:team@example.org', 'mailto:team@example.org', '_blank', 'noopener noreferrer'],
    ['https://example.com/x', 'https://example.com/x', '_blank', 'noopener noreferrer'],
  ]);
  assert.equal(await msg(2).locator('.body').textContent(), sent[2].body, 'the text reads as it was written');

  // Markdown: bold, italic (both spellings), inline code whose content stays text.
  const md = msg(3).locator('.body');
  assert.equal(await md.locator('strong').textContent(), 'bold');
  assert.deepEqual(await md.locator('em').allTextContents(), ['italic', 'underscored']);
  assert.equal(await md.locator('code').textContent(), 'code <b>x</b>');
  assert.equal(await md.locator('b').count(), 0);
  // A code block: preformatted, its markup shown as text and never run.
  const block = msg(4).locator('.body pre.code-block code');
  assert.equal(await block.textContent(), 'fn main() {}\n<script>window.__pwned = 1</script>');
  assert.equal(await msg(4).locator('.body').evaluate((el) => el.lastChild.textContent), 'after the block');
  // No javascript: or data: link, no element from the text, nothing ran.
  assert.equal(await msg(5).locator('.body a').count(), 0);
  assert.equal(await msg(5).locator('.body').textContent(), sent[5].body);
  assert.equal(await page.locator('#messages script, #messages img, a[href^="javascript:" i], a[href^="data:" i]').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);

  // Alice's own message: grouped apart from Bob's, on her side, with her avatar.
  await page.getByLabel('Message', { exact: true }).fill('my **own** words');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  const own = page.locator('li.msg.own:not(.pending)', { hasText: 'my own words' });
  await own.waitFor();
  assert.equal(await own.locator('.body strong').textContent(), 'own');
  assert.equal(await own.locator('.avatar').textContent(), ALICE.slice(0, 2).toUpperCase());
  // The room list's preview reads as text, without the markers.
  await page.locator(`.room-link[data-room="${ROOM}"] .last-message`, { hasText: `${ALICE}: my own words` }).waitFor();
  await screenshot(page, 'look-messages');
  assert.deepEqual(alice.errors, [], 'no page errors');
  await page.evaluate(() => window.__bob.ws.close());
  await context.close();
});

test('keyboard: Enter sends, Shift+Enter breaks the line, Up edits my last message, Esc cancels edit and reply', async () => {
  const alice = await openUser(browser, server);
  const { page } = alice;
  await logIn(page, ALICE);
  await bobJoins(page, { register: false, room: ROOM, create: false });
  await openRoom(page, ROOM);
  const composer = page.getByLabel('Message', { exact: true });

  await composer.click();
  await page.keyboard.type('line one');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('line two');
  assert.equal(await composer.inputValue(), 'line one\nline two', 'Shift+Enter adds a line, sends nothing');
  await page.keyboard.press('Enter');
  const sentOne = page.locator('li.msg.own:not(.pending)', { hasText: 'line two' });
  await sentOne.waitFor();
  // By id from here on: while it is edited, its text is in a textarea.
  const mine = page.locator(`li.msg[data-id="${await sentOne.getAttribute('data-id')}"]`);
  assert.equal(await mine.locator('.body').textContent(), 'line one\nline two');
  assert.equal(await composer.inputValue(), '');

  // Up in the empty composer: my last message opens for editing; Enter saves.
  await composer.press('ArrowUp');
  const editor = mine.getByLabel('Edit message', { exact: true });
  await editor.waitFor();
  assert.equal(await editor.inputValue(), 'line one\nline two');
  assert.ok(await editor.evaluate((el) => el === document.activeElement), 'the editor has the focus');
  await editor.fill('line one, edited');
  await editor.press('Enter');
  await mine.locator('.body', { hasText: 'line one, edited' }).waitFor();
  const edited = mine;
  await edited.locator('.edited').waitFor();

  // Up again, then Esc: the edit is dropped and the focus is back in the composer.
  await composer.press('ArrowUp');
  await edited.getByLabel('Edit message', { exact: true }).fill('never saved');
  await edited.getByLabel('Edit message', { exact: true }).press('Escape');
  await edited.locator('.edit-form').waitFor({ state: 'detached' });
  assert.equal(await edited.locator('.body').textContent(), 'line one, edited');
  assert.ok(await composer.evaluate((el) => el === document.activeElement));

  // Up with text in the composer moves the caret, it edits nothing.
  await composer.fill('draft');
  await composer.press('ArrowUp');
  assert.equal(await page.locator('.edit-form').count(), 0);
  await composer.fill('');

  // Esc cancels a reply.
  const theirs = await page.evaluate(() => window.__bob.send('reply to me'));
  const bobs = page.locator(`li.msg[data-id="${theirs.id}"]`);
  await bobs.getByRole('button', { name: 'Reply to message' }).click();
  await page.locator('.reply-bar', { hasText: 'reply to me' }).waitFor();
  await composer.press('Escape');
  await page.locator('.reply-bar').waitFor({ state: 'hidden' });
  assert.deepEqual(alice.errors, []);
  await page.evaluate(() => window.__bob.ws.close());
  await alice.context.close();
});

test('errors in plain words next to their control; a page for an invalid room name; the member panel; the preview after a delete', async () => {
  const alice = await openUser(browser, server);
  const { page } = alice;
  await logIn(page, ALICE);

  // A direct chat with nobody: the sentence is under the form, no toast over the chat.
  await page.getByLabel('Direct chat with').fill(`nobody${stamp}`);
  await page.getByRole('button', { name: 'Chat', exact: true }).click();
  const dmError = page.locator('form[aria-label="Start a direct chat"] .control-error');
  await dmError.waitFor();
  assert.equal(await dmError.textContent(), 'There is no user with that name.');
  assert.equal(await dmError.getAttribute('role'), 'alert');
  assert.equal(await page.locator('.toast').count(), 0);
  // Typing again clears it.
  await page.getByLabel('Direct chat with').fill('x');
  await dmError.waitFor({ state: 'hidden' });

  // Joining `bad name!`: said under the join form, the room is not opened.
  await page.getByLabel('Join a room by name').fill('bad name!');
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  const joinError = page.locator('form[aria-label="Join a room by name"] .control-error, form[aria-label="Join a room"] .control-error');
  await joinError.waitFor();
  assert.match(await joinError.textContent(), /letters, digits/);
  assert.equal(await page.getByLabel('Join a room by name').getAttribute('aria-invalid'), 'true');
  // The same name in the address: a friendly page, no protocol text.
  await page.evaluate(() => { location.hash = '#/room/bad%20name!'; });
  await page.getByRole('heading', { name: 'That is not a room name' }).waitFor();
  const text = await page.locator('#room').textContent();
  assert.ok(text.includes('“bad name!” cannot be the name of a room.'), text);
  for (const raw of ['invalid_room_name', 'invalid room name:', 'may contain only', 'not valid']) assert.ok(!text.includes(raw), `no raw text (${raw}): ${text}`);
  await screenshot(page, 'look-bad-room-name');
  await page.getByRole('link', { name: 'Back to your rooms' }).click();
  await page.getByRole('heading', { name: `Welcome, ${ALICE}` }).waitFor();
  await screenshot(page, 'look-errors');

  // The member panel: everyone in the room, who is online, the owner marked.
  await bobJoins(page, { register: false, room: ROOM, create: false });
  await openRoom(page, ROOM);
  const toggle = page.getByRole('button', { name: 'Members' });
  if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  const panel = page.locator('#member-panel');
  await panel.locator(`li.member[data-user="${BOB}"].online`).waitFor();
  await panel.locator(`li.member[data-user="${ALICE}"]`).waitFor();
  assert.equal(await panel.locator(`li.member[data-user="${BOB}"] .role-mark`).textContent(), 'owner');
  assert.match(await panel.locator('#members-title').textContent(), /^Members \(\d+\)$/);
  // Bob leaves: he is listed as away.
  await page.evaluate(() => window.__bob.ws.close());
  await panel.locator(`li.member[data-user="${BOB}"]:not(.online)`).waitFor();
  await page.getByRole('button', { name: 'Close the member list' }).click();
  await panel.waitFor({ state: 'hidden' });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');

  // The sidebar's preview follows a delete of the room's newest message.
  const composer = page.getByLabel('Message', { exact: true });
  await composer.fill('the earlier one');
  await composer.press('Enter');
  await page.locator('li.msg.own:not(.pending)', { hasText: 'the earlier one' }).waitFor();
  await composer.fill('the one to delete');
  await composer.press('Enter');
  const doomed = page.locator('li.msg.own:not(.pending)', { hasText: 'the one to delete' });
  await doomed.waitFor();
  const preview = page.locator(`.room-link[data-room="${ROOM}"] .last-message`);
  await preview.filter({ hasText: 'the one to delete' }).waitFor();
  await doomed.getByRole('button', { name: 'Delete message' }).click();
  await doomed.getByRole('button', { name: 'Confirm delete message' }).click();
  await preview.filter({ hasText: `${ALICE}: the earlier one` }).waitFor();
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});

test('colour contrast of at least 4.5:1 in the light and the dark theme (axe-core)', async () => {
  for (const scheme of ['light', 'dark']) {
    const alice = await openUser(browser, server);
    const { page } = alice;
    await page.emulateMedia({ colorScheme: scheme });
    await page.locator('form.auth-form').waitFor();
    assert.deepEqual(await contrastViolations(page), [], `${scheme}: the login page`);
    await logIn(page, ALICE);
    assert.deepEqual(await contrastViolations(page), [], `${scheme}: the lobby`);
    await bobJoins(page, { register: false, room: ROOM, create: false });
    await page.evaluate(() => window.__bob.send('from Bob, with a link: https://example.org and `code`'));
    await openRoom(page, ROOM);
    await page.locator('li.msg:not(.own)', { hasText: 'from Bob, with a link' }).last().waitFor();
    const toggle = page.getByRole('button', { name: 'Members' });
    if ((await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
    await page.locator('#member-panel li.member').first().waitFor();
    // A reply in progress and an inline error on screen too.
    await page.locator('li.msg:not(.own)').last().getByRole('button', { name: 'Reply to message' }).click();
    await page.getByLabel('Direct chat with').fill(`nobody${stamp}`);
    await page.getByRole('button', { name: 'Chat', exact: true }).click();
    await page.locator('.control-error').first().waitFor();
    // The pointer away from the messages: the faded Edit/Delete links are what axe sees.
    await page.mouse.move(0, 0);
    assert.deepEqual(await contrastViolations(page), [], `${scheme}: a room with messages, the member panel, a reply, an error`);
    await screenshot(page, `look-desktop-${scheme}`);
    // The primary button in focus and the invalid-room page.
    await page.evaluate(() => { location.hash = '#/room/bad%20name!'; });
    await page.getByRole('heading', { name: 'That is not a room name' }).waitFor();
    assert.deepEqual(await contrastViolations(page), [], `${scheme}: the invalid room page`);
    await page.evaluate(() => window.__bob.ws.close());
    assert.deepEqual(alice.errors, []);
    await alice.context.close();
  }
});

test('landscape phone (844×390): the message list keeps most of the height', async () => {
  const alice = await openUser(browser, server, { viewport: { width: 844, height: 390 }, isMobile: true });
  const { page } = alice;
  await logIn(page, ALICE);
  await openRoom(page, ROOM);
  await page.locator('li.msg').first().waitFor();
  const box = await page.evaluate(() => {
    const r = (sel) => document.querySelector(sel)?.getBoundingClientRect();
    return { height: innerHeight, width: innerWidth, scroller: r('.scroller'), composer: r('.composer'), sidebar: r('.sidebar') };
  });
  assert.equal(box.height, 390);
  assert.ok(box.scroller.height >= 0.55 * box.height, `the message list is ${box.scroller.height}px of ${box.height}px`);
  assert.ok(box.scroller.width >= 0.9 * box.width, `the message list is ${box.scroller.width}px wide of ${box.width}px`);
  assert.ok(box.composer.bottom <= box.height + 0.5 && box.composer.top > 0, 'the composer is on screen');
  assert.ok(!box.sidebar || box.sidebar.width === 0, 'the room list is out of the way in a room');
  await screenshot(page, 'look-phone-landscape');
  // The back link leads to the room list; the members panel slides over the messages.
  await page.getByRole('button', { name: 'Members' }).click();
  const panel = await page.locator('#member-panel').boundingBox();
  assert.ok(panel && panel.width < box.width * 0.9);
  const after = await page.locator('.scroller').boundingBox();
  assert.equal(Math.round(after.width), Math.round(box.scroller.width), 'the panel does not squeeze the list');
  await page.getByRole('link', { name: 'Back to rooms' }).click();
  await page.locator(`.room-link[data-room="${ROOM}"]`).waitFor();
  assert.deepEqual(alice.errors, []);
  await alice.context.close();

  // And upright, the phone layout people know.
  const upright = await openUser(browser, server, { viewport: { width: 390, height: 844 }, isMobile: true });
  await logIn(upright.page, ALICE);
  await openRoom(upright.page, ROOM);
  await upright.page.locator('li.msg').first().waitFor();
  await screenshot(upright.page, 'look-phone-portrait');
  await upright.context.close();
});

test('a call builds its RTCPeerConnection with the configured ICE servers', async () => {
  const ice = new TestServer({
    PARLEY_ICE_SERVERS: 'stun:stun.example.org:3478,turn:turn.example.org:3478?transport=udp',
    PARLEY_TURN_SECRET: 'browser-test-turn-secret',
  });
  await ice.start();
  try {
    const alice = await openUser(browser, ice);
    const { page, context } = alice;
    // Every RTCPeerConnection the page makes, kept for inspection.
    await context.addInitScript(() => {
      const Native = window.RTCPeerConnection;
      window.__pcs = [];
      window.RTCPeerConnection = class extends Native {
        constructor(config) {
          super(config);
          window.__pcs.push({ pc: this, config: JSON.parse(JSON.stringify(config ?? {})) });
        }
      };
    });
    await page.reload();
    await signUp(page, ALICE);
    await bobJoins(page, { register: true, room: ROOM, create: true });
    // Bob accepts any call.
    await page.evaluate(() => {
      window.__bob.ws.addEventListener('message', (e) => {
        const f = JSON.parse(e.data);
        if (f.type === 'signal' && f.payload?.type === 'invite') {
          window.__bob.ws.send(JSON.stringify({ type: 'signal', to: f.from, call_id: f.call_id, payload: { type: 'accept' } }));
        }
      });
    });
    await openRoom(page, ROOM);
    await page.getByRole('button', { name: `Video call ${BOB}` }).first().click();
    await page.waitForFunction(() => window.__pcs.length > 0);
    const seen = await page.evaluate(() => {
      const { pc, config } = window.__pcs[0];
      return { given: config.iceServers, used: pc.getConfiguration().iceServers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })) };
    });
    const urls = seen.used.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    assert.ok(urls.includes('stun:stun.example.org:3478'), JSON.stringify(seen));
    assert.ok(urls.includes('turn:turn.example.org:3478?transport=udp'), JSON.stringify(seen));
    const turn = seen.used.find((s) => [s.urls].flat().some((u) => u.startsWith('turn:')));
    // The TURN REST convention: `{expiry}:{user}` and a credential minted by the server.
    assert.match(turn.username, /^\d+:\d+$/);
    assert.ok(turn.credential.length > 0);
    // What the page was given is what the connection uses.
    assert.deepEqual(seen.given.flatMap((s) => [s.urls].flat()).sort(), [...urls].sort());
    await page.evaluate(() => window.__bob.ws.close());
    await context.close();
  } finally {
    await ice.stop().catch(() => {});
  }
});
