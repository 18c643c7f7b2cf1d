// The auth flows against a real authd, as a browser would run them (cookie transport; the test's
// fetch keeps the HttpOnly cookie like a browser): signup, login, me, sessions, typed errors,
// logout, logout-all, the MFA branch of login, email verification, password forgot/reset/change.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AuthdClient, AuthdError } from '@authd/client';

import { startAuthd, type Authd } from './support/authd.js';
import { authdError, newAccount, RecordingStorage } from './support/fixtures.js';
import { emailedToken } from './support/mail.js';
import { totp } from './support/totp.js';
import { recordTraffic, show } from './support/traffic.js';

// Web storage as a browser has it, recording writes: the client must never use it.
const localStore = new RecordingStorage();
const sessionStore = new RecordingStorage();
Object.assign(globalThis, { localStorage: localStore, sessionStorage: sessionStore });

let authd: Authd;
before(async () => {
  authd = await startAuthd();
});
after(async () => {
  await authd?.stop();
});

function browserClient(options: { onSessionEnded?: (e: AuthdError) => void } = {}) {
  const traffic = recordTraffic({ cookieJar: true });
  const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, ...options });
  return { client, traffic };
}

describe('signup, login, me', () => {
  test('signup signs in; login signs in; me and sessions answer with the in-memory token', async () => {
    const { client, traffic } = browserClient();
    const account = newAccount('flows');
    assert.equal(client.state, 'unknown');

    const signup = await client.signup(account);
    assert.equal(signup.status, 'signed-in');
    assert.ok(signup.status === 'signed-in' && signup.user.email === account.email);
    assert.equal(client.state, 'signed-in');
    const [signupCall] = traffic.since(0, 'POST /auth/signup');
    assert.equal(signupCall?.status, 201);
    assert.equal(signupCall.credentials, 'include', 'credentials: include, so a browser keeps the cookie');
    assert.ok(!('tokenTransport' in (signupCall.requestBody as object)), 'cookie transport never asks for the refresh token in a body');
    assert.ok(!('refreshToken' in (signupCall.responseBody as object)), 'so no answer carries it');
    assert.ok(traffic.cookies.get('refresh_token')?.value, 'authd set the refresh cookie');

    await client.logout();
    assert.equal(client.state, 'signed-out');
    const login = await client.login({ email: account.email, password: account.password });
    assert.deepEqual(login.status === 'signed-in' && [login.user.email, login.expiresIn], [account.email, 900]);

    const mark = traffic.mark();
    const me = await client.me();
    assert.deepEqual([me.email, me.name, me.emailVerified], [account.email, account.name, false]);
    assert.ok(me.updatedAt, 'GET /me has updatedAt');
    const sessions = await client.sessions();
    assert.equal(sessions.filter((s) => s.current).length, 1, 'one session is the current one');
    const calls = traffic.since(mark);
    assert.equal(show(calls), 'GET /me 200, GET /auth/sessions 200', 'a valid token: no refresh');
    const token = client.getAccessToken();
    assert.ok(token && calls.every((c) => c.requestHeaders.get('authorization') === `Bearer ${token}`));
  });

  test('the access token is in no storage and not on the client object', async () => {
    const { client } = browserClient();
    const account = newAccount('storage');
    await client.signup(account);
    await client.me();
    const token = client.getAccessToken();
    assert.ok(token);
    assert.deepEqual([localStore.writes, sessionStore.writes], [[], []], 'nothing was ever written to web storage');
    assert.deepEqual([localStore.length, sessionStore.length], [0, 0]);
    // Private fields: nothing enumerable or serialisable holds it.
    assert.ok(!JSON.stringify(client).includes(token) && !Object.values(client).includes(token));
  });

  test('the generic request reaches any path, with path and query parameters', async () => {
    const { client } = browserClient();
    const account = newAccount('generic');
    await client.signup(account);
    const events = await client.request('GET', '/me/events', { params: { query: { limit: 5 } } });
    assert.ok(events.events.length >= 1 && events.events.length <= 5, `signup left audit events: ${JSON.stringify(events)}`);
    const jwks = await client.request('GET', '/.well-known/jwks.json');
    assert.ok(Array.isArray(jwks.keys));

    // A second session of the same user (another device), ended from the first by its id.
    const other = browserClient();
    await other.client.login(account);
    const sessions = await client.sessions();
    const otherSession = sessions.find((s) => !s.current);
    assert.equal(sessions.length, 2);
    assert.ok(otherSession);
    await client.request('DELETE', '/auth/sessions/{id}', { params: { path: { id: otherSession.id } } });
    await assert.rejects(other.client.me(), (e) => e instanceof AuthdError && e.status === 401, 'the ended session is over');
    assert.equal((await client.sessions()).length, 1);
  });

  test('a path parameter of "", "." or ".." is refused before any request (it would name another path)', async () => {
    const { client, traffic } = browserClient();
    await client.signup(newAccount('dots'));
    const mark = traffic.mark();
    for (const id of ['', '.', '..']) {
      await assert.rejects(client.revokeSession(id), (e) => e instanceof TypeError && e.message.includes('"id"'), JSON.stringify(id));
      await assert.rejects(client.request('DELETE', '/auth/sessions/{id}', { params: { path: { id } } }), TypeError, JSON.stringify(id));
      assert.throws(() => client.oauthStartUrl(id), TypeError, JSON.stringify(id));
    }
    assert.equal(traffic.since(mark).length, 0, 'nothing was sent');
    await assert.rejects(client.revokeSession('a..b'), authdError(400, 'validation_failed'), 'dots inside a value are its own characters (here: not a UUID)');
    assert.equal((await client.sessions()).length, 1, 'the session is still there');
  });

  test('request() refuses the calls that change the client\'s session, naming the method to use', async () => {
    const { client, traffic } = browserClient();
    const account = newAccount('refused');
    await client.signup(account);
    const mark = traffic.mark();
    const refused = (method: string) => (e: unknown) => e instanceof TypeError && e.message.includes(`use ${method}`);
    await assert.rejects(client.request('POST', '/auth/refresh'), refused('refresh() or restoreSession()'));
    await assert.rejects(client.request('POST', '/auth/logout'), refused('logout()'));
    await assert.rejects(client.request('POST', '/auth/logout-all'), refused('logoutAll()'));
    await assert.rejects(client.request('DELETE', '/me', { body: { password: account.password } }), refused('deleteAccount()'));
    assert.equal(traffic.since(mark).length, 0, 'nothing was sent');
    assert.equal(client.state, 'signed-in');
    assert.equal((await client.me()).email, account.email);
  });

  test('deleteAccount: a wrong password is a field error; the right one deletes the account and signs out', async () => {
    let ended = 0;
    const { client } = browserClient({ onSessionEnded: () => (ended += 1) });
    const account = newAccount('delete');
    await client.signup(account);
    await assert.rejects(
      client.deleteAccount({ password: 'not the password at all' }),
      authdError(400, 'validation_failed', (e) => assert.equal(e.details[0]?.field, 'password')),
    );
    assert.equal(client.state, 'signed-in');
    const token = client.getAccessToken();
    await client.deleteAccount({ password: account.password });
    assert.deepEqual([client.state, client.getAccessToken()], ['signed-out', null]);
    const denied = await fetch(`${authd.url}/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(denied.status, 401, 'the session ended with the account');
    await assert.rejects(client.login(account), authdError(401, 'invalid_credentials'));
    await Promise.resolve();
    assert.equal(ended, 0, 'asked for: no onSessionEnded');
  });
});

describe('sign-in with other providers, none configured', () => {
  test('providers() is empty (test/oauth.test.ts has an authd with one)', async () => {
    assert.deepEqual(await browserClient().client.providers(), []);
  });
});

describe('typed errors', () => {
  test('invalid_credentials, with status, code and request id', async () => {
    const { client, traffic } = browserClient();
    const account = newAccount('wrongpw');
    await client.signup(account);
    await client.logout();
    await assert.rejects(
      client.login({ email: account.email, password: 'not the password at all' }),
      authdError(401, 'invalid_credentials', (e) => {
        assert.equal(e.requestId, traffic.exchanges.at(-1)?.responseHeaders.get('x-request-id'));
        assert.ok(e.message.length > 0);
      }),
    );
    assert.equal(traffic.since(0, 'POST /auth/refresh').length, 0, 'a failed login does not try to refresh');
    assert.equal(client.state, 'signed-out');
  });

  test('validation_failed lists each field in details', async () => {
    const { client } = browserClient();
    await assert.rejects(
      client.signup({ email: 'not-an-email', password: 'short' }),
      authdError(400, 'validation_failed', (e) => {
        const fields = e.details.map((d) => d.field).sort();
        assert.deepEqual(fields, ['email', 'password'], JSON.stringify(e.details));
        assert.ok(e.details.every((d) => d.message.length > 0));
      }),
    );
  });

  test('feature_disabled (passwordless sign-in is off by default), with authd\'s timestamp', async () => {
    const { client } = browserClient();
    await assert.rejects(
      client.request('POST', '/auth/email/login', { body: { email: 'someone@example.com' } }),
      authdError(404, 'feature_disabled', (e) => {
        assert.ok(e.timestamp && Math.abs(Date.parse(e.timestamp) - Date.now()) < 60_000, `timestamp ${e.timestamp}`);
        assert.deepEqual(e.details, []);
      }),
    );
  });

  test('email_taken', async () => {
    const { client } = browserClient();
    const account = newAccount('taken');
    await client.signup(account);
    await assert.rejects(browserClient().client.signup(account), authdError(409, 'email_taken'));
  });
});

describe('logout', () => {
  test('logout ends the session: the token is denied, the cookie is gone, calls fail', async () => {
    let ended = 0;
    const { client, traffic } = browserClient({ onSessionEnded: () => (ended += 1) });
    await client.signup(newAccount('logout'));
    const token = client.getAccessToken();
    await client.logout();
    assert.equal(client.state, 'signed-out');
    assert.equal(client.getAccessToken(), null);
    const [logout] = traffic.since(0, 'POST /auth/logout');
    assert.equal(logout?.status, 200);
    assert.equal(logout.requestHeaders.get('authorization'), `Bearer ${token}`, 'the Bearer token goes along, so it is denied at once');
    assert.ok(!traffic.cookies.has('refresh_token'), 'authd cleared the cookie');
    const denied = await fetch(`${authd.url}/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual([denied.status, ((await denied.json()) as { code: string }).code], [401, 'token_invalid']);

    const mark = traffic.mark();
    await assert.rejects(client.me(), authdError(401, 'unauthorized'));
    assert.equal(show(traffic.since(mark)), 'GET /me 401, POST /auth/refresh 401', 'one refresh attempt, no loop');
    assert.equal(ended, 0, 'logging out is not a session that ended by itself');
  });

  test('a logout authd did not answer keeps the session (the cookie would sign back in); a later one ends it', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    // What the network or a failing authd can do to the logout (authd cannot be made to).
    let failure: (() => Response) | null = () => {
      throw new TypeError('fetch failed');
    };
    const client = new AuthdClient({
      baseUrl: authd.url,
      fetch: async (input, init) => (failure && new URL(String(input)).pathname === '/auth/logout' ? failure() : traffic.fetch(input, init)),
    });
    const account = newAccount('logout-fails');
    await client.signup(account);
    const token = client.getAccessToken();

    await assert.rejects(client.logout(), TypeError, 'no answer');
    assert.deepEqual([client.state, client.getAccessToken()], ['signed-in', token], 'still signed in');
    assert.ok(traffic.cookies.has('refresh_token'), 'the cookie is still there');
    failure = () =>
      new Response(JSON.stringify({ error: 'try again', code: 'unavailable', statusCode: 503, requestId: 'r-503', timestamp: new Date().toISOString() }), {
        status: 503,
        headers: { 'content-type': 'application/json', 'retry-after': '1' },
      });
    await assert.rejects(client.logout(), authdError(503, 'unavailable'));
    assert.deepEqual([client.state, (await client.me()).email], ['signed-in', account.email], 'still signed in, and the session works');
    const reloaded = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    assert.equal(await reloaded.restoreSession(), true, 'which is why the client must not pretend it is over');

    failure = null;
    await reloaded.logout();
    await client.logout();
    assert.deepEqual([client.state, client.getAccessToken(), reloaded.state], ['signed-out', null, 'signed-out']);
    assert.equal(await new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch }).restoreSession(), false, 'now the session is over');

    // 401 means there is no session to end: signed out here too.
    const gone = new AuthdClient({
      baseUrl: authd.url,
      fetch: async (input, init) =>
        new URL(String(input)).pathname === '/auth/logout'
          ? new Response(JSON.stringify({ error: 'no', code: 'unauthorized', statusCode: 401, requestId: 'r-401', timestamp: '' }), { status: 401 })
          : traffic.fetch(input, init),
    });
    await gone.login(account);
    await gone.logout();
    assert.equal(gone.state, 'signed-out');
  });

  test('logoutAll ends every session of the user', async () => {
    const account = newAccount('logoutall');
    const first = browserClient();
    await first.client.signup(account);
    const second = browserClient();
    await second.client.login(account);
    assert.deepEqual(await first.client.logoutAll(), { revokedSessions: 2 });
    assert.equal(first.client.state, 'signed-out');
    await assert.rejects(second.client.me(), authdError(401, 'token_invalid'));
  });
});

