// The library against the real parley-server (test/server.mjs): REST login and refresh,
// chat between two clients, reconnect and catch-up after the server is killed mid-chat,
// sends retried under one client_id stored once, renewal on the open socket before the
// access token expires, typed errors. Every frame a client receives is checked against the
// protocol's JSON Schema.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { ApiError, AuthLost, Connection, FrameError, NotConnected, Session, tokenExpiry } from '../src/index.js';
import { serverFrameProblems } from './schema-check.mjs';
import { TestServer, waitFor } from './server.mjs';

const PASSWORD = 'correct horse battery';

/** A user's session and connection; records what it receives. */
async function user(server, name, options = {}) {
  const session = new Session({ baseUrl: server.url });
  await session.register(name, PASSWORD).catch((e) => {
    if (!(e instanceof ApiError && e.code === 'username_taken')) throw e;
  });
  await session.login(name, PASSWORD);
  const conn = new Connection({ session, WebSocket: options.WebSocket ?? WebSocket, backoffMinMs: 100, backoffMaxMs: 1_000, ...options.connection });
  const got = { messages: [], frames: [], closes: [], badFrames: [], caughtUp: [], renewed: [] };
  conn.on('message', (m) => got.messages.push(m));
  conn.on('frame', (f) => {
    got.frames.push(f);
    const found = serverFrameProblems(f);
    if (found.length) got.badFrames.push({ frame: f, found });
  });
  conn.on('close', (c) => got.closes.push(c.code));
  conn.on('caughtUp', (c) => got.caughtUp.push(c));
  conn.on('renewed', (r) => got.renewed.push(r));
  conn.start();
  await conn.ready();
  return { name, session, conn, got };
}

/** Creates a public room (REST); a name already taken is fine. */
async function room(u, name) {
  await u.session.request('POST', '/api/rooms', { name }).catch((e) => {
    if (!(e instanceof ApiError && e.status === 409)) throw e;
  });
}

const bodies = (u, room) => u.got.messages.filter((m) => m.room === room).map((m) => m.body);

function assertOnce(list, what) {
  const counts = new Map();
  for (const x of list) counts.set(x, (counts.get(x) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], `${what} delivered more than once`);
}

