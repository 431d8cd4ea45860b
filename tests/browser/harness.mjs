// Test harness for the browser tests: runs parley-server as a child process (and restarts it
// on demand), launches headless Chromium through playwright-core, and saves screenshots.
//
// Environment (set by scripts/browser-tests.sh):
//   PARLEY_SERVER_BIN   the built parley-server binary (required)
//   PARLEY_TEST_DIR     where each server gets a fresh directory for its SQLite file and log
//   CHROMIUM_PATH       the browser (default /usr/bin/chromium)
//   PARLEY_SCREENSHOTS  where screenshots go (default <repo>/target/browser-screenshots)
//   PARLEY_WEB_DIR      (development) serve the client's files (web/: the scripts, the style
//                       sheet) from this folder instead of the copies embedded in the binary

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

export const screenshotDir = process.env.PARLEY_SCREENSHOTS || join(repoRoot, 'target', 'browser-screenshots');

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** Access token lifetime given to the server under test. */
export const ACCESS_TTL_SECS = 30;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Servers still running: killed when this process ends however it ends, so a failed or
 *  interrupted run leaves no server behind. */
const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of liveChildren) child.kill('SIGKILL');
    process.exit(130);
  });
}

/** parley-server on a fixed port and a fixed SQLite file, so a restart keeps both. */
export class TestServer {
  /** `extraEnv`: settings for this server only (e.g. `{ PARLEY_PRESENCE_FANOUT_LIMIT: '1' }`). */
  constructor(extraEnv = {}) {
    this.extraEnv = extraEnv;
    this.bin = process.env.PARLEY_SERVER_BIN;
    if (!this.bin || !existsSync(this.bin)) {
      throw new Error(`PARLEY_SERVER_BIN must name the built parley-server binary (got ${JSON.stringify(this.bin)}); run scripts/browser-tests.sh`);
    }
    // A directory (database, log) of its own per server: a test file may start a second
    // server, and every file of a run shares PARLEY_TEST_DIR.
    this.dir = mkdtempSync(join(process.env.PARLEY_TEST_DIR || tmpdir(), 'parley-browser-'));
    this.child = null;
    this.port = 0;
    this.starts = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  env() {
    const env = {
      ...process.env,
      PARLEY_BIND: `127.0.0.1:${this.port}`,
      // A fresh SQLite file and the in-memory layer: never the suite's PostgreSQL or Redis.
      PARLEY_DATABASE_URL: `sqlite://${join(this.dir, 'parley.sqlite3')}`,
      PARLEY_LAYER: 'memory',
      PARLEY_SECRET: 'browser-tests-secret-0123456789abcdef0123456789',
      PARLEY_SECRET_FILE: join(this.dir, 'secret'),
      PARLEY_BCRYPT_COST: '4',
      // Short-lived access tokens, so the run exercises the client's silent refresh.
      PARLEY_ACCESS_TOKEN_TTL_SECS: String(ACCESS_TTL_SECS),
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...this.extraEnv,
    };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    return env;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    this.starts += 1;
    const log = openSync(join(this.dir, `server-${this.starts}.log`), 'a');
    // Run in the temporary directory, so no parley.toml of the developer's is picked up.
    this.child = spawn(this.bin, [], { cwd: this.dir, env: this.env(), stdio: ['ignore', log, log] });
    const child = this.child;
    liveChildren.add(child);
    child.on('exit', () => liveChildren.delete(child));
    let exited = null;
    child.on('exit', (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`parley-server exited during start-up (${JSON.stringify(exited)}):\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`parley-server did not answer /healthz within 60 s:\n${this.logTail()}`);
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

  /** Stops the server politely (SIGTERM), falling back to SIGKILL. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
    this.child = null;
  }

  logTail(lines = 40) {
    try {
      const text = readFileSync(join(this.dir, `server-${this.starts}.log`), 'utf8');
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  // Lets WebRTC use the loopback interface on a machine that has no other one.
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: install it (apt-get install chromium chromium-driver) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

const WEB_TYPES = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** The file under `webDir` that URL path `pathname` names (not the page itself), or null. */
function webFile(webDir, pathname) {
  if (pathname === '/' || pathname === '/index.html') return null;
  let name;
  try {
    name = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  // The client library lives in clients/js/src, served under /js/parley/.
  const inLibrary = name.startsWith(LIBRARY_PATH);
  const root = resolve(inLibrary ? libraryDir : webDir);
  const file = resolve(root, `.${inLibrary ? name.slice(LIBRARY_PATH.length - 1) : name}`);
  if (!file.startsWith(root + sep)) return null;
  try {
    return statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

/** The client library's modules (clients/js/src), served under this path. */
const LIBRARY_PATH = '/js/parley/';
const libraryDir = join(repoRoot, 'clients', 'js', 'src');

/** URL paths of the client's files in the repository's web/ (the scripts, the style sheet), the
 *  page itself aside, and of the client library's modules: what the server should serve
 *  besides `/`. */
export function webAssets() {
  const web = join(repoRoot, 'web');
  const library = readdirSync(libraryDir)
    .filter((name) => name.endsWith('.js') && !name.endsWith('.d.ts'))
    .map((name) => `${LIBRARY_PATH}${name}`);
  return readdirSync(web, { recursive: true })
    .map((name) => String(name).split(sep).join('/'))
    .filter((name) => name !== 'index.html' && !name.split('/').some((s) => s.startsWith('.')))
    .filter((name) => statSync(join(web, name)).isFile())
    .map((name) => `/${name}`)
    .concat(library)
    .sort();
}

/** One browser context (its own storage: one user) with a page on the app. Collects page
 *  errors and dialogs so tests can assert none happened. */
export async function openUser(browser, server, options = {}) {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1200, height: 800 },
    deviceScaleFactor: 1,
    isMobile: options.isMobile ?? false,
    hasTouch: options.isMobile ?? false,
    permissions: ['camera', 'microphone'],
  });
  const webDir = process.env.PARLEY_WEB_DIR;
  if (webDir) {
    // Development aid: serve the client from disk instead of the copy embedded in the binary,
    // so a client change needs no server rebuild. The default tests what the binary serves.
    // Not the document: Chromium treats a document fulfilled here as coming from nowhere and
    // then refuses its connections to the loopback server (Local Network Access checks).
    await context.route((url) => url.origin === server.url && webFile(webDir, url.pathname) !== null, (route) => {
      const file = webFile(webDir, new URL(route.request().url()).pathname);
      return route.fulfill({ path: file, contentType: WEB_TYPES[extname(file)] ?? 'application/octet-stream' });
    });
  }
  const page = await context.newPage();
  const user = { context, page, errors: [], dialogs: [], console: [] };
  page.on('pageerror', (e) => user.errors.push(String(e)));
  page.on('dialog', (d) => {
    user.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error') user.console.push(m.text());
  });
  page.setDefaultTimeout(options.timeout ?? 15_000);
  await page.goto(`${server.url}/`);
  return user;
}

export async function screenshot(page, name) {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: false });
}
