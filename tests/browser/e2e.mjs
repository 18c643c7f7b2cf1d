// End-to-end test of examples/web against a real authd, in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; no downloaded browser).
//
// It starts authd (embedded SQLite in a temp dir, 4 s access tokens), serves examples/web from two
// origins (one in authd's CORS allowlist, one not), and checks in the browser: signup, logout,
// login, GET /me, that the refresh token never reaches the page's JavaScript, a silent refresh
// after the access token expired (one refresh shared by two concurrent 401s), a reload restoring
// the session from the cookie, logout, a server-side revocation ending in the signed-out state, a
// login with a second factor (the page's MFA step), sign-in through a fake OpenID Connect provider
// (the page's provider button, the round trip, the fragment; a refusal; an address that has an
// account, linked after its login, then the provider's sign-in with the second step), CORS
// (preflights, and a page on a foreign origin that cannot log in), and passkeys (adding one,
// signing in with it alone and as a second step, on localhost with a virtual authenticator). The
// page runs @authd/client (clients/typescript) from examples/web/vendor/authd-client/: this also
// checks that package in a real browser.
//
// Usage: tests/browser/run.sh (or node tests/browser/e2e.mjs after npm ci --prefix tests/browser).
// Environment: AUTHD_BIN (default target/debug/authd), AUTHD_CONFIG_DIR (default ./config),
// CHROMIUM_PATH (default /usr/bin/chromium), E2E_ARTIFACTS_DIR (keep screenshots and authd's
// log there), E2E_TIMEOUT_MS (default 120000).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// The fake OpenID Connect provider the client's tests use too: plain JavaScript, node: modules only.
import { person, startOidcProvider } from '../../clients/typescript/test/support/oidc-provider.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WEB_DIR = path.join(ROOT, 'examples', 'web');
const AUTHD_BIN = path.resolve(ROOT, process.env.AUTHD_BIN || 'target/debug/authd');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = process.env.E2E_ARTIFACTS_DIR ? path.resolve(process.env.E2E_ARTIFACTS_DIR) : null;
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 120_000);
const ACCESS_TTL_SECONDS = 4;
// The step-up authd's window for sensitive actions: short, so that a sign-in can grow old.
const REAUTHENTICATION_SECONDS = 3;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // Without these Chromium keeps trying to reach Google and hangs on a closed network.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
let checks = 0;
let currentStep = 'setup';

function step(name) {
  currentStep = name;
  console.log(`[${elapsed()}] ${name}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  checks += 1;
}

function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${message}: expected ${e}, got ${a}`);
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

// ---- cleanup: everything started registers how to stop it; runs once, in reverse order ------

const cleanups = [];
let cleaning = null;

function cleanup() {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await Promise.race([fn(), sleep(8000)]);
      } catch (e) {
        console.error(`cleanup: ${e.message}`);
      }
    }
  })();
  return cleaning;
}

let finishing = false;

// Ends the run exactly once: the first of success, failure, global timeout or signal wins.
async function finish(error) {
  if (finishing) return;
  finishing = true;
  if (error) {
    console.error(`\nFAIL during "${currentStep}" after ${elapsed()}: ${error.stack || error}`);
    await onFailure?.().catch((e) => console.error(`(collecting failure details: ${e.message})`));
  }
  await cleanup();
  if (!error) console.log(`\nPASS: ${checks} checks in ${elapsed()}`);
  process.exit(error ? 1 : 0);
}

let onFailure = null;
setTimeout(() => finish(new Error(`global timeout: the test took over ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => finish(new Error(`interrupted by ${signal}`)));
}
process.on('unhandledRejection', (e) => finish(e));

// ---- plain HTTP from Node (no browser, so Origin can be set freely) --------------------------

function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method,
        headers: payload ? { 'Content-Type': 'application/json', ...headers } : headers,
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => {
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---- a tiny static server for examples/web ------------------------------------------------

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.png': 'image/png' };

async function serveExample(label) {
  const server = http.createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    const file = path.join(WEB_DIR, path.normalize(pathname.endsWith('/') ? `${pathname}index.html` : pathname));
    try {
      if (!['GET', 'HEAD'].includes(req.method) || !file.startsWith(WEB_DIR + path.sep)) throw new Error('no');
      const data = await fsp.readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : data);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  console.log(`  ${label}: ${origin}`);
  return origin;
}

// ---- authd ------------------------------------------------------------------------------

// `apiHost`: the name the page calls authd by (it listens on 127.0.0.1 either way).
async function startAuthd(tmp, allowedOrigin, settings = {}, apiHost = '127.0.0.1') {
  check(fs.existsSync(AUTHD_BIN), `authd binary ${AUTHD_BIN} exists (build it with cargo build, or set AUTHD_BIN)`);
  const port = await freePort();
  const api = `http://${apiHost}:${port}`;
  // Only what this test sets: no DATABASE_URL/REDIS_URL (embedded SQLite + in-process state),
  // no seed variables or AUTHD_* from the caller's shell, except AUTHD_CONFIG_DIR (to pair a
  // binary with the config/ it was built with).
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => k === 'AUTHD_CONFIG_DIR' || !/^(AUTHD_.*|NODE_ENV|DATABASE_URL|REDIS_URL|PORT|JWT_SECRET|FRONTEND_URL|RATE_LIMIT_.*|DB_POOL_SIZE|RUST_LOG)$/.test(k),
    ),
  );
  Object.assign(env, {
    // test: production rules (no example secrets: random ones below) with cheap argon2 parameters.
    AUTHD_ENV: 'test',
    AUTHD__SERVER__HOST: '127.0.0.1',
    AUTHD__SERVER__PORT: String(port),
    AUTHD__SERVER__SHUTDOWN_TIMEOUT_SECONDS: '2',
    AUTHD__DATABASE__SQLITE_PATH: path.join(tmp, 'authd.db'),
    AUTHD__MAIL__FILE_DIR: path.join(tmp, 'outbox'),
    AUTHD__TOKENS__JWT_SECRET: crypto.randomBytes(32).toString('hex'),
    AUTHD__TOKENS__REFRESH_SECRET: crypto.randomBytes(32).toString('hex'),
    // The refresh cookie keeps the production flags, Secure included (on outside development):
    // Chromium counts http://127.0.0.1 as potentially trustworthy, so it stores and sends a
    // Secure cookie there although the connection is plain http.
    AUTHD__TOKENS__ACCESS_TTL_SECONDS: String(ACCESS_TTL_SECONDS),
    AUTHD__TOKENS__LEEWAY_SECONDS: '0',
    AUTHD__RATE_LIMIT__GENERAL_MAX: '10000',
    AUTHD__RATE_LIMIT__AUTH_MAX: '1000',
    AUTHD__HTTP__CORS_ALLOWED_ORIGINS: allowedOrigin,
    AUTHD__LOG__LEVEL: 'info',
    // The base of the provider callback URL: this authd.
    AUTHD__OAUTH__CALLBACK_BASE_URL: api,
    ...settings,
  });
  const logPath = path.join(tmp, 'authd.log');
  const log = fs.openSync(logPath, 'a');
  // cwd = the repository root: authd reads ./config/default.toml and ./config/test.toml.
  const child = spawn(AUTHD_BIN, [], { cwd: ROOT, env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  child.on('error', (e) => (exited = { error: e.message }));
  cleanups.push(async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await Promise.race([exit, sleep(5000).then(() => false)]))) child.kill('SIGKILL');
    await exit;
  });

  await waitFor(
    async () => {
      if (exited) throw new Error(`authd exited at start (${JSON.stringify(exited)}):\n${tail(logPath)}`);
      return (await request('GET', `http://127.0.0.1:${port}/health/ready`).catch(() => null))?.status === 200;
    },
    30_000,
    'authd GET /health/ready = 200',
  );
  console.log(`  authd: ${api} (pid ${child.pid}, log ${logPath})`);
  return { api, logPath };
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- watching the page's calls to authd -----------------------------------------------------

