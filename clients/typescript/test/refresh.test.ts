// Refresh against a real authd with 2-second access tokens (no leeway): concurrent 401s share ONE
// POST /auth/refresh and each call is retried once; a retry that still gets 401 fails (no loop);
// a refused refresh signs out and calls onSessionEnded; body transport for non-browser clients.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';

import { AuthdClient, AuthdError, memoryStorage, type RefreshTokenStorage } from '@authd/client';

import { startAuthd, type Authd } from './support/authd.js';
import { authdError, newAccount } from './support/fixtures.js';
import { recordTraffic, show, type Exchange } from './support/traffic.js';

const ACCESS_TTL_SECONDS = 2;

let authd: Authd;
before(async () => {
  authd = await startAuthd({
    AUTHD__TOKENS__ACCESS_TTL_SECONDS: String(ACCESS_TTL_SECONDS),
    AUTHD__TOKENS__LEEWAY_SECONDS: '0',
  });
});
after(async () => {
  await authd?.stop();
});

/** Waits until an access token issued at `issuedAt` (performance.now()) has surely expired. */
async function untilExpired(issuedAt: number) {
  await sleep(Math.max(0, issuedAt + ACCESS_TTL_SECONDS * 1000 + 1100 - performance.now()));
}

/** A point a request stops at until the test opens it; `reached` resolves when one got there. */
function gate() {
  let open!: () => void;
  let arrive!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  return { open, reached, pass: () => (arrive(), opened) };
}

/** `traffic.fetch`, with the answers to the paths in `holds` held at their gate (after authd answered and the jar kept its cookies). */
function holding(traffic: ReturnType<typeof recordTraffic>, holds: Record<string, ReturnType<typeof gate>>): typeof fetch {
  return async (input, init) => {
    const res = await traffic.fetch(input, init);
    await holds[new URL(String(input)).pathname]?.pass();
    return res;
  };
}

const statuses = (exchanges: Exchange[], route: string) =>
  exchanges.filter((e) => `${e.method} ${e.path}` === route).map((e) => e.status);