describe('against parley-server', () => {
  let server;
  const users = [];
  before(async () => {
    server = new TestServer();
    await server.start();
  });
  after(async () => {
    for (const u of users) u.conn.stop();
    await server.stop({ keep: process.exitCode !== undefined && process.exitCode !== 0 });
  });

  test('register, login, refresh rotates the pair, logout revokes it', async () => {
    const session = new Session({ baseUrl: server.url });
    await session.register('rita', PASSWORD);
    await assert.rejects(session.register('rita', PASSWORD), (e) => e instanceof ApiError && e.code === 'username_taken' && e.status === 409);
    await assert.rejects(session.login('rita', 'wrong password'), (e) => e instanceof ApiError && e.code === 'invalid_credentials' && e.status === 401);
    const first = { ...(await session.login('rita', PASSWORD)) };
    assert.equal(first.user.username, 'rita');
    const me = await session.request('GET', '/api/me');
    assert.equal((me.user ?? me).username, 'rita');
    const second = await session.refresh();
    assert.notEqual(second.refresh, first.refresh);
    // The rotated refresh token is dead (and reusing it revokes the family: a fresh login follows).
    const stale = new Session({ baseUrl: server.url, tokens: first });
    stale.tokens.access = 'expired';
    await assert.rejects(stale.refresh(), (e) => e instanceof AuthLost);
    await session.login('rita', PASSWORD);
    await session.logout();
    assert.equal(session.tokens, null);
    await assert.rejects(session.refresh(), (e) => e instanceof AuthLost);
  });

  test('two clients chat; each message arrives once, with the sender acknowledged', async () => {
    const alice = await user(server, 'alice');
    const bob = await user(server, 'bob');
    users.push(alice, bob);
    await room(alice, 'lobby');
    const joined = await alice.conn.join('Lobby');
    assert.equal(joined.room, 'lobby');
    await bob.conn.join('lobby');
    const ack = await alice.conn.send('lobby', 'hello bob');
    assert.equal(ack.type, 'message');
    assert.equal(ack.sender, 'alice');
    assert.ok(ack.client_id, 'sent with a client_id');
    await waitFor(() => bodies(bob, 'lobby').includes('hello bob'), 'bob to get hello');
    await bob.conn.send('lobby', 'hi alice');
    await waitFor(() => bodies(alice, 'lobby').includes('hi alice'), 'alice to get the reply');
    assertOnce(bodies(alice, 'lobby'), 'alice');
    assert.deepEqual(bodies(alice, 'lobby'), ['hello bob', 'hi alice']);
    assert.deepEqual(alice.got.badFrames, []);
    assert.deepEqual(bob.got.badFrames, []);
  });

  test('a refused frame is a typed error with the server code', async () => {
    const carol = await user(server, 'carol');
    users.push(carol);
    await assert.rejects(carol.conn.request({ type: 'join', room: 'not a room' }), (e) => e instanceof FrameError && e.code === 'invalid_room_name');
    await assert.rejects(carol.conn.request({ type: 'send', room: 'elsewhere', body: 'x' }), (e) => e instanceof FrameError && e.code === 'not_joined');
    // Refused for good: `send` does not retry a refusal.
    await carol.conn.join('lobby');
    await assert.rejects(carol.conn.send('lobby', '   '), (e) => e instanceof FrameError && e.code === 'invalid_field');
    assert.ok(carol.conn.open, 'an error does not close the socket');
  });

  test('a send waiting for a socket that never opens fails with NotConnected when stopped', async () => {
    // The session is valid, but nothing listens where the socket goes: it keeps retrying.
    const session = new Session({ baseUrl: server.url });
    await session.register('gina', PASSWORD);
    await session.login('gina', PASSWORD);
    const conn = new Connection({ session, WebSocket, url: 'ws://127.0.0.1:9/ws', backoffMinMs: 50, backoffMaxMs: 100 });
    await assert.rejects(conn.send('lobby', 'never started'), (e) => e instanceof NotConnected);
    conn.start();
    const waiting = conn.send('lobby', 'never sent');
    await waitFor(() => conn.state === 'reconnecting', 'the first failed attempt');
    conn.stop();
    await assert.rejects(waiting, (e) => e instanceof NotConnected);
    assert.equal(conn.state, 'offline');
  });

  test('the same client_id twice is stored once', async () => {
    const dave = await user(server, 'dave');
    users.push(dave);
    await room(dave, 'dup-room');
    await dave.conn.join('dup-room');
    const first = await dave.conn.send('dup-room', 'only once', { clientId: 'dave-fixed-1' });
    const again = await dave.conn.send('dup-room', 'only once', { clientId: 'dave-fixed-1' });
    assert.equal(again.id, first.id);
    const page = await dave.conn.history('dup-room', { limit: 100 });
    assert.equal(page.messages.filter((m) => m.client_id === 'dave-fixed-1').length, 1);
    assertOnce(dave.got.messages.map((m) => m.id), 'dave');
  });
});

test('a send whose acknowledgement is lost is retried with its client_id and stored once', async (t) => {
  const server = new TestServer();
  await server.start();
  // Drops the first acknowledgement of client_id `lost-ack`, as a network losing it would.
  let dropped = 0;
  class LosesOneAck extends WebSocket {
    set onmessage(fn) {
      super.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === 'message' && frame.client_id === 'lost-ack' && dropped === 0) {
          dropped += 1;
          return;
        }
        fn(event);
      };
    }

    get onmessage() {
      return super.onmessage;
    }
  }
  const frank = await user(server, 'frank', { WebSocket: LosesOneAck, connection: { requestTimeoutMs: 1_000 } });
  t.after(async () => {
    frank.conn.stop();
    await server.stop();
  });
  await room(frank, 'lossy');
  await frank.conn.join('lossy');
  const ack = await frank.conn.send('lossy', 'said once', { clientId: 'lost-ack' });
  assert.equal(dropped, 1, 'the first acknowledgement was lost');
  assert.equal(ack.client_id, 'lost-ack');
  const page = await frank.conn.history('lossy', { limit: 100 });
  assert.deepEqual(page.messages.map((m) => [m.id, m.client_id]), [[ack.id, 'lost-ack']], 'stored once');
  assert.deepEqual(bodies(frank, 'lossy'), ['said once'], 'delivered once');
});