// Records every request the page makes to the API: method, path, status (or failure), and the
// request and response bodies.
function watchApi(page, api) {
  const calls = [];
  const entry = (req) => calls.find((c) => c.request === req);
  page.on('request', (req) => {
    if (!req.url().startsWith(api)) return;
    calls.push({ request: req, method: req.method(), path: new URL(req.url()).pathname, sent: req.postData(), status: null });
  });
  page.on('response', (res) => {
    const call = entry(res.request());
    if (!call) return;
    call.status = res.status();
    call.headers = res.allHeaders().catch(() => ({}));
    call.body = res.text().then((t) => { try { return JSON.parse(t); } catch { return t; } }, () => null);
  });
  page.on('requestfailed', (req) => {
    const call = entry(req);
    if (call) call.failure = req.failure()?.errorText ?? 'failed';
  });
  return {
    mark: () => calls.length,
    // The calls since `mark`, once each has its answer or failure (DevTools events can trail
    // what the page already shows).
    async since(mark = 0) {
      await waitFor(() => calls.slice(mark).every((c) => c.status !== null || c.failure), 5000, 'the page\'s calls to finish');
      return calls.slice(mark);
    },
    all: () => calls,
  };
}

// Fills the page's login form and submits it (the caller waits for what follows).
async function submitLogin(page, email, password) {
  await page.fill('#login-form [name=email]', email);
  await page.fill('#login-form [name=password]', password);
  await page.click('#login-form button');
}