describe('cookie transport (browsers)', () => {
  test('5 concurrent calls after expiry: ONE refresh, each call retried once, all succeed', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    await client.signup(newAccount('concurrent'));
    const issuedAt = performance.now();
    const firstToken = client.getAccessToken();
    const cookieBefore = traffic.cookies.get('refresh_token')?.value;
    await untilExpired(issuedAt);

    const mark = traffic.mark();
    const results = await Promise.all([
      client.me(),
      client.sessions(),
      client.request('GET', '/me/mfa'),
      client.request('GET', '/me/events', { params: { query: { limit: 1 } } }),
      client.me(),
    ]);
    const calls = traffic.since(mark);
    assert.equal(results.length, 5);
    assert.deepEqual(statuses(calls, 'POST /auth/refresh'), [200], `exactly one refresh: ${show(calls)}`);
    assert.deepEqual(statuses(calls, 'GET /me').sort(), [200, 200, 401, 401], show(calls));
    for (const route of ['GET /auth/sessions', 'GET /me/mfa', 'GET /me/events']) {
      assert.deepEqual(statuses(calls, route), [401, 200], `${route}: expired, then retried once (${show(calls)})`);
    }
    const [refresh] = calls.filter((e) => e.path === '/auth/refresh');
    assert.ok(refresh);
    const attempts = calls.filter((e) => e !== refresh);
    assert.ok(
      attempts.filter((e) => e.status === 401).every((e) => e.sentAt <= refresh.sentAt) &&
        attempts.filter((e) => e.status === 200).every((e) => e.sentAt >= refresh.answeredAt),
      `the first attempts were sent before the refresh, every retry after its answer: ${show(calls)}`,
    );
    assert.ok(
      calls.filter((e) => e.status === 401).every((e) => (e.responseBody as { code: string }).code === 'token_expired'),
      'the first attempts failed as token_expired',
    );
    const newToken = client.getAccessToken();
    assert.ok(newToken && newToken !== firstToken);
    assert.ok(calls.filter((e) => e.status === 200 && e.path !== '/auth/refresh').every((e) => e.requestHeaders.get('authorization') === `Bearer ${newToken}`));

    assert.equal(refresh.requestBody, null, 'cookie transport: the refresh has no body');
    assert.equal(refresh.requestHeaders.get('cookie'), `refresh_token=${cookieBefore}`, 'the cookie is the credential');
    assert.equal(refresh.requestHeaders.get('authorization'), null, 'no Bearer on the refresh');
    assert.ok(!('refreshToken' in (refresh.responseBody as object)));
    assert.notEqual(traffic.cookies.get('refresh_token')?.value, cookieBefore, 'the refresh rotated the cookie');
  });

  test('a call sent while a refresh is under way waits for it instead of earning a 401', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    await client.signup(newAccount('waits'));
    const mark = traffic.mark();
    const refreshing = client.refresh();
    const me = client.me(); // started while the refresh is in flight
    await Promise.all([refreshing, me]);
    assert.equal(show(traffic.since(mark)), 'POST /auth/refresh 200, GET /me 200');
  });

  test('a retry that still gets 401 fails with that error: one refresh, no loop', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    await client.signup(newAccount('noloop'));
    // authd accepts a freshly refreshed token, so make every GET /me carry one it cannot accept.
    traffic.tamper = (path, headers) => {
      if (path === '/me') headers.set('authorization', 'Bearer not.a.jwt');
    };
    const mark = traffic.mark();
    await assert.rejects(client.me(), authdError(401, 'token_invalid'));
    assert.equal(show(traffic.since(mark)), 'GET /me 401, POST /auth/refresh 200, GET /me 401');
    assert.equal(client.state, 'signed-in', 'the refresh worked: the session goes on');

    traffic.tamper = null;
    const after = traffic.mark();
    await client.me();
    assert.equal(show(traffic.since(after)), 'GET /me 200', 'the refreshed token works, no further refresh');
  });

  test('a refused refresh signs out and calls onSessionEnded once; later calls fail without it', async () => {
    const ended: AuthdError[] = [];
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, onSessionEnded: (e) => ended.push(e) });
    await client.signup(newAccount('revoked'));
    // Revoked elsewhere (another device's "log out everywhere").
    const res = await fetch(`${authd.url}/auth/logout-all`, { method: 'POST', headers: { authorization: `Bearer ${client.getAccessToken()}` } });
    assert.equal(res.status, 200);

    const mark = traffic.mark();
    const failures = await Promise.allSettled([client.me(), client.sessions()]);
    assert.ok(failures.every((f) => f.status === 'rejected' && f.reason instanceof AuthdError && f.reason.status === 401), JSON.stringify(failures));
    assert.deepEqual(statuses(traffic.since(mark), 'POST /auth/refresh'), [401], `one refresh, refused: ${show(traffic.since(mark))}`);
    await Promise.resolve(); // the event is delivered in a microtask
    assert.equal(ended.length, 1, 'onSessionEnded once');
    assert.equal(ended[0]?.status, 401);
    assert.equal(client.state, 'signed-out');
    assert.equal(client.getAccessToken(), null);
    assert.ok(!traffic.cookies.has('refresh_token'), 'authd cleared the dead cookie');

    await assert.rejects(client.me(), authdError(401, 'unauthorized'));
    await Promise.resolve();
    assert.equal(ended.length, 1, 'no second event once signed out');
  });

  test('a refresh overtaken by a logout does not sign back in', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const logoutSent = gate();
    const refreshAnswer = gate();
    const client = new AuthdClient({
      baseUrl: authd.url,
      fetch: async (input, init) => {
        const path = new URL(String(input)).pathname;
        if (path === '/auth/logout') await logoutSent.pass(); // held before it leaves
        return holding(traffic, { '/auth/refresh': refreshAnswer })(input, init);
      },
    });
    await client.signup(newAccount('stale-logout'));
    const mark = traffic.mark();
    const logout = client.logout();
    await logoutSent.reached;
    const refreshing = client.refresh(); // started while the logout is on its way: answered 200, held
    await refreshAnswer.reached;
    logoutSent.open();
    await logout;
    assert.equal(client.state, 'signed-out');
    refreshAnswer.open();
    await assert.rejects(refreshing, authdError(0, 'session_unavailable'));
    assert.deepEqual([client.state, client.getAccessToken()], ['signed-out', null], 'the late refresh did not sign back in');
    assert.equal(show(traffic.since(mark)), 'POST /auth/refresh 200, POST /auth/logout 200');
    assert.equal(await new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch }).restoreSession(), false, 'the session is over on authd too');
  });

  test('a call whose signal aborts stops waiting for the shared refresh; the refresh goes on', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const refreshAnswer = gate();
    const client = new AuthdClient({ baseUrl: authd.url, fetch: holding(traffic, { '/auth/refresh': refreshAnswer }) });
    await client.signup(newAccount('abort-wait'));
    const mark = traffic.mark();
    const refreshing = client.refresh();
    await refreshAnswer.reached;
    const controller = new AbortController();
    const call = client.request('GET', '/me', { signal: controller.signal }); // waits for the refresh
    controller.abort(new Error('the user left the page'));
    await assert.rejects(call, /the user left the page/);
    refreshAnswer.open();
    await refreshing;
    assert.equal(show(traffic.since(mark)), 'POST /auth/refresh 200', 'the aborted call sent nothing');
    await client.me();
  });

  test('restoreSession on start-up: true with a live cookie, false (no event) without', async () => {
    const ended: AuthdError[] = [];
    const traffic = recordTraffic({ cookieJar: true });
    const first = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    const account = newAccount('restore');
    await first.signup(account);
    // A page reload: a new client (no token in memory), the same browser cookie jar.
    const reloaded = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, onSessionEnded: (e) => ended.push(e) });
    assert.equal(await reloaded.restoreSession(), true);
    assert.equal((await reloaded.me()).email, account.email);
    await reloaded.logout();
    const again = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, onSessionEnded: (e) => ended.push(e) });
    assert.equal(await again.restoreSession(), false);
    assert.equal(again.state, 'signed-out');
    await Promise.resolve();
    assert.equal(ended.length, 0);
  });
});