describe('login with a second factor', () => {
  test('mfa-required is a typed result; verifyMfa completes the login', async () => {
    const { client, traffic } = browserClient();
    const account = newAccount('mfa');
    await client.signup(account);
    // Enrol TOTP through the generic request (a fresh sign-in satisfies the step-up rule).
    const enrolment = await client.request('POST', '/me/mfa/totp');
    const confirmed = await client.request('POST', '/me/mfa/totp/confirm', { body: { code: totp(enrolment.secret) } });
    assert.equal(confirmed.recoveryCodes.length, 10);
    assert.equal(client.getAccessToken(), confirmed.accessToken, 'an answer with an access token replaces the one in memory');
    await client.logout();

    const login = await client.login(account);
    assert.equal(login.status, 'mfa-required');
    assert.ok(login.status === 'mfa-required');
    assert.ok(login.mfaToken && login.expiresIn > 0);
    assert.ok(login.methods.includes('totp') && login.methods.includes('recovery_code'), login.methods.join());
    assert.equal(client.state, 'signed-out', 'no session before the second step');
    assert.equal(client.getAccessToken(), null);

    const wrongCode = String((Number(totp(enrolment.secret)) + 500_000) % 1_000_000).padStart(6, '0');
    await assert.rejects(client.verifyMfa({ mfaToken: login.mfaToken, code: wrongCode }), authdError(401, 'invalid_mfa_code'));
    const verified = await client.verifyMfa({ mfaToken: login.mfaToken, recoveryCode: confirmed.recoveryCodes[0]! });
    assert.deepEqual([verified.status, verified.user.email], ['signed-in', account.email]);
    assert.equal((await client.me()).email, account.email);
    assert.equal(traffic.since(0, 'POST /auth/refresh').length, 0);
  });
});

