// Sign-in with other providers against a real authd and a fake OpenID Connect provider
// (support/oidc-provider.js: discovery, JWKS, an /authorize that consents at once, a /token that
// checks the client, the code, redirect_uri and PKCE; RS256 ID tokens). Node has no browser, so
// `traffic.navigate` plays the top-level navigation: it follows the redirects by hand and carries
// authd's cookies (oauth_flow, refresh_token) the way a browser does.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AuthdClient, memoryStorage, parseOAuthReturn, type HistoryLike } from '@authd/client';

import { startAuthd, type Authd } from './support/authd.js';
import { authdError, newAccount, RecordingStorage } from './support/fixtures.js';
import { emailedToken } from './support/mail.js';
import { person, startOidcProvider, type OidcProvider } from './support/oidc-provider.js';
import { totp } from './support/totp.js';
import { recordTraffic, show } from './support/traffic.js';

// authd's default return-URL allowlist is the origin of app.frontend_url (http://localhost:3000
// in config/): the page the round trip returns to. Nothing listens there; navigate() stops at it.
const PAGE = 'http://localhost:3000/signed-in?from=provider';

// The tab's sessionStorage, where startOAuthSignIn notes the sign-in it starts (one tab here:
// the tests run one after the other).
const sessionStore = new RecordingStorage();
Object.assign(globalThis, { sessionStorage: sessionStore });
const STARTED_KEY = 'authd.oauth-started';

let authd: Authd;
let provider: OidcProvider;
before(async () => {
  provider = await startOidcProvider();
  authd = await startAuthd(provider.authdSettings());
});
after(async () => {
  await authd?.stop();
  await provider?.stop();
});

/** `window.history` as the client uses it, recording each replaceState. */
function recordingHistory(): HistoryLike & { replaced: Array<{ state: unknown; url: string | URL | null | undefined }> } {
  const replaced: Array<{ state: unknown; url: string | URL | null | undefined }> = [];
  return { state: { page: 'state' }, replaced, replaceState: (state, _unused, url) => replaced.push({ state, url }) };
}

/** A browser: a client whose fetch keeps authd's cookies, and top-level navigations with them. */
function browser(server: Authd = authd) {
  const traffic = recordTraffic({ cookieJar: true });
  const client = new AuthdClient({ baseUrl: server.url, fetch: traffic.fetch });
  const navigate = (url: string) => traffic.navigate(url, { cookieOrigin: server.url, follow: [server.url, provider.issuer] });
  /** The page's button: startOAuthSignIn notes the start in this tab and navigates (here: returns where to). */
  const startSignIn = (name = 'fake', returnTo: string = PAGE) => {
    let assigned = '';
    client.startOAuthSignIn(name, { returnTo, location: { assign: (url) => (assigned = url) } });
    return assigned;
  };
  return { client, traffic, navigate, startSignIn, history: recordingHistory() };
}

/** The attributes of the Set-Cookie line for `name`, lower-cased, without its value. */
function cookieFlags(lines: string[], name: string): string[] | undefined {
  const line = lines.find((l) => l.startsWith(`${name}=`));
  return line?.split(';').slice(1).map((a) => a.trim().toLowerCase());
}