const show = (calls) => calls.map((c) => `${c.method} ${c.path} ${c.status ?? c.failure ?? 'pending'}`).join(', ');
const of = (calls, method, p) => calls.filter((c) => c.method === method && c.path === p);

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from authd's base32 secret: what an authenticator app shows.
function totp(secret) {
  let bits = '';
  for (const ch of secret.replace(/=+$/, '')) bits += 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000)));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  return String((mac.readUInt32BE(mac[19] & 0x0f) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
const statuses = (calls, method, p) => of(calls, method, p).map((c) => c.status ?? c.failure);

// The whole V8 heap of the page (a heap snapshot through the DevTools protocol), as text.
async function heapText(page) {
  const cdp = await page.context().newCDPSession(page);
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  await cdp.send('HeapProfiler.disable');
  await cdp.detach();
  return chunks.join('');
}

// ---- the test ----------------------------------------------------------------------------

async function main() {
  step('setup');
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'authd-e2e-'));
  cleanups.push(async () => {
    if (ARTIFACTS) await fsp.copyFile(path.join(tmp, 'authd.log'), path.join(ARTIFACTS, 'authd.log')).catch(() => {});
    await fsp.rm(tmp, { recursive: true, force: true });
  });
  if (ARTIFACTS) await fsp.mkdir(ARTIFACTS, { recursive: true });
  const shots = ARTIFACTS ?? tmp;

  const allowed = await serveExample('page origin (in the CORS allowlist)');
  const foreign = await serveExample('foreign origin (not allowed)');
  // The provider's URLs say `localhost`: another *site* than the page and authd (127.0.0.1), as a
  // real provider is, so the browser applies its cross-site cookie rules to the round trip.
  const provider = await startOidcProvider({ publicHost: 'localhost' });
  cleanups.push(() => provider.stop());
  console.log(`  OpenID Connect provider: ${provider.issuer}`);
  const { api, logPath } = await startAuthd(tmp, allowed, {
    ...provider.authdSettings({ name: 'fake', displayName: 'Fake ID' }),
    // Where the round trip may return: authd's default is the origin of app.frontend_url, so
    // the page's origin becomes app.frontend_url. Passkeys are off: their relying party (the
    // host of app.frontend_url by default) cannot be an IP address.
    AUTHD__APP__FRONTEND_URL: allowed,
    AUTHD__AUTH__PASSKEYS__ENABLED: 'false',
  });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  cleanups.push(() => browser.close());
  console.log(`  chromium ${browser.version()}`);

  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const traffic = watchApi(page, api);
  onFailure = async () => {
    console.error(`\nrequests from the page: ${show(traffic.all())}`);
    console.error(`page status: ${await page.textContent('#status', { timeout: 1000 }).catch(() => '?')}; ` +
      `error: ${await page.textContent('#error', { timeout: 1000 }).catch(() => '?')}`);
    if (ARTIFACTS) await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true, timeout: 5000 }).catch(() => {});
    console.error(`\nauthd log (last lines):\n${tail(logPath)}`);
  };

  const status = () => page.getAttribute('#status', 'data-state');
  const waitState = (state) => page.waitForSelector(`#status[data-state="${state}"]`);
  const refreshCookie = async (ctx = context) => (await ctx.cookies(`${api}/auth/refresh`)).find((c) => c.name === 'refresh_token');
  const lastAccessToken = async () => {
    for (const c of [...traffic.all()].reverse()) {
      const body = c.status === 200 || c.status === 201 ? await c.body : null;
      if (body?.accessToken) return body.accessToken;
    }
    throw new Error('no access token was ever answered');
  };

  const email = `e2e-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const password = `violet ${crypto.randomBytes(4).toString('hex')} harbour tangerine`;

  step('open the page: no session yet, so the page is signed out');
  const modules = [];
  page.on('response', (res) => res.url().startsWith(`${allowed}/vendor/`) && modules.push(`${new URL(res.url()).pathname} ${res.status()}`));
  await page.goto(`${allowed}/?api=${encodeURIComponent(api)}`);
  await waitState('signed-out');
  check(['index.js', 'client.js', 'errors.js'].every((m) => modules.includes(`/vendor/authd-client/${m} 200`)), `the page runs @authd/client from vendor/authd-client/ (${modules.join(', ')})`);
  checkEqual(statuses(await traffic.since(), 'POST', '/auth/refresh'), [401], 'the page tries to restore a session once');
  checkEqual(await page.textContent('#api'), api, 'the page uses the ?api= base URL');

  step('sign up');
  let mark = traffic.mark();
  await page.fill('#signup-form [name=name]', 'E2E Tester');
  await page.fill('#signup-form [name=email]', email);
  await page.fill('#signup-form [name=password]', password);
  await page.click('#signup-form button');
  await waitState('signed-in');
  check((await page.textContent('#status')).includes(email), 'the status names the signed-up user');
  const [signup] = of(await traffic.since(mark), 'POST', '/auth/signup');
  checkEqual(signup.status, 201, 'signup status');
  check(!signup.sent.includes('tokenTransport'), `the page does not ask for the refresh token in a body: ${signup.sent}`);
  check(!('refreshToken' in (await signup.body)), 'the signup answer has no refreshToken');
  const setCookie = (await signup.headers)['set-cookie'] ?? '';
  check(/refresh_token=[^;]+;/.test(setCookie) && ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/auth'].every((f) => setCookie.includes(f)), `signup sets the HttpOnly Secure SameSite=Strict cookie: ${setCookie.replace(/=[^;]+/, '=<redacted>')}`);
  check((await page.inputValue('#signup-form [name=password]')) === '', 'the password field is cleared after signing in');

  step('log out, then log in');
  await page.click('#logout');
  await waitState('signed-out');
  mark = traffic.mark();
  await submitLogin(page, email, password);
  await waitState('signed-in');
  const loggedInAt = Date.now();
  const [login] = of(await traffic.since(mark), 'POST', '/auth/login');
  checkEqual(login.status, 200, 'login status');
  const loginBody = await login.body;
  check(!login.sent.includes('tokenTransport') && !('refreshToken' in loginBody), 'login: no refresh token asked for or answered in the body');
  checkEqual(loginBody.expiresIn, ACCESS_TTL_SECONDS, 'expiresIn is the configured access-token lifetime');

  step('GET /me (and /auth/sessions) with the fresh access token');
  mark = traffic.mark();
  await page.click('#load');
  await page.waitForFunction((e) => document.querySelector('#profile').textContent.includes(e), email);
  checkEqual((await traffic.since(mark)).map((c) => `${c.method} ${c.path} ${c.status}`).sort(), ['GET /auth/sessions 200', 'GET /me 200'], 'calls with a valid token: no refresh');
  const profile = JSON.parse(await page.textContent('#profile'));
  checkEqual([profile.email, profile.name], [email, 'E2E Tester'], 'the profile shown');
  check((await page.locator('#sessions li').count()) >= 1, 'the sessions list is shown');
  const screenshot = path.join(shots, 'after-login.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`  screenshot: ${screenshot}`);

  step('the refresh token is nowhere the page can read');
  async function checkRefreshTokenHidden(label) {
    const cookie = await refreshCookie();
    check(cookie?.value, `${label}: the browser holds the refresh_token cookie for the API`);
    check(cookie.httpOnly, `${label}: the cookie is HttpOnly`);
    checkEqual([cookie.sameSite, cookie.path, cookie.secure], ['Strict', '/auth', true], `${label}: cookie SameSite, Path, Secure`);
    const seen = await page.evaluate(() => {
      // Cookies are not scoped by port, so a readable cookie of the API on 127.0.0.1 with
      // Path=/auth would show here once the document's path is under /auth.
      const home = location.pathname + location.search;
      history.replaceState(null, '', '/auth/probe');
      const cookie = document.cookie;
      history.replaceState(null, '', home);
      const dump = (s) => JSON.stringify(Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)])));
      return { cookie, local: dump(localStorage), session: dump(sessionStorage) };
    });
    check(!seen.cookie.includes('refresh_token') && !seen.cookie.includes(cookie.value), `${label}: document.cookie does not show the refresh token (${seen.cookie || 'empty'})`);
    checkEqual([seen.local, seen.session], ['{}', '{}'], `${label}: localStorage and sessionStorage are empty`);
    // Every string in the page's JavaScript heap: the access token must be there (it lives in
    // memory: this proves the search works), the refresh token must not.
    const heap = await heapText(page);
    check(heap.includes(await lastAccessToken()), `${label}: the access token is in the page heap (positive control)`);
    check(!heap.includes(cookie.value), `${label}: the refresh token is nowhere in the page's JavaScript heap`);
    return cookie.value;
  }
  const firstRefreshToken = await checkRefreshTokenHidden('after login');

  step(`wait for the ${ACCESS_TTL_SECONDS} s access token to expire, then call: one silent refresh`);
  await sleep(Math.max(0, loggedInAt + ACCESS_TTL_SECONDS * 1000 + 1500 - Date.now()));
  mark = traffic.mark();
  await page.click('#load');
  await waitFor(
    () => ['/me', '/auth/sessions'].every((p) => statuses(traffic.all().slice(mark), 'GET', p).includes(200)),
    10_000,
    'GET /me and GET /auth/sessions to succeed after a refresh',
  );
  let calls = await traffic.since(mark);
  checkEqual(statuses(calls, 'GET', '/me'), [401, 200], `GET /me: expired, then retried (${show(calls)})`);
  checkEqual(statuses(calls, 'GET', '/auth/sessions'), [401, 200], `GET /auth/sessions: expired, then retried (${show(calls)})`);
  checkEqual((await of(calls, 'GET', '/me')[0].body).code, 'token_expired', 'the first 401 is token_expired');
  checkEqual(statuses(calls, 'POST', '/auth/refresh'), [200], `two concurrent 401s share ONE refresh (${show(calls)})`);
  const [refresh] = of(calls, 'POST', '/auth/refresh');
  check(!refresh.sent, 'the refresh request has no body (the cookie carries the token)');
  check(!('refreshToken' in (await refresh.body)), 'the refresh answer has no refreshToken');
  checkEqual(await status(), 'signed-in', 'still signed in after the silent refresh');
  checkEqual(await page.textContent('#error'), '', 'no error shown');
  const rotated = await checkRefreshTokenHidden('after the refresh');
  check(rotated !== firstRefreshToken, 'the refresh rotated the cookie');

  step('reload: the in-memory access token is gone, the cookie restores the session');
  mark = traffic.mark();
  await page.reload();
  await waitState('signed-in');
  calls = await traffic.since(mark);
  checkEqual(show(calls.filter((c) => c.path !== '/auth/oauth/providers')), 'POST /auth/refresh 200, GET /me 200', 'a reload refreshes once, then loads the user');
  checkEqual(statuses(calls, 'GET', '/auth/oauth/providers'), [200], 'and lists the providers once, for its buttons');

  step('log out: the session ends and the page is signed out');
  const tokenBeforeLogout = await lastAccessToken();
  mark = traffic.mark();
  await page.click('#logout');
  await waitState('signed-out');
  checkEqual(statuses(await traffic.since(mark), 'POST', '/auth/logout'), [200], 'logout status');
  check(!(await refreshCookie()), 'logout cleared the refresh cookie');
  const denied = await request('GET', `${api}/me`, { headers: { Authorization: `Bearer ${tokenBeforeLogout}` } });
  checkEqual([denied.status, denied.json?.code], [401, 'token_invalid'], 'the access token is denied at once after logout');
  mark = traffic.mark();
  await page.click('#load');
  await page.waitForFunction(() => document.querySelector('#error').textContent !== '');
  calls = await traffic.since(mark);
  checkEqual(statuses(calls, 'GET', '/me'), [401], `GET /me fails after logout (${show(calls)})`);
  checkEqual(statuses(calls, 'POST', '/auth/refresh'), [401], 'and so does the one refresh attempt');
  checkEqual(await status(), 'signed-out', 'the page shows the signed-out state');

  step('a session revoked elsewhere (logout-all): the next call fails to refresh, the page signs out');
  await submitLogin(page, email, password);
  await waitState('signed-in');
  const revoked = await request('POST', `${api}/auth/logout-all`, { headers: { Authorization: `Bearer ${await lastAccessToken()}` } });
  checkEqual(revoked.status, 200, `logout-all from another client (${revoked.text})`);
  mark = traffic.mark();
  await page.click('#load');
  await waitState('signed-out');
  calls = await traffic.since(mark);
  checkEqual(statuses(calls, 'POST', '/auth/refresh'), [401], `one refresh, refused (${show(calls)})`);
  checkEqual((await of(calls, 'GET', '/me')[0].body).code, 'token_invalid', 'the revoked session\'s access token is invalid');
  check((await page.textContent('#message')).includes('session has ended'), 'the page says the session ended');
  check(!(await refreshCookie()), 'authd cleared the dead refresh cookie');

  step('an account with a second factor: the page asks for it, and a recovery code signs in');
  const mfaEmail = `e2e-mfa-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const created = await request('POST', `${api}/auth/signup`, { body: { email: mfaEmail, password } });
  checkEqual(created.status, 201, `signup from Node (${created.text})`);
  const bearer = { Authorization: `Bearer ${created.json.accessToken}` };
  const enrolment = await request('POST', `${api}/me/mfa/totp`, { headers: bearer });
  const confirmed = await request('POST', `${api}/me/mfa/totp/confirm`, { headers: bearer, body: { code: totp(enrolment.json?.secret ?? '') } });
  checkEqual(confirmed.status, 200, `TOTP enrolled from Node (${enrolment.text} ${confirmed.text})`);
  mark = traffic.mark();
  await submitLogin(page, mfaEmail, password);
  await page.waitForSelector('#mfa-form', { state: 'visible' });
  check((await page.textContent('#mfa-methods')).includes('totp'), 'the page names the accepted methods');
  checkEqual(await status(), 'signed-out', 'no session before the second step');
  await page.fill('#mfa-form [name=code]', confirmed.json.recoveryCodes[0]);
  await page.click('#mfa-form button');
  await waitState('signed-in');
  check((await page.textContent('#status')).includes(mfaEmail), 'signed in as the MFA account');
  calls = await traffic.since(mark);
  checkEqual(show(calls), 'POST /auth/login 200, POST /auth/mfa/verify 200', 'login answered mfaRequired, the second step signed in');
  checkEqual((await calls[0].body).mfaRequired, true, 'the login answer asked for the second factor');
  await page.click('#logout');
  await waitState('signed-out');

  // ---- sign-in with the provider ----
  const pageUrl = `${allowed}/?api=${encodeURIComponent(api)}`;
  checkEqual(page.url(), pageUrl, 'the page is at its own URL');
  const providerButton = '#provider-buttons button[data-provider="fake"]';
  const callbackPath = '/auth/oauth/fake/callback';
  // Clicks the provider's button and waits until the browser is back on the page (authd's
  // callback answered); the URLs of the top-level navigations on the way.
  async function roundTrip() {
    const documents = [];
    const onDocument = (req) => req.isNavigationRequest() && req.frame() === page.mainFrame() && documents.push(req.url());
    page.on('request', onDocument);
    const [callback] = await Promise.all([
      page.waitForResponse((res) => new URL(res.url()).pathname === callbackPath),
      page.click(providerButton),
    ]);
    await page.waitForURL((url) => url.origin === allowed);
    page.off('request', onDocument);
    return { documents, location: callback.headers().location };
  }

  step('sign in with the provider: the page\'s button, the round trip, signed in as its user, no token in any URL');
  checkEqual(await page.locator('#provider-buttons button').allTextContents(), ['Sign in with Fake ID'], 'one button per provider, named by its displayName');
  check(await page.isVisible('#providers'), 'the providers box is shown');
  const someone = person(`e2e-provider-${crypto.randomBytes(4).toString('hex')}@example.com`, { name: 'Provider Person' });
  provider.signsIn(someone);
  mark = traffic.mark();
  let trip = await roundTrip();
  await waitState('signed-in');
  check((await page.textContent('#status')).includes(someone.email), `signed in as the provider's user (${await page.textContent('#status')})`);
  checkEqual(trip.documents.map((u) => new URL(u).origin), [api, provider.issuer, api, allowed], 'the browser went page -> authd start -> provider (another site) -> authd callback -> page');
  checkEqual(new URL(trip.documents[0]).searchParams.get('returnTo'), pageUrl, 'returnTo is the page\'s own URL');
  const asked = new URL(trip.documents[1]).searchParams;
  checkEqual([asked.get('code_challenge_method'), asked.get('redirect_uri')], ['S256', `${api}${callbackPath}`], 'authd sent the browser to the provider with PKCE and its callback');
  checkEqual(trip.location, `${pageUrl}#status=signed_in`, 'the callback sends the browser back with the status alone in the fragment');
  calls = await traffic.since(mark);
  const [startCall] = of(calls, 'GET', '/auth/oauth/fake/start');
  const flowCookie = ((await startCall.headers)['set-cookie'] ?? '').split('\n').find((l) => l.startsWith('oauth_flow='));
  check(flowCookie && ['HttpOnly', 'SameSite=None', 'Secure', 'Path=/auth/oauth'].every((f) => flowCookie.includes(f)), `the start sets the oauth_flow cookie for the cross-site return: ${flowCookie?.replace(/=[^;]+/, '=<redacted>')}`);
  checkEqual(statuses(calls, 'POST', '/auth/refresh'), [200], `back on the page: one refresh with the cookie authd set (${show(calls)})`);
  checkEqual(statuses(calls, 'GET', '/me'), [200], 'then the user');
  checkEqual([page.url(), await page.evaluate(() => location.hash)], [pageUrl, ''], 'the fragment left the address bar');
  const providerSessionToken = await lastAccessToken();
  const providerRefresh = await refreshCookie();
  for (const url of [...trip.documents, trip.location, page.url()]) {
    check(!url.includes(providerSessionToken) && !url.includes(providerRefresh.value), `no token in ${url.replace(/([?&#](state|code|nonce|code_challenge)=)[^&]+/g, '$1…')}`);
  }
  check(!(await context.cookies(api)).some((c) => c.name === 'oauth_flow'), 'the oauth_flow cookie is cleared');
  await checkRefreshTokenHidden('after the provider sign-in');
  mark = traffic.mark();
  await page.click('#load');
  await page.waitForFunction((e) => document.querySelector('#profile').textContent.includes(e), someone.email);
  const providerProfile = JSON.parse(await page.textContent('#profile'));
  checkEqual([providerProfile.name, providerProfile.emailVerified], ['Provider Person', true], 'the account has the provider\'s name and verified address');
  await page.click('#logout');
  await waitState('signed-out');

  step('the provider refuses: the page says so and stays signed out');
  provider.denyNext();
  trip = await roundTrip();
  await page.locator('#error', { hasText: 'oauth_cancelled' }).waitFor();
  check((await page.textContent('#error')).includes('cancelled at the provider'), `the page explains the error: ${await page.textContent('#error')}`);
  checkEqual(trip.location, `${pageUrl}#status=error&error=oauth_cancelled`, 'the callback reports the refusal in the fragment');
  await waitState('signed-out');
  checkEqual(page.url(), pageUrl, 'the fragment left the address bar');
  check(!(await refreshCookie()), 'no refresh cookie');

  step('an address with an account: the page asks for its login and links the provider; then the provider\'s sign-in asks for the second factor');
  provider.signsIn(person(mfaEmail));
  trip = await roundTrip();
  checkEqual(trip.location.replace(/linkToken=[\w-]+/, 'linkToken=…'), `${pageUrl}#status=link_required&linkToken=…&email=${encodeURIComponent(mfaEmail)}&provider=fake`, 'link_required, with a link token and the provider');
  const linkCookie = (await context.cookies(`${api}/me/identities`)).find((c) => c.name === 'oauth_link');
  checkEqual(linkCookie && [linkCookie.httpOnly, linkCookie.sameSite, linkCookie.path], [true, 'Strict', '/me/identities'], 'the offer is bound to this browser by an HttpOnly oauth_link cookie for POST /me/identities only');
  await page.locator('#message', { hasText: 'already has an account' }).waitFor();
  checkEqual([await status(), page.url()], ['signed-out', pageUrl], 'no session, and the link token left the address bar');
  mark = traffic.mark();
  await submitLogin(page, mfaEmail, password);
  await page.waitForSelector('#mfa-form', { state: 'visible' });
  await page.fill('#mfa-form [name=code]', confirmed.json.recoveryCodes[1]);
  await page.click('#mfa-form button');
  await page.locator('#link-question', { hasText: `Link your fake account ${mfaEmail}` }).waitFor();
  checkEqual(statuses(await traffic.since(mark), 'POST', '/me/identities'), [], 'signed in, the page asks before linking');
  await page.click('#link-yes');
  await page.locator('#message', { hasText: 'Linked your fake identity' }).waitFor();
  calls = await traffic.since(mark);
  checkEqual(statuses(calls, 'POST', '/me/identities'), [201], `after the login the page linked the identity (${show(calls)})`);
  await page.click('#logout');
  await waitState('signed-out');
  trip = await roundTrip();
  check(/#status=mfa_required&mfaToken=[\w-]+&methods=totp%2Crecovery_code&expiresIn=\d+$/.test(trip.location), 'the linked identity signs in to the account, which asks for its second factor');
  await page.waitForSelector('#mfa-form', { state: 'visible' });
  checkEqual([await status(), page.url()], ['signed-out', pageUrl], 'no session before the second step; the mfaToken left the address bar');
  check((await page.textContent('#status')).includes('provider'), 'the page says the provider signed in');
  await page.fill('#mfa-form [name=code]', confirmed.json.recoveryCodes[2]);
  await page.click('#mfa-form button');
  await waitState('signed-in');
  check((await page.textContent('#status')).includes(mfaEmail), 'signed in as the MFA account through the provider');
  await page.click('#logout');
  await waitState('signed-out');

  step('authd offers no provider: no buttons');
  const bare = await context.newPage();
  bare.on('pageerror', (e) => pageErrors.push(e.message));
  await bare.route(`${api}/auth/oauth/providers`, (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', headers: { 'Access-Control-Allow-Origin': allowed, 'Access-Control-Allow-Credentials': 'true' }, body: '[]' }),
  );
  const listed = bare.waitForResponse((res) => res.url() === `${api}/auth/oauth/providers`);
  await bare.goto(pageUrl);
  await listed;
  await bare.waitForSelector('#status[data-state="signed-out"]');
  checkEqual([await bare.isVisible('#providers'), await bare.locator('#provider-buttons button').count()], [false, 0], 'no providers box, no button');
  await bare.close();

  step('CORS preflights from Node');
  const preflight = (origin) =>
    request('OPTIONS', `${api}/auth/login`, {
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,authorization' },
    });
  const ok = await preflight(allowed);
  check(ok.status >= 200 && ok.status < 300, `preflight from the allowed origin passes: ${ok.status}`);
  checkEqual(ok.headers['access-control-allow-origin'], allowed, 'Access-Control-Allow-Origin');
  checkEqual(ok.headers['access-control-allow-credentials'], 'true', 'Access-Control-Allow-Credentials');
  check(/\bPOST\b/.test(ok.headers['access-control-allow-methods'] ?? ''), 'POST is an allowed method');
  check(/authorization/i.test(ok.headers['access-control-allow-headers'] ?? '') && /content-type/i.test(ok.headers['access-control-allow-headers'] ?? ''), 'Authorization and Content-Type are allowed headers');
  for (const [what, res] of [
    ['preflight', await preflight(foreign)],
    ['POST /auth/login', await request('POST', `${api}/auth/login`, { headers: { Origin: foreign }, body: { email, password } })],
  ]) {
    checkEqual(res.status, 403, `${what} from the foreign origin is refused`);
    check(!res.headers['access-control-allow-origin'], `${what} from the foreign origin: no Access-Control-Allow-Origin`);
    checkEqual([res.json?.code, res.json?.statusCode], ['origin_not_allowed', 403], `${what}: authd's error shape (${res.text})`);
    check(res.json.error && res.json.requestId && res.json.timestamp, `${what}: error, requestId, timestamp present`);
    check(!res.headers['set-cookie'], `${what}: no cookie set`);
  }

  step('in the browser, the page on the foreign origin cannot log in');
  const foreignContext = await browser.newContext();
  foreignContext.setDefaultTimeout(10_000);
  const foreignPage = await foreignContext.newPage();
  foreignPage.on('pageerror', (e) => pageErrors.push(e.message));
  const foreignNet = watchApi(foreignPage, api);
  await foreignPage.goto(`${foreign}/?api=${encodeURIComponent(api)}`);
  await foreignPage.waitForSelector('#status[data-state="signed-out"]');
  await foreignPage.fill('#login-form [name=email]', email);
  await foreignPage.fill('#login-form [name=password]', password);
  await foreignPage.click('#login-form button');
  await foreignPage.waitForFunction(() => document.querySelector('#error').textContent !== '');
  const [foreignLogin] = of(await foreignNet.since(), 'POST', '/auth/login');
  check(foreignLogin && foreignLogin.status === null && foreignLogin.failure, `the login fetch fails in the browser (${show(foreignNet.all())})`);
  checkEqual(await foreignPage.getAttribute('#status', 'data-state'), 'signed-out', 'the foreign page stays signed out');
  check(!(await foreignPage.isVisible('#providers')), 'no provider buttons there: authd did not list them');
  check(!(await refreshCookie(foreignContext)), 'no refresh cookie was stored');
  const direct = await foreignPage.evaluate((u) => fetch(`${u}/health/live`).then(() => 'answered', (e) => e.name), api);
  checkEqual(direct, 'TypeError', 'any fetch from the foreign origin fails');
  await foreignContext.close();

  await passkeys(browser, pageErrors);

  checkEqual(pageErrors, [], 'no uncaught errors in the page');
}

// Passkeys need a relying party that is a domain, and the page on it: here the page and authd
// are both called `localhost` (one site, so the SameSite=Strict refresh cookie still travels),
// and Chromium's virtual authenticator (DevTools protocol) stands in for Touch ID or a key.
async function passkeys(browser, pageErrors) {
  step('passkeys: a second authd and page on localhost, a virtual authenticator');
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'authd-e2e-passkeys-'));
  cleanups.push(() => fsp.rm(tmp, { recursive: true, force: true }));
  const origin = (await serveExample('passkey page origin')).replace('127.0.0.1', 'localhost');
  // The relying party is the host of app.frontend_url (localhost); its origin the only one allowed.
  const { api, logPath } = await startAuthd(tmp, origin, { AUTHD__APP__FRONTEND_URL: origin }, 'localhost');
  const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser, pageErrors);
  const traffic = watchApi(page, api);
  onFailure = async () => {
    console.error(`\nrequests from the passkey page: ${show(traffic.all())}`);
    console.error(`page error: ${await page.textContent('#error', { timeout: 1000 }).catch(() => '?')}`);
    console.error(`\nauthd log (last lines):\n${tail(logPath)}`);
  };
  const waitState = (state) => page.waitForSelector(`#status[data-state="${state}"]`);
  const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  const email = `e2e-passkey-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const password = `amber ${crypto.randomBytes(4).toString('hex')} lighthouse meadow`;

  await page.goto(`${origin}/?api=${encodeURIComponent(api)}`);
  await waitState('signed-out');
  await page.fill('#signup-form [name=email]', email);
  await page.fill('#signup-form [name=password]', password);
  await page.click('#signup-form button');
  await waitState('signed-in');

  step('passkeys: add one while signed in; it is the first factor, so recovery codes come with it');
  let mark = traffic.mark();
  await page.click('#add-passkey');
  await page.waitForFunction(() => document.querySelector('#message').textContent.includes('added'));
  checkEqual(show(await traffic.since(mark)), 'POST /me/mfa/passkey-options 200, POST /me/mfa/passkeys 201', 'options, the authenticator, registration');
  const codes = (await page.textContent('#recovery-codes code')).trim().split(' ');
  check(await page.isVisible('#recovery-codes') && codes.length >= 8, `recovery codes shown once (${codes.length})`);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  checkEqual(credentials.length, 1, 'the authenticator holds one credential');
  checkEqual(credentials[0].rpId, 'localhost', 'for the relying party localhost');
  checkEqual(credentials[0].isResidentCredential, true, 'kept by the authenticator (discoverable), as registration asks');

  step('passkeys: sign in with the passkey alone');
  await page.click('#logout');
  await waitState('signed-out');
  mark = traffic.mark();
  await page.fill('#login-form [name=email]', email);
  await page.click('#passkey-login');
  await waitState('signed-in');
  let calls = await traffic.since(mark);
  checkEqual(show(calls), 'POST /auth/passkey/options 200, POST /auth/passkey/login 200', 'options, the authenticator, sign-in');
  let claims = claimsOf((await of(calls, 'POST', '/auth/passkey/login')[0].body).accessToken);
  check(claims.amr.includes('hwk') || claims.amr.includes('swk'), `amr names a passkey (${claims.amr})`);
  checkEqual(claims.aal, 2, 'a user-verified passkey is two factors');
  check((await context.cookies(`${api}/auth/refresh`)).some((c) => c.name === 'refresh_token' && c.httpOnly), 'the HttpOnly refresh cookie is set');

  step('passkeys: sign in with no address typed: the authenticator offers the passkey it keeps');
  await page.click('#logout');
  await waitState('signed-out');
  mark = traffic.mark();
  await page.click('#passkey-login');
  await waitState('signed-in');
  calls = await traffic.since(mark);
  checkEqual(show(calls), 'POST /auth/passkey/options 200, POST /auth/passkey/login 200', 'options, the authenticator, sign-in');
  const offered = of(calls, 'POST', '/auth/passkey/options')[0];
  checkEqual(offered.sent, '{}', 'no address sent');
  checkEqual(JSON.stringify((await offered.body).options.publicKey.allowCredentials), '[]', 'no credential listed');
  const named = await of(calls, 'POST', '/auth/passkey/login')[0].body;
  checkEqual(named.user.email, email, 'signed in to the account the passkey named');
  checkEqual(claimsOf(named.accessToken).aal, 2, 'two factors again');

  step('passkeys: the password now asks for a second step, and the passkey answers it');
  await page.click('#logout');
  await waitState('signed-out');
  mark = traffic.mark();
  await submitLogin(page, email, password);
  await page.waitForSelector('#mfa-passkey', { state: 'visible' });
  check((await page.textContent('#mfa-methods')).includes('passkey'), 'the second step offers the passkey');
  await page.click('#mfa-passkey');
  await waitState('signed-in');
  calls = await traffic.since(mark);
  checkEqual(show(calls), 'POST /auth/login 200, POST /auth/mfa/passkey-options 200, POST /auth/mfa/verify 200', 'login, options, the authenticator, the second step');
  claims = claimsOf((await of(calls, 'POST', '/auth/mfa/verify')[0].body).accessToken);
  check(claims.amr.includes('pwd') && claims.aal === 2, `password and passkey: aal 2 (${claims.amr})`);

  step('passkeys: the browser\'s own PublicKeyCredential.toJSON() is accepted too (what docs/api.md promises)');
  const direct = `http://127.0.0.1:${new URL(api).port}`;
  const other = await request('POST', `${direct}/auth/signup`, { body: { email: `e2e-tojson-${crypto.randomBytes(4).toString('hex')}@example.com`, password } });
  checkEqual(other.status, 201, `signup from Node (${other.text})`);
  const bearer = { Authorization: `Bearer ${other.json.accessToken}` };
  const started = await request('POST', `${direct}/me/mfa/passkey-options`, { headers: bearer });
  checkEqual(started.status, 200, `registration options (${started.text})`);
  const browserJson = await page.evaluate(async (options) => {
    const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey) });
    return credential.toJSON();
  }, started.json.options);
  const registered = await request('POST', `${direct}/me/mfa/passkeys`, { headers: bearer, body: { ceremonyId: started.json.ceremonyId, credential: browserJson } });
  checkEqual(registered.status, 201, `toJSON() registers (${registered.text})`);

  step('passkeys: authd refuses an assertion whose signature was altered, and accepts a fresh, intact one');
  const asked = await request('POST', `${direct}/auth/passkey/options`, { body: { email } });
  checkEqual(asked.status, 200, `passkey options from Node (${asked.text})`);
  const assertion = await page.evaluate(async (options) => {
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
    return credential.toJSON();
  }, asked.json.options);
  const signature = Buffer.from(assertion.response.signature, 'base64url');
  signature[signature.length - 1] ^= 1;
  const tampered = { ...assertion, response: { ...assertion.response, signature: signature.toString('base64url') } };
  const refused = await request('POST', `${direct}/auth/passkey/login`, { body: { ceremonyId: asked.json.ceremonyId, credential: tampered } });
  checkEqual([refused.status, refused.json?.code], [401, 'invalid_credentials'], `an altered signature is refused (${refused.text})`);
  const again = await request('POST', `${direct}/auth/passkey/options`, { body: { email } });
  const intact = await page.evaluate(async (options) => {
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey) });
    return credential.toJSON();
  }, again.json.options);
  const accepted = await request('POST', `${direct}/auth/passkey/login`, { body: { ceremonyId: again.json.ceremonyId, credential: intact } });
  checkEqual(accepted.status, 200, `the intact assertion signs in (${accepted.text})`);

  step('passkeys: with the authenticator emptied, the page cannot sign in and says why');
  await page.click('#logout');
  await waitState('signed-out');
  await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
  await page.fill('#login-form [name=email]', email);
  await page.click('#passkey-login');
  await page.waitForFunction(() => document.querySelector('#error').textContent !== '');
  checkEqual(await page.getAttribute('#status', 'data-state'), 'signed-out', 'no passkey on this device: still signed out');
  await context.close();
  await passkeyStepUp(browser, pageErrors, origin);
}