describe('body transport (React Native, servers)', () => {
  test('a refresh overtaken by a login neither ends the new session nor calls onSessionEnded; the waiting call retries with the new token', async () => {
    const traffic = recordTraffic();
    const storage = memoryStorage();
    const ended: AuthdError[] = [];
    const loginAnswer = gate();
    const refreshAnswer = gate();
    let hold = false;
    const held = holding(traffic, { '/auth/login': loginAnswer, '/auth/refresh': refreshAnswer });
    const client = new AuthdClient({
      baseUrl: authd.url,
      fetch: (input, init) => (hold ? held(input, init) : traffic.fetch(input, init)),
      tokenTransport: 'body',
      refreshTokenStorage: storage,
      onSessionEnded: (e) => ended.push(e),
    });
    const account = newAccount('stale-login');
    await client.signup(account);
    // Another device ends every session: this client's next refresh is refused.
    const res = await fetch(`${authd.url}/auth/logout-all`, { method: 'POST', headers: { authorization: `Bearer ${client.getAccessToken()}` } });
    assert.equal(res.status, 200);

    hold = true;
    const mark = traffic.mark();
    const login = client.login(account); // answered, the answer held
    await loginAnswer.reached;
    const me = client.me(); // 401 with the old token: a refresh, refused, its answer held
    await refreshAnswer.reached;
    loginAnswer.open();
    const signedIn = await login;
    assert.equal(signedIn.status, 'signed-in');
    const loginRefreshToken = await storage.get();
    refreshAnswer.open();
    assert.equal((await me).email, account.email, 'the waiting call went on with the new session');
    assert.equal(show(traffic.since(mark)), 'POST /auth/login 200, GET /me 401, POST /auth/refresh 401, GET /me 200');
    await Promise.resolve();
    assert.deepEqual([ended.length, client.state, await storage.get()], [0, 'signed-in', loginRefreshToken], 'the new session is kept, no event');
  });

  /** The app's secure store, recording what it is given. */
  function recordingStorage(): RefreshTokenStorage & { values: string[]; current: () => string | null } {
    const inner = memoryStorage();
    const values: string[] = [];
    return {
      values,
      current: () => inner.get() as string | null,
      get: async () => inner.get(),
      set: async (token) => {
        values.push(token);
        await inner.set(token);
      },
      clear: async () => inner.clear(),
    };
  }

  test('the refresh token lives in the supplied storage and refreshes through the JSON body', async () => {
    const traffic = recordTraffic(); // no cookie jar: React Native's fetch is not a browser
    const storage = recordingStorage();
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, tokenTransport: 'body', refreshTokenStorage: storage });
    const account = newAccount('mobile');
    await client.signup(account);
    const issuedAt = performance.now();
    const [signup] = traffic.since(0, 'POST /auth/signup');
    assert.ok(signup);
    assert.equal((signup?.requestBody as { tokenTransport: string }).tokenTransport, 'body');
    assert.equal(signup.credentials, 'omit', 'no cookies: the stored token is the one credential');
    const firstRefreshToken = storage.current();
    assert.ok(firstRefreshToken);
    assert.equal(firstRefreshToken, (signup.responseBody as { refreshToken: string }).refreshToken);
    assert.ok(!storage.values.includes(client.getAccessToken()!), 'the access token is never stored');

    await untilExpired(issuedAt);
    const mark = traffic.mark();
    await Promise.all([client.me(), client.sessions(), client.me()]);
    const calls = traffic.since(mark);
    assert.deepEqual(statuses(calls, 'POST /auth/refresh'), [200], `one refresh: ${show(calls)}`);
    const [refresh] = calls.filter((e) => e.path === '/auth/refresh');
    assert.deepEqual(refresh?.requestBody, { tokenTransport: 'body', refreshToken: firstRefreshToken });
    assert.equal(refresh.requestHeaders.get('cookie'), null);
    assert.notEqual(storage.current(), firstRefreshToken, 'the rotated refresh token was stored');
    assert.deepEqual(storage.values, [firstRefreshToken, storage.current()]);

    // An app restart: a new client with the same storage restores the session.
    const restarted = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, tokenTransport: 'body', refreshTokenStorage: storage });
    assert.equal(await restarted.restoreSession(), true);
    assert.equal((await restarted.me()).email, account.email);

    // Logout sends the stored token (no cookie to name the session) and clears the storage.
    const tokenAtLogout = storage.current();
    await restarted.logout();
    const [logout] = traffic.since(0, 'POST /auth/logout');
    assert.equal((logout?.requestBody as { refreshToken: string }).refreshToken, tokenAtLogout);
    assert.equal(storage.current(), null);
    const refused = await fetch(`${authd.url}/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: tokenAtLogout, tokenTransport: 'body' }),
    });
    assert.equal(refused.status, 401, 'the session is over on authd');

    // Nothing stored: no request at all, a typed answer.
    const mark2 = traffic.mark();
    assert.equal(await new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, tokenTransport: 'body', refreshTokenStorage: storage }).restoreSession(), false);
    assert.equal(traffic.since(mark2).length, 0);
  });
});