/** A WebSocket whose "network" can be cut: while `down`, connecting fails. */
function cuttableWebSocket() {
  const net = { down: false };
  class Cuttable extends WebSocket {
    constructor(url) {
      if (net.down) throw new Error('network down');
      super(url);
    }
  }
  return { net, WebSocket: Cuttable };
}

test('the server killed mid-chat: sends are retried and stored once, the other client catches up', async (t) => {
  const server = new TestServer();
  await server.start();
  const cut = cuttableWebSocket();
  const alice = await user(server, 'alice');
  const bob = await user(server, 'bob', { WebSocket: cut.WebSocket });
  t.after(async () => {
    alice.conn.stop();
    bob.conn.stop();
    await server.stop();
  });
  await room(alice, 'lobby');
  await alice.conn.join('lobby');
  await bob.conn.join('lobby');
  for (const body of ['one', 'two', 'three']) await alice.conn.send('lobby', body);
  await waitFor(() => bodies(bob, 'lobby').length === 3, 'bob to get three messages');

  // Ten sends in flight; the server dies as soon as the first is acknowledged, so some are
  // stored without their acknowledgement reaching alice, and she sends those again.
  const firstAck = new Promise((resolve) => {
    const off = alice.conn.on('message', (m) => {
      if (m.sender === 'alice' && m.body === 'burst 0') {
        off();
        resolve();
      }
    });
  });
  const burst = Array.from({ length: 10 }, (_, i) => alice.conn.send('lobby', `burst ${i}`, { clientId: `burst-${i}` }));
  await firstAck;
  cut.net.down = true; // bob stays away until alice is done: he must catch up with history
  await server.kill();
  // What bob holds when his socket died: some of the burst reached him live, the rest did not.
  const heldAtKill = bodies(bob, 'lobby').length;
  const caughtUpBefore = bob.got.caughtUp.length;
  await server.start();
  const acks = await Promise.all(burst);
  assert.equal(new Set(acks.map((a) => a.id)).size, 10, 'ten distinct messages');
  for (const body of ['four', 'five']) await alice.conn.send('lobby', body);

  cut.net.down = false;
  bob.conn.retryNow();
  const expected = ['one', 'two', 'three', ...acks.map((a) => a.body), 'four', 'five'];
  await waitFor(() => bodies(bob, 'lobby').length >= expected.length, 'bob to catch up');
  assert.deepEqual(bodies(bob, 'lobby').slice().sort(), expected.slice().sort(), 'nothing lost, nothing twice');
  // Everything he missed came through the catch-up (`history` after the newest id he had).
  const caughtUp = bob.got.caughtUp.slice(caughtUpBefore).reduce((n, c) => n + c.count, 0);
  assert.equal(caughtUp, expected.length - heldAtKill, `caught up: ${JSON.stringify(bob.got.caughtUp)}`);
  assert.ok(caughtUp >= 2, 'at least the two messages sent while he was away');
  assert.ok(alice.got.closes.length >= 1 && bob.got.closes.length >= 1, 'both sockets dropped');

  // Stored once each, whatever was retried.
  const page = await alice.conn.history('lobby', { limit: 100 });
  const ids = page.messages.map((m) => m.client_id).filter((c) => c?.startsWith('burst-'));
  assert.equal(ids.length, 10);
  assert.equal(new Set(ids).size, 10);
  assertOnce(bodies(alice, 'lobby'), 'alice');
  assert.deepEqual(alice.got.badFrames, []);
  assert.deepEqual(bob.got.badFrames, []);
});