// A browser page with a virtual authenticator of its own (CTAP2, built in, resident keys, user
// verification), through the DevTools protocol.
async function pageWithAuthenticator(browser, pageErrors) {
  const context = await browser.newContext();
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { context, page, cdp, authenticatorId };
}

// Step-up with a passkey, on an authd of its own whose window for sensitive actions is short (so
// that a sign-in can grow old without hurrying the other steps), in a browser context of its own
// (its own cookies), with the client in the page.
async function passkeyStepUp(browser, pageErrors, origin) {
  step('passkeys: a sign-in grown old steps up with the passkey before a sensitive action (the client in the page)');
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'authd-e2e-step-up-'));
  cleanups.push(() => fsp.rm(tmp, { recursive: true, force: true }));
  const windowSeconds = REAUTHENTICATION_SECONDS;
  const settings = { AUTHD__APP__FRONTEND_URL: origin, AUTHD__AUTH__REAUTHENTICATION_SECONDS: String(windowSeconds) };
  const { api, logPath } = await startAuthd(tmp, origin, settings, 'localhost');
  const { context, page } = await pageWithAuthenticator(browser, pageErrors);
  onFailure = async () => console.error(`\nauthd log (last lines):\n${tail(logPath)}`);
  await page.goto(`${origin}/?api=${encodeURIComponent(api)}`);
  const account = { email: `e2e-step-up-${crypto.randomBytes(4).toString('hex')}@example.com`, password: `copper ${crypto.randomBytes(4).toString('hex')} orchard lantern` };
  const stepUp = await page.evaluate(async ({ api, account, wait }) => {
    const { AuthdClient } = await import('./vendor/authd-client/index.js');
    const client = new AuthdClient({ baseUrl: api });
    await client.signup(account);
    await client.registerPasskey({ name: 'step-up' });
    await client.logout();
    await client.signInWithPasskey(account.email);
    await new Promise((resolve) => setTimeout(resolve, wait));
    const attempt = () => client.request('POST', '/me/mfa/passkey-options').then(() => 'allowed', (e) => e.code);
    const before = await attempt();
    await client.reauthenticateWithPasskey();
    const after = await attempt();
    await client.logout();
    return { before, after };
  }, { api, account, wait: (windowSeconds + 1) * 1000 + 100 });
  checkEqual(stepUp, { before: 'reauthentication_required', after: 'allowed' }, 'refused when old, allowed after the passkey step-up');
  await context.close();
}

main().then(() => finish(), (e) => finish(e));