describe('providers and the start URL', () => {
  test('providers() lists the configured provider; oauthStartUrl() points at its start route', async () => {
    const { client } = browser();
    assert.deepEqual(await client.providers(), [{ name: 'fake', displayName: 'Fake ID', kind: 'oidc' }]);
    assert.equal(client.oauthStartUrl('fake', PAGE), `${authd.url}/auth/oauth/fake/start?returnTo=${encodeURIComponent(PAGE)}`);
    assert.equal(client.oauthStartUrl('fake', new URL(`${PAGE}#status=error&error=oauth_cancelled`)), client.oauthStartUrl('fake', PAGE), 'an old outcome in the page URL is dropped');
    assert.equal(client.oauthStartUrl('a b/c'), `${authd.url}/auth/oauth/a%20b%2Fc/start`, 'no returnTo: authd picks its default');
  });

  test('authd refuses a returnTo off its allowlist, and drops the fragment of an allowed one', async () => {
    const refused = await fetch(`${authd.url}/auth/oauth/fake/start?returnTo=${encodeURIComponent('https://evil.example/')}`, { redirect: 'manual' });
    const body = (await refused.json()) as { code: string; details: Array<{ field: string }> };
    assert.deepEqual([refused.status, body.code, body.details[0]?.field], [400, 'validation_failed', 'returnTo']);
    assert.equal(refused.headers.getSetCookie().length, 0, 'no oauth_flow cookie for a refused start');
    const withFragment = await fetch(`${authd.url}/auth/oauth/fake/start?returnTo=${encodeURIComponent(`${PAGE}#old`)}`, { redirect: 'manual' });
    assert.equal(withFragment.status, 302, 'an allowed return URL with a fragment starts');
  });
});

describe('the browser round trip', () => {
  test('a new identity: signed in as the provider\'s user; the fragment is removed and the session restored with one refresh', async () => {
    const { client, traffic, navigate, history } = browser();
    const someone = person(newAccount('oauth-new').email);
    provider.signsIn(someone);
    const providerMark = provider.requests.length;

    const trip = await navigate(client.oauthStartUrl('fake', PAGE));
    const [start, authorize, callback] = trip.hops;
    assert.deepEqual(trip.hops.map((h) => `${h.status} ${new URL(h.url).pathname}`), ['302 /auth/oauth/fake/start', '302 /authorize', '302 /auth/oauth/fake/callback']);
    assert.deepEqual(cookieFlags(start!.setCookies, 'oauth_flow'), ['httponly', 'samesite=none', 'secure', 'path=/auth/oauth', 'max-age=600'], 'the flow cookie survives the cross-site return (SameSite=None; Secure)');
    assert.match(callback!.sentCookies, /oauth_flow=/, 'the callback came with the flow cookie');
    assert.deepEqual(cookieFlags(callback!.setCookies, 'refresh_token')?.slice(0, 4), ['httponly', 'samesite=strict', 'secure', 'path=/auth']);
    assert.ok(callback!.setCookies.some((l) => /^oauth_flow=;.*Max-Age=0/.test(l)), 'the flow cookie is cleared');
    // What authd asked the provider for: PKCE S256, a nonce, its callback; the code redeemed with
    // the client's secret (Basic) and the verifier.
    const asked = new URL(authorize!.url).searchParams;
    assert.deepEqual([asked.get('code_challenge_method'), asked.get('scope'), asked.get('redirect_uri')], ['S256', 'openid email profile', `${authd.url}/auth/oauth/fake/callback`]);
    assert.ok(asked.get('nonce') && asked.get('state') && asked.get('code_challenge'));
    const [redeemed] = provider.requests.slice(providerMark).filter((r) => r.path === '/token');
    assert.ok(redeemed?.authorization?.startsWith('Basic ') && redeemed.params.code_verifier, 'the code was redeemed with the client secret and the PKCE verifier');

    // Back on the page: only the status in the URL, no token.
    assert.equal(trip.url, `${PAGE}#status=signed_in`);
    assert.equal(traffic.exchanges.length, 0, 'the page has not called authd yet');
    const result = await client.handleOAuthReturn(trip.url, history);
    assert.equal(result?.status, 'signed-in');
    assert.ok(result?.status === 'signed-in');
    assert.deepEqual([result.user.email, result.user.emailVerified, result.user.name, result.expiresIn], [someone.email, true, 'Ada Lovelace', 900]);
    assert.deepEqual(history.replaced, [{ state: { page: 'state' }, url: PAGE }], 'the fragment left the address bar, the history state kept');
    assert.equal(show(traffic.exchanges), 'POST /auth/refresh 200, GET /me 200', 'one refresh with the new cookie, then the user');
    assert.equal(client.state, 'signed-in');
    const identities = await client.identities();
    assert.deepEqual(identities.map((i) => [i.provider, i.email]), [['fake', someone.email]]);

    // The same identity again (another browser): the same account.
    const again = browser();
    const back = await again.client.handleOAuthReturn((await again.navigate(again.client.oauthStartUrl('fake', PAGE))).url, null);
    assert.ok(back?.status === 'signed-in' && back.user.id === result.user.id, 'a linked identity signs in to its account');

    // Its only way in cannot be unlinked.
    await assert.rejects(client.unlinkIdentity('fake'), authdError(409, 'last_sign_in_method'));
  });

  test('the provider refuses: error oauth_cancelled, no session and no request', async () => {
    const { client, traffic, navigate, history } = browser();
    provider.denyNext();
    const trip = await navigate(client.oauthStartUrl('fake', PAGE));
    assert.equal(trip.url, `${PAGE}#status=error&error=oauth_cancelled`);
    assert.ok(!trip.hops.at(-1)!.setCookies.some((l) => l.startsWith('refresh_token=')), 'no refresh cookie');
    const result = await client.handleOAuthReturn(trip.url, history);
    assert.deepEqual(result, { status: 'error', code: 'oauth_cancelled' });
    assert.deepEqual(history.replaced.map((r) => r.url), [PAGE]);
    assert.deepEqual([traffic.exchanges.length, client.state], [0, 'unknown'], 'nothing to restore: the app goes on as on any page load');
  });

  test('a callback in another browser than the one that started (login CSRF): oauth_state_invalid, the code never redeemed', async () => {
    const victim = browser();
    const attacker = browser();
    provider.signsIn(person(newAccount('oauth-csrf').email));
    // The attacker starts a sign-in, stops at the provider, and gets the victim's browser to finish it.
    const atProvider = await attacker.traffic.navigate(attacker.client.oauthStartUrl('fake', PAGE), { cookieOrigin: authd.url, follow: [authd.url] });
    assert.ok(atProvider.url.startsWith(`${provider.issuer}/authorize?`), atProvider.url);
    const tokenCalls = provider.requests.filter((r) => r.path === '/token').length;
    const trip = await victim.navigate(atProvider.url);
    assert.equal(trip.hops.at(-1)!.sentCookies, '', 'the victim has no oauth_flow cookie');
    assert.equal(trip.url, `${PAGE}#status=error&error=oauth_state_invalid`);
    assert.deepEqual(await victim.client.handleOAuthReturn(trip.url, null), { status: 'error', code: 'oauth_state_invalid' });
    assert.equal(provider.requests.filter((r) => r.path === '/token').length, tokenCalls, 'authd did not redeem the code');
  });

  test('an account with a second factor: mfa_required in the fragment, then verifyMfa signs in', async () => {
    const first = browser();
    const someone = person(newAccount('oauth-mfa').email);
    provider.signsIn(someone);
    const signedUp = await first.client.handleOAuthReturn((await first.navigate(first.client.oauthStartUrl('fake', PAGE))).url, null);
    assert.ok(signedUp?.status === 'signed-in');
    const enrolment = await first.client.request('POST', '/me/mfa/totp');
    const confirmed = await first.client.request('POST', '/me/mfa/totp/confirm', { body: { code: totp(enrolment.secret) } });

    const { client, traffic, navigate, startSignIn, history } = browser();
    const trip = await navigate(startSignIn());
    assert.match(trip.url, /#status=mfa_required&mfaToken=[\w-]+&methods=totp%2Crecovery_code&expiresIn=\d+$/);
    assert.ok(!trip.hops.at(-1)!.setCookies.some((l) => l.startsWith('refresh_token=')), 'no session before the second step');
    const result = await client.handleOAuthReturn(trip.url, history);
    assert.ok(result?.status === 'mfa-required', JSON.stringify(result));
    assert.deepEqual([result.methods, result.expiresIn > 0], [['totp', 'recovery_code'], true]);
    assert.deepEqual(history.replaced.map((r) => r.url), [PAGE], 'the mfaToken left the address bar');
    assert.equal(traffic.exchanges.length, 0, 'no refresh: there is no session yet');

    const verified = await client.verifyMfa({ mfaToken: result.mfaToken, recoveryCode: confirmed.recoveryCodes[0]! });
    assert.deepEqual([verified.user.id, client.state], [signedUp.user.id, 'signed-in']);
    assert.equal((await client.me()).email, someone.email);

    // A native app's ID token for the same identity gets the same second step.
    const app = new AuthdClient({ baseUrl: authd.url });
    const { nonce } = await app.nativeNonce('fake');
    const native = await app.exchangeIdToken('fake', { idToken: provider.idToken({ person: someone, nonce }), nonce });
    assert.deepEqual([native.status, native.status === 'mfa-required' && native.methods], ['mfa-required', ['totp', 'recovery_code']]);
  });

  test('an address that has an account: link_required; after a password login linkIdentity links it, and the provider signs in to it', async () => {
    const owner = browser();
    const account = newAccount('oauth-link');
    await owner.client.signup(account);
    provider.signsIn(person(account.email));

    const { client, traffic, navigate, startSignIn, history } = browser();
    const trip = await navigate(startSignIn());
    const result = await client.handleOAuthReturn(trip.url, history);
    assert.ok(result?.status === 'link-required', JSON.stringify(result));
    assert.deepEqual([result.email, result.provider], [account.email, 'fake'], 'the provider to name when asking the user to confirm');
    assert.deepEqual([history.replaced.map((r) => r.url), traffic.exchanges.length, client.state], [[PAGE], 0, 'unknown'], 'no session: never linked silently');

    await client.login({ email: account.email, password: account.password });
    const linked = await client.linkIdentity(result.linkToken);
    assert.deepEqual([linked.provider, linked.email], ['fake', account.email]);
    assert.deepEqual((await client.identities()).map((i) => i.provider), ['fake']);
    await assert.rejects(client.linkIdentity(result.linkToken), authdError(400, 'validation_failed'), 'a link token works once');
    assert.equal(sessionStore.getItem(STARTED_KEY), null, 'the return took the note');
    assert.deepEqual(await client.handleOAuthReturn(trip.url, null), { status: 'error', code: 'oauth_return_unexpected' }, 'the same return again is not expected');

    const later = browser();
    const back = await later.client.handleOAuthReturn((await later.navigate(later.client.oauthStartUrl('fake', PAGE))).url, null);
    assert.ok(back?.status === 'signed-in' && back.user.email === account.email, 'the provider now signs in to the account');
  });

  test('linking from a signed-in account: startIdentityLink, the round trip answers linked; then unlink', async () => {
    const { client, navigate, history, traffic } = browser();
    const account = newAccount('oauth-linking');
    await client.signup(account);
    const elsewhere = person(`elsewhere-${account.email}`);
    provider.signsIn(elsewhere);

    const authorizationUrl = await client.startIdentityLink('fake', `${PAGE}#stale`);
    assert.ok(authorizationUrl.startsWith(`${provider.issuer}/authorize?`), authorizationUrl);
    assert.ok(traffic.cookies.has('oauth_flow'), 'the answer set the flow cookie (credentials: include)');
    const trip = await navigate(authorizationUrl);
    assert.equal(trip.url, `${PAGE}#status=linked`);

    // The page loads again: the outcome, then the session from the cookie as on any load.
    const reloaded = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    assert.deepEqual(await reloaded.handleOAuthReturn(trip.url, history), { status: 'linked' });
    assert.equal(await reloaded.restoreSession(), true);
    assert.deepEqual((await reloaded.identities()).map((i) => [i.provider, i.email]), [['fake', elsewhere.email]]);

    await reloaded.unlinkIdentity('fake');
    assert.deepEqual(await reloaded.identities(), []);
    await assert.rejects(reloaded.unlinkIdentity('fake'), authdError(404, 'not_found'));
  });
});

describe('a return this tab did not start (a forged URL)', () => {
  test('startOAuthSignIn notes the provider in sessionStorage and navigates to the start URL', () => {
    const { client } = browser();
    const writes = sessionStore.writes.length;
    const assigned: string[] = [];
    client.startOAuthSignIn('fake', { returnTo: `${PAGE}#old`, location: { assign: (url) => assigned.push(url) } });
    assert.deepEqual(assigned, [client.oauthStartUrl('fake', PAGE)]);
    assert.deepEqual(sessionStore.writes.slice(writes), [[STARTED_KEY, 'fake']], 'one key, the provider, no token');
    assert.throws(() => client.startOAuthSignIn('fake', { returnTo: PAGE }), TypeError, 'Node has no location: it must be passed');
    sessionStore.clear();
  });

  test('mfa_required and link_required without a sign-in started here: oauth_return_unexpected, nothing done', async () => {
    sessionStore.clear();
    const { client, traffic, history } = browser();
    const forgedLink = `${PAGE}#status=link_required&linkToken=attackers-token&email=victim%40example.com&provider=fake`;
    assert.deepEqual(await client.handleOAuthReturn(forgedLink, history), { status: 'error', code: 'oauth_return_unexpected' });
    const forgedMfa = `${PAGE}#status=mfa_required&mfaToken=attackers-token&methods=totp&expiresIn=300`;
    assert.deepEqual(await client.handleOAuthReturn(forgedMfa, history), { status: 'error', code: 'oauth_return_unexpected' });
    assert.deepEqual([history.replaced.map((r) => r.url), traffic.exchanges.length, client.state], [[PAGE, PAGE], 0, 'unknown'], 'the fragment is removed all the same; no request');
  });

  test('a link_required naming another provider than the one started is unexpected; any return clears the note', async () => {
    const { client, startSignIn } = browser();
    startSignIn('fake');
    const other = `${PAGE}#status=link_required&linkToken=t&email=a%40example.com&provider=elsewhere`;
    assert.deepEqual(await client.handleOAuthReturn(other, null), { status: 'error', code: 'oauth_return_unexpected' });
    assert.equal(sessionStore.getItem(STARTED_KEY), null);

    startSignIn('fake');
    assert.deepEqual(await client.handleOAuthReturn(`${PAGE}#status=error&error=oauth_cancelled`, null), { status: 'error', code: 'oauth_cancelled' });
    assert.equal(sessionStore.getItem(STARTED_KEY), null, 'an error return clears it too');
    assert.deepEqual(await client.handleOAuthReturn(`${PAGE}#status=link_required&linkToken=t&email=a%40example.com`, null), { status: 'error', code: 'oauth_return_unexpected' });

    startSignIn('fake');
    assert.deepEqual(await client.handleOAuthReturn(`${PAGE}#status=link_required&linkToken=t&email=a%40example.com&provider=fake`, null), { status: 'link-required', linkToken: 't', email: 'a@example.com', provider: 'fake' });
  });
});

describe('parseOAuthReturn and handleOAuthReturn without an outcome', () => {
  test('each status, typed; malformed ones are unexpected_response; other fragments are not ours', () => {
    const at = (hash: string) => parseOAuthReturn(`https://app.example/p?q=1${hash}`);
    assert.deepEqual(at('#status=signed_in'), { status: 'signed-in' });
    assert.deepEqual(at('#status=mfa_required&mfaToken=t-1&methods=totp%2Cpasskey&expiresIn=300'), { status: 'mfa-required', mfaToken: 't-1', methods: ['totp', 'passkey'], expiresIn: 300 });
    assert.deepEqual(at('#status=link_required&linkToken=l-1&email=a%2Bb%40example.com'), { status: 'link-required', linkToken: 'l-1', email: 'a+b@example.com' });
    assert.deepEqual(at('#status=link_required&linkToken=l-1&email=a%40b.c&provider=github'), { status: 'link-required', linkToken: 'l-1', email: 'a@b.c', provider: 'github' }, 'the provider when authd names it');
    assert.deepEqual(at('#status=verification_sent'), { status: 'verification-sent' });
    assert.deepEqual(at('#status=linked'), { status: 'linked' });
    assert.deepEqual(at('#status=error&error=identity_email_unverified'), { status: 'error', code: 'identity_email_unverified' });
    for (const bad of ['#status=link_required&linkToken=l&email=a%40b.c&provider=', '#status=mfa_required&methods=totp&expiresIn=300', '#status=mfa_required&mfaToken=t&expiresIn=soon', '#status=link_required&email=a%40b.c', '#status=error', '#status=teleported']) {
      assert.deepEqual(at(bad), { status: 'error', code: 'unexpected_response' }, bad);
    }
    for (const none of ['', '#', '#section-2', '#/settings?tab=1', '#statusbar=1']) assert.equal(at(none), null, none);
    assert.deepEqual(parseOAuthReturn(new URL('https://app.example/#status=linked')), { status: 'linked' });
  });

  test('a page load without an outcome: null, the address bar and authd untouched', async () => {
    const { client, traffic, history } = browser();
    assert.equal(await client.handleOAuthReturn(`${PAGE}#section`, history), null);
    assert.deepEqual([history.replaced, traffic.exchanges.length], [[], 0]);
    await assert.rejects(client.handleOAuthReturn(undefined, null), TypeError, 'outside browsers the URL must be passed');
  });
});

describe('native apps: exchangeIdToken', () => {
  test('an ID token signs in once with a nonce authd issued; a replayed, foreign-signed or wrong-nonce token is oauth_failed', async () => {
    const { client, traffic } = browser();
    const someone = person(newAccount('native').email);
    const issued = await client.nativeNonce('fake');
    assert.equal(issued.expiresIn, 600);
    const { nonce } = issued;
    const idToken = provider.idToken({ person: someone, nonce });
    const result = await client.exchangeIdToken('fake', { idToken, nonce });
    assert.ok(result.status === 'signed-in');
    assert.deepEqual([result.user.email, result.user.emailVerified, client.state], [someone.email, true, 'signed-in']);
    assert.ok(traffic.cookies.get('refresh_token'), 'cookie transport: the refresh cookie');
    assert.equal((await client.me()).id, result.user.id);

    await assert.rejects(client.exchangeIdToken('fake', { idToken, nonce }), authdError(401, 'oauth_failed'), 'each ID token works once');
    const fresh = (await client.nativeNonce('fake')).nonce;
    await assert.rejects(client.exchangeIdToken('fake', { idToken: provider.idToken({ person: someone, nonce: fresh, foreignKey: true }), nonce: fresh }), authdError(401, 'oauth_failed'));
    const madeUp = 'a-nonce-the-app-made';
    await assert.rejects(client.exchangeIdToken('fake', { idToken: provider.idToken({ person: someone, nonce: madeUp }), nonce: madeUp }), authdError(401, 'oauth_failed'), 'only nonces authd issued');
    await assert.rejects(client.nativeNonce('nope'), authdError(404, 'not_found'));
    await assert.rejects(client.exchangeIdToken('nope', { idToken, nonce }), authdError(404, 'not_found'));
  });

  test('body transport (React Native): the refresh token goes to the storage, no cookie', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const storage = memoryStorage();
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, tokenTransport: 'body', refreshTokenStorage: storage });
    const { nonce } = await client.nativeNonce('fake');
    const result = await client.exchangeIdToken('fake', { idToken: provider.idToken({ person: person(newAccount('native-body').email), nonce }), nonce });
    assert.equal(result.status, 'signed-in');
    const [call] = traffic.since(0, 'POST /auth/oauth/fake/token');
    assert.deepEqual([(call!.requestBody as { tokenTransport?: string }).tokenTransport, call!.credentials], ['body', 'omit']);
    assert.ok(await storage.get(), 'the refresh token is stored');
    assert.equal(traffic.cookies.size, 0, 'no cookie kept');
    assert.equal(await client.restoreSession(), true, 'and it refreshes');
  });

  test('an address that has an account: link-required, never a session', async () => {
    const account = newAccount('native-link');
    await new AuthdClient({ baseUrl: authd.url }).signup(account);
    const client = new AuthdClient({ baseUrl: authd.url });
    const { nonce } = await client.nativeNonce('fake');
    const result = await client.exchangeIdToken('fake', { idToken: provider.idToken({ person: person(account.email), nonce }), nonce });
    assert.ok(result.status === 'link-required' && result.email === account.email && result.linkToken);
    assert.equal(result.provider, 'fake');
    assert.equal(client.getAccessToken(), null);
  });

  test('an answer that is none of the exchange\'s outcomes is unexpected_response, not verification-sent', async () => {
    // authd always answers one of them: a proxy's 200 with another body stands in for a broken one.
    const traffic = recordTraffic();
    const client = new AuthdClient({
      baseUrl: authd.url,
      fetch: async (input, init) => {
        const res = await traffic.fetch(input, init);
        if (!String(input).endsWith('/token')) return res;
        await res.body?.cancel();
        return new Response('{"message":"ok"}', { status: 200, headers: { 'content-type': 'application/json' } });
      },
    });
    const { nonce } = await client.nativeNonce('fake');
    await assert.rejects(
      client.exchangeIdToken('fake', { idToken: provider.idToken({ person: person(newAccount('native-odd').email), nonce }), nonce }),
      authdError(200, 'unexpected_response'),
    );
    assert.equal(client.state, 'unknown');
  });
});