test('the socket is renewed before its access token expires, without reconnecting', async (t) => {
  // Six-second tokens: the server warns (`expiring`) halfway, at three seconds.
  const server = new TestServer({ PARLEY_ACCESS_TOKEN_TTL_SECS: '6' });
  await server.start();
  const erin = await user(server, 'erin');
  t.after(async () => {
    erin.conn.stop();
    await server.stop();
  });
  const firstExpiry = tokenExpiry(erin.conn.socketToken);
  await room(erin, 'lobby');
  await erin.conn.join('lobby');
  await waitFor(() => erin.got.renewed.length >= 1, 'a renewed frame', 20_000);
  assert.ok(erin.got.frames.some((f) => f.type === 'expiring'), 'the server warned first');
  assert.ok(erin.got.renewed[0].expires_at > firstExpiry, 'authorized past the first token');
  // Past the first token's expiry, the same socket still works.
  await waitFor(() => Date.now() > firstExpiry + 500, 'the first token to expire', 20_000);
  const ack = await erin.conn.send('lobby', 'still here');
  assert.equal(ack.body, 'still here');
  assert.deepEqual(erin.got.closes, [], 'the socket never closed');
  assert.deepEqual(erin.got.badFrames, []);
});

test('a guest session: an access token, no refresh, posts marked as a guest', async (t) => {
  const server = new TestServer({ PARLEY_GUESTS: 'true' });
  await server.start();
  const owner = await user(server, 'gwen');
  const session = new Session({ baseUrl: server.url });
  const tokens = await session.guest('Visitor');
  const conn = new Connection({ session, WebSocket, backoffMinMs: 100, backoffMaxMs: 1_000 });
  t.after(async () => {
    conn.stop();
    owner.conn.stop();
    await server.stop();
  });
  assert.equal(tokens.refresh, null);
  assert.equal(tokens.user.is_guest, true);
  assert.match(tokens.user.username, /^guest\.visitor\.[a-z0-9]{5}$/);
  // Nothing to renew it with, and nothing to revoke.
  await assert.rejects(session.refresh(), (e) => e instanceof AuthLost);
  await room(owner, 'hall');
  await owner.conn.join('hall');
  conn.start();
  await conn.ready();
  await conn.join('hall');
  const ack = await conn.send('hall', 'hello from a guest');
  assert.equal(ack.guest, true);
  await waitFor(() => owner.got.messages.some((m) => m.body === 'hello from a guest' && m.guest === true), 'the owner to see the marked message');
  // Guests may not make rooms: the server's typed refusal.
  await assert.rejects(session.request('POST', '/api/rooms', { name: 'guests-room' }), (e) => e instanceof ApiError && e.code === 'guest_not_allowed' && e.status === 403);
  await session.logout();
  assert.equal(session.tokens, null);
  assert.deepEqual(owner.got.badFrames, []);
});

test('a deactivated account loses its session: the socket closes with 4005 and is not reopened', async () => {
  const server = new TestServer();
  await server.start();
  try {
    const boss = await user(server, 'boss');
    // The first staff member comes from the command line (the server runs meanwhile).
    const promoted = spawnSync(server.bin, ['user', 'promote', 'boss'], {
      cwd: server.dir,
      env: {
        PATH: process.env.PATH,
        PARLEY_DATABASE_URL: `sqlite://${join(server.dir, 'parley.sqlite3')}`,
        PARLEY_LAYER: 'memory',
        PARLEY_SECRET: 'js-client-tests-secret-0123456789abcdef0123456789',
        PARLEY_BCRYPT_COST: '4',
      },
    });
    assert.equal(promoted.status, 0, String(promoted.stderr));
    const bob = await user(server, 'bob');
    let lost = null;
    bob.conn.on('authLost', (e) => { lost = e; });
    await boss.session.request('POST', '/api/admin/users/bob/deactivate', { reason: 'test' });
    await waitFor(() => lost !== null, 'the connection to report the lost session');
    assert.ok(lost instanceof AuthLost);
    assert.deepEqual(bob.got.closes, [4005]);
    await assert.rejects(bob.session.request('GET', '/api/me'), (e) => (e instanceof ApiError && e.code === 'account_disabled') || e instanceof AuthLost);
    boss.conn.stop();
    bob.conn.stop();
  } finally {
    await server.stop();
  }
});
