// The Django Channels tutorial's own room page against Parley: two users, each on the page,
// in the same room; each sends a message with the page's Send button and each page's log
// shows both, as `username: message`, and nothing the page cannot read (`undefined`): the
// tutorial socket sends such a page chat messages only (no `joined`, no presence).
//
// The page is a copy of the tutorial's `chat/templates/chat/room.html` (as in the Django
// peer used by the interop tests; the file is not part of this repository): see `roomPage`.
//
// How the page is served. Its script opens `'ws://' + window.location.host + '/ws/chat/' + ...`,
// so the document must be of Parley's origin: the socket then reaches Parley and passes the
// same-origin check. Fulfilling the document with playwright's `context.route` keeps the URL
// but not the origin's network: Chromium counts a document fulfilled that way as coming from
// no address, and its Local Network Access checks block the socket to the loopback server
// (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS; fulfilling with the server's own response
// as a base does the same). A static server of our own would be another origin. So the page
// first loads a real document from Parley, at the tutorial's URL (`/chat/{room}/`, which
// Parley answers with its JSON 404 and no Content-Security-Policy), and `page.setContent`
// then writes the tutorial page into that document (document.open/write): same origin, same
// address, `window.location.host` is the server, and the page's inline script runs as it
// would in the tutorial.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestServer, launchBrowser, screenshot } from './harness.mjs';

const PASSWORD = 'correct horse battery';
const stamp = Date.now().toString(36).slice(-5);
// Capitals on purpose: Parley folds room names to lower case, the page keeps what it was given.
const ROOM = `CaseRoom${stamp}`;

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

/** Django's `json_script` filter: the value as JSON in a script element, `<>&` escaped. */
function jsonScript(value, id) {
  const json = JSON.stringify(value)
    .replace(/</g, '\\u003C')
    .replace(/>/g, '\\u003E')
    .replace(/&/g, '\\u0026');
  return `<script id="${id}" type="application/json">${json}</script>`;
}

/** The tutorial's room page (Django Channels tutorial, `chat/templates/chat/room.html`) as its
 *  template renders it for a room with no stored messages. One difference, which Parley needs:
 *  the access token, rendered like the room name (`{{ token|json_script:"token" }}`) and sent
 *  as `?token=` on the socket's URL (a browser cannot set headers on a WebSocket; the
 *  tutorial's server relies on Django's session cookie instead). Everything else is the
 *  tutorial's, the `username` box included (Parley ignores what is typed there: a message is
 *  always the signed-in user's). */
function roomPage(roomName, token) {
  return `<!DOCTYPE html>
<html><head><title>Chat ${roomName}</title></head>
<body>
  <textarea id="log" cols="100" rows="20"></textarea><br>
  <input id="user" placeholder="username"> <input id="msg" size="80"> <input id="send" type="button" value="Send">
  ${jsonScript(roomName, 'room-name')}
  ${jsonScript(token, 'token')}
  <script>
    const room = JSON.parse(document.getElementById('room-name').textContent);
    // Parley: the token as a query parameter (the only change to the tutorial's line).
    const token = JSON.parse(document.getElementById('token').textContent);
    const ws = new WebSocket('ws://' + window.location.host + '/ws/chat/' + room + '/?token=' + encodeURIComponent(token));
    ws.onmessage = (e) => {
      const d = JSON.parse(e.data);
      document.querySelector('#log').value += d.username + ': ' + d.message + '\\n';
    };
    document.querySelector('#send').onclick = () => {
      const m = document.querySelector('#msg');
      ws.send(JSON.stringify({message: m.value, username: document.querySelector('#user').value}));
      m.value = '';
    };
  </script>
</body></html>`;
}