describe('email and password flows', () => {
  test('verifyEmail with the emailed token; resendVerification answers 202', async () => {
    const { client, traffic } = browserClient();
    const account = newAccount('verify');
    await client.signup(account);
    const token = await emailedToken(authd.outbox, account.email, 'Confirm your email');
    await client.resendVerification(account.email);
    assert.equal(traffic.since(0, 'POST /auth/email/resend')[0]?.status, 202);
    await client.verifyEmail(token);
    assert.equal((await client.me()).emailVerified, true);
    await assert.rejects(client.verifyEmail(token), authdError(400, 'token_invalid'), 'the token works once');
  });

  test('forgotPassword, resetPassword (every session ends), then login with the new password', async () => {
    const { client } = browserClient();
    const account = newAccount('reset');
    await client.signup(account);
    await client.forgotPassword(account.email);
    const token = await emailedToken(authd.outbox, account.email, 'Reset your password');
    const newPassword = `${account.password} again`;
    assert.deepEqual(await client.resetPassword({ token, newPassword }), { revokedSessions: 1 });
    assert.equal(client.state, 'signed-out');
    await assert.rejects(client.login(account), authdError(401, 'invalid_credentials'));
    assert.equal((await client.login({ email: account.email, password: newPassword })).status, 'signed-in');
  });

  test('changePassword ends the other sessions: their client learns it through onSessionEnded', async () => {
    const account = newAccount('change');
    const { client } = browserClient();
    await client.signup(account);
    const ended: AuthdError[] = [];
    const phone = browserClient({ onSessionEnded: (e) => ended.push(e) });
    await phone.client.login(account);

    await assert.rejects(
      client.changePassword({ currentPassword: 'wrong password here', newPassword: `${account.password}!` }),
      authdError(400, 'validation_failed', (e) => assert.equal(e.details[0]?.field, 'currentPassword')),
    );
    assert.deepEqual(await client.changePassword({ currentPassword: account.password, newPassword: `${account.password}!` }), { revokedSessions: 1 });
    assert.equal((await client.me()).email, account.email, 'this session goes on');

    await assert.rejects(phone.client.me(), (e) => e instanceof AuthdError && e.status === 401);
    await Promise.resolve(); // onSessionEnded runs in a microtask
    assert.equal(ended.length, 1, 'the other client was told once');
    assert.equal(ended[0]?.status, 401);
    assert.equal(phone.client.state, 'signed-out');
    assert.equal(show(phone.traffic.since(0).slice(-2)), 'GET /me 401, POST /auth/refresh 401', 'one refresh, refused; no retry');
  });
});