describe('with auth.require_email_verification', () => {
  let strict: Authd;
  before(async () => {
    strict = await startAuthd({ ...provider.authdSettings(), AUTHD__AUTH__REQUIRE_EMAIL_VERIFICATION: 'true' });
  });
  after(async () => {
    await strict?.stop();
  });

  test('a new identity whose address the provider did not verify: verification_sent and a mail, no session', async () => {
    const { client, traffic, navigate, history } = browser(strict);
    const unverified = person(newAccount('oauth-unverified').email, { emailVerified: false });
    provider.signsIn(unverified);
    const trip = await navigate(client.oauthStartUrl('fake', PAGE));
    assert.equal(trip.url, `${PAGE}#status=verification_sent`);
    assert.deepEqual(await client.handleOAuthReturn(trip.url, history), { status: 'verification-sent' });
    assert.deepEqual([traffic.exchanges.length, client.state], [0, 'unknown']);
    assert.ok(await emailedToken(strict.outbox, unverified.email!, 'Confirm your email'), 'the verification mail went out');
  });

  test('a native app\'s ID token with an unverified address: verification-sent, no session', async () => {
    const client = new AuthdClient({ baseUrl: strict.url });
    const { nonce } = await client.nativeNonce('fake');
    const unverified = person(newAccount('native-unverified').email, { emailVerified: false });
    assert.deepEqual(await client.exchangeIdToken('fake', { idToken: provider.idToken({ person: unverified, nonce }), nonce }), { status: 'verification-sent' });
    assert.equal(client.getAccessToken(), null);
  });
});