async function api(path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** A new account's access token (register, then log in, over the REST API). */
async function signUp(username) {
  await api('/api/auth/register', { username, password: PASSWORD });
  const { access } = await api('/api/auth/login', { username, password: PASSWORD });
  return access;
}

/** Whether `username` is online in `ROOM` (its socket has joined), as the REST API says. */
async function online(username, token) {
  const res = await fetch(`${server.url}/api/rooms/${ROOM.toLowerCase()}/online`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!res.ok) return false;
  const body = await res.json();
  return body.online.includes(username);
}

/** One user's browser context with the tutorial's room page on `ROOM`, its socket open and
 *  joined. Records the frames the page receives (beside the page's own handler) for failure
 *  messages. */
async function openRoomPage(username) {
  const token = await signUp(username);
  const context = await browser.newContext({ viewport: { width: 900, height: 480 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const user = { username, context, page, errors: [] };
  page.on('pageerror', (e) => user.errors.push(String(e)));
  page.setDefaultTimeout(15_000);
  // A document of Parley's origin first (see the top of the file), then the tutorial page in it.
  await page.goto(`${server.url}/chat/${ROOM}/`);
  // The recorder goes in before the page's script opens its socket (document.open keeps the
  // window, so it survives setContent): every socket's frames land in window.__frames too.
  await page.evaluate(() => {
    window.__frames = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => window.__frames.push(JSON.parse(e.data)));
      }
    };
  });
  await page.setContent(roomPage(ROOM, token));
  assert.equal(await page.evaluate(() => window.location.host), new URL(server.url).host);
  // The socket says nothing on joining (a tutorial page would show it as a line): wait until
  // the server counts the user online in the room (the folded name), so messages reach them.
  const deadline = Date.now() + 15_000;
  while (!(await online(username, token))) {
    assert.ok(Date.now() < deadline, `${username} never joined ${ROOM.toLowerCase()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return user;
}

const log = (user) => user.page.locator('#log').inputValue();

async function waitForLine(user, line) {
  try {
    await user.page.waitForFunction((line) => document.querySelector('#log').value.split('\n').includes(line), line);
  } catch (e) {
    const frames = await user.page.evaluate(() => window.__frames);
    throw new Error(`${user.username}'s page never showed ${JSON.stringify(line)}:\n${await log(user)}\nframes: ${JSON.stringify(frames)}`, { cause: e });
  }
}

async function send(user, typedName, text) {
  await user.page.locator('#user').fill(typedName);
  await user.page.locator('#msg').fill(text);
  await user.page.locator('#send').click();
  assert.equal(await user.page.locator('#msg').inputValue(), '', 'the page clears its message box');
}

test("the Django tutorial's room page: two users exchange messages and see each other's names", async () => {
  const alice = await openRoomPage(`alice${stamp}`);
  const bob = await openRoomPage(`bob${stamp}`);

  // Alice types her own name in the page's username box; Bob types someone else's, which
  // Parley ignores: the line shows his account's name.
  const fromAlice = `hello from alice ${stamp}`;
  const fromBob = `hi alice, bob here ${stamp}`;
  await send(alice, alice.username, fromAlice);
  for (const user of [alice, bob]) await waitForLine(user, `${alice.username}: ${fromAlice}`);
  await send(bob, 'mallory', fromBob);
  for (const user of [alice, bob]) await waitForLine(user, `${bob.username}: ${fromBob}`);

  await screenshot(alice.page, '20-django-tutorial-alice');
  await screenshot(bob.page, '21-django-tutorial-bob');

  // Each page shows its own message (the tutorial echoes it back) and the other's, in order,
  // and nothing else: no line the page cannot read.
  const expected = [`${alice.username}: ${fromAlice}`, `${bob.username}: ${fromBob}`];
  for (const user of [alice, bob]) {
    const text = await log(user);
    const frames = await user.page.evaluate(() => window.__frames);
    const why = `${user.username}'s log:\n${text}\nframes: ${JSON.stringify(frames)}`;
    const lines = text.split('\n').filter(Boolean);
    assert.deepEqual(lines, expected, why);
    assert.ok(!text.includes('undefined'), `no "undefined" in the log: ${why}`);
    assert.ok(!text.includes('mallory'), `the typed user name is not shown: ${why}`);
    // Every copy of a message, the sender's own included, carries the tutorial's fields, in
    // the room whose name Parley folded to lower case.
    assert.deepEqual(frames.map((f) => [f.type, f.room, f.username, f.message]), [
      ['message', ROOM.toLowerCase(), alice.username, fromAlice],
      ['message', ROOM.toLowerCase(), bob.username, fromBob],
    ], why);
    assert.deepEqual(user.errors, [], `no page errors on ${user.username}'s page`);
  }

  await alice.context.close();
  await bob.context.close();
});
