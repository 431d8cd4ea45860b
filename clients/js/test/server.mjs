// The real parley-server for the tests, as tests/browser/harness.mjs runs it: a child process
// on a free port with a fresh SQLite file and the in-memory layer, restartable on the same
// port and file (to kill it mid-chat).
//
// PARLEY_SERVER_BIN names the binary (scripts/js-tests.sh builds it and sets it).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Servers still running: killed when this process ends however it ends. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class TestServer {
  /** `env`: settings for this server (e.g. `{ PARLEY_ACCESS_TOKEN_TTL_SECS: '6' }`). */
  constructor(env = {}) {
    this.bin = process.env.PARLEY_SERVER_BIN;
    if (!this.bin || !existsSync(this.bin)) {
      throw new Error(`PARLEY_SERVER_BIN must name the built parley-server binary (got ${JSON.stringify(this.bin)}); run scripts/js-tests.sh`);
    }
    this.extraEnv = env;
    this.dir = mkdtempSync(join(process.env.PARLEY_TEST_DIR || tmpdir(), 'parley-js-'));
    this.port = 0;
    this.starts = 0;
    this.child = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    this.starts += 1;
    this.log = join(this.dir, `server-${this.starts}.log`);
    const out = openSync(this.log, 'a');
    const env = {
      ...process.env,
      PARLEY_BIND: `127.0.0.1:${this.port}`,
      PARLEY_DATABASE_URL: `sqlite://${join(this.dir, 'parley.sqlite3')}`,
      PARLEY_LAYER: 'memory',
      PARLEY_SECRET: 'js-client-tests-secret-0123456789abcdef0123456789',
      PARLEY_SECRET_FILE: join(this.dir, 'secret'),
      PARLEY_BCRYPT_COST: '4',
      PARLEY_AUTH_RATE: '0',
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...this.extraEnv,
    };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    const child = spawn(this.bin, [], { cwd: this.dir, env, stdio: ['ignore', out, out] });
    this.child = child;
    live.add(child);
    let exited = null;
    child.on('exit', (code, signal) => {
      live.delete(child);
      exited = { code, signal };
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`parley-server exited during start-up (${JSON.stringify(exited)}):\n${this.tail()}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`parley-server did not answer /healthz within 60 s:\n${this.tail()}`);
  }

  /** Ends the server abruptly (SIGKILL), as a crash would. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    this.child = null;
  }

  /** Stops the server and removes its files (keeps them when the test failed). */
  async stop({ keep = false } = {}) {
    await this.kill();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }

  tail(lines = 30) {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** Waits until `check()` is truthy (polling), failing with `what` after `timeoutMs`. */
export async function waitFor(check, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
