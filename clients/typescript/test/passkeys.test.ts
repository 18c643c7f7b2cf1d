// Passkeys: the translation between authd's JSON and the WebAuthn API's ArrayBuffers, checked on
// the options a real authd sends. Node has no authenticator: the ceremonies themselves run in
// headless Chromium with a virtual authenticator (tests/browser/e2e.mjs).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AuthdClient, base64url, bytes, creationOptions, credentialJson, requestOptions, type WebAuthnApi } from '@authd/client';

import { startAuthd, type Authd } from './support/authd.js';
import { authdError, newAccount } from './support/fixtures.js';
import { totp } from './support/totp.js';
import { recordTraffic } from './support/traffic.js';

let authd: Authd;
before(async () => {
  authd = await startAuthd();
});
after(async () => {
  await authd?.stop();
});

const buffer = (...values: number[]) => new Uint8Array(values).buffer;

describe('base64url', () => {
  test('round-trips every byte value, without padding', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const text = base64url(all);
    assert.match(text, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(new Uint8Array(bytes(text, 'x')), all);
    assert.equal(base64url(buffer(0xfb, 0xff)), '-_8');
    assert.deepEqual(new Uint8Array(bytes('-_8=', 'x')), new Uint8Array([0xfb, 0xff]), 'padding is accepted');
  });

  test('refuses what is not base64url, naming the field', () => {
    assert.throws(() => bytes('a+b/', 'publicKey.challenge'), /publicKey.challenge is not base64url/);
    assert.throws(() => bytes(42, 'publicKey.user.id'), /publicKey.user.id is not base64url/);
    assert.throws(() => bytes('abcde', 'excludeCredentials[0].id'), /excludeCredentials\[0\].id is not base64url/);
  });

  test('encodes views at an offset, and buffers of another realm', async () => {
    const { runInNewContext } = await import('node:vm');
    const foreign = runInNewContext('new Uint8Array([0xfb, 0xff]).buffer') as ArrayBuffer;
    assert.equal(foreign instanceof ArrayBuffer, false, 'the buffer really is of another realm');
    assert.equal(base64url(foreign), '-_8');
    assert.equal(base64url(new Uint8Array([0, 0xfb, 0xff]).subarray(1)), '-_8');
  });
});

describe('a ceremony against authd', () => {
  test('registration options from authd become create() options; the answer is encoded for authd', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    const account = newAccount('passkey');
    await client.signup(account);
    const started = await client.request('POST', '/me/mfa/passkey-options');
    const options = creationOptions(started.options);
    assert.ok(options.challenge instanceof ArrayBuffer && options.challenge.byteLength >= 16, 'the challenge is bytes');
    assert.ok(options.user.id instanceof ArrayBuffer && options.user.id.byteLength > 0, 'the user handle is bytes');
    assert.equal(options.user.name, account.email);
    assert.equal(options.rp.id, 'localhost', 'the host of app.frontend_url');
    assert.ok(options.pubKeyCredParams.length > 0);

    // What an authenticator answers, as the browser hands it over.
    const attestation = {
      id: 'AQID',
      type: 'public-key',
      rawId: buffer(1, 2, 3),
      response: { clientDataJSON: buffer(123, 125), attestationObject: buffer(0xa0), getTransports: () => ['internal'] },
      getClientExtensionResults: () => ({ credProps: { rk: true } }),
    } as unknown as Credential;
    assert.deepEqual(credentialJson(attestation), {
      id: 'AQID',
      rawId: 'AQID',
      type: 'public-key',
      response: { clientDataJSON: 'e30', attestationObject: 'oA', transports: ['internal'] },
      extensions: { credProps: { rk: true } },
    });
  });

  test('authentication options list the credentials as bytes; an assertion is encoded with its user handle', async () => {
    const anonymous = new AuthdClient({ baseUrl: authd.url, fetch: recordTraffic({ cookieJar: true }).fetch });
    const started = await anonymous.request('POST', '/auth/passkey/options', { body: { email: newAccount('nobody').email } });
    const options = requestOptions(started.options);
    assert.ok(options.challenge instanceof ArrayBuffer && options.challenge.byteLength >= 16);
    for (const allowed of options.allowCredentials ?? []) assert.ok(allowed.id instanceof ArrayBuffer);

    const assertion = {
      id: 'AQID',
      type: 'public-key',
      rawId: buffer(1, 2, 3),
      response: { clientDataJSON: buffer(123, 125), authenticatorData: buffer(9), signature: buffer(8), userHandle: null },
    } as unknown as Credential;
    assert.deepEqual(credentialJson(assertion), {
      id: 'AQID',
      rawId: 'AQID',
      type: 'public-key',
      response: { clientDataJSON: 'e30', authenticatorData: 'CQ', signature: 'CA', userHandle: null },
      extensions: {},
    });
  });

  test('without an address, sign-in sends no address and the authenticator gets options that list no credential', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    let seen: PublicKeyCredentialRequestOptions | undefined;
    const nothingKept: WebAuthnApi = {
      create: async () => null,
      get: async ({ publicKey }) => ((seen = publicKey), null),
    };
    await assert.rejects(client.signInWithPasskey(undefined, { webauthn: nothingKept }), /no public-key credential/);
    const [asked] = traffic.since(0, 'POST /auth/passkey/options');
    assert.deepEqual(asked?.requestBody, {}, 'no address sent');
    assert.deepEqual(seen?.allowCredentials, [], 'the authenticator may offer any passkey it keeps');
    assert.equal(seen?.userVerification, 'required');
    assert.ok(seen?.challenge instanceof ArrayBuffer);
    assert.equal(traffic.since(0, 'POST /auth/passkey/login').length, 0, 'no answer, no sign-in attempt');
  });

  test('mediation and signal reach navigator.credentials (and the signal the requests); without them nothing is added', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    const asked: Array<{ call: string; options: Record<string, unknown> }> = [];
    const recording: WebAuthnApi = {
      create: async (options) => (asked.push({ call: 'create', options }), null),
      get: async (options) => (asked.push({ call: 'get', options }), null),
    };
    const controller = new AbortController();
    const noCredential = /no public-key credential/;
    await assert.rejects(client.signInWithPasskey(undefined, { webauthn: recording, mediation: 'conditional', signal: controller.signal }), noCredential);
    await assert.rejects(client.signInWithPasskey(undefined, { webauthn: recording }), noCredential);
    await client.signup(newAccount('ceremony-options'));
    await assert.rejects(client.registerPasskey({ webauthn: recording, signal: controller.signal }), noCredential);
    assert.deepEqual(
      asked.map(({ call, options }) => [call, Object.keys(options).sort(), options.mediation, options.signal === controller.signal]),
      [
        ['get', ['mediation', 'publicKey', 'signal'], 'conditional', true],
        ['get', ['publicKey'], undefined, false],
        ['create', ['publicKey', 'signal'], undefined, true],
      ],
    );

    // Aborted (the user signed in another way): the ceremony stops before authd is asked.
    const mark = traffic.mark();
    controller.abort(new Error('signed in with the password instead'));
    await assert.rejects(client.signInWithPasskey(undefined, { webauthn: recording, signal: controller.signal }), /signed in with the password instead/);
    assert.equal(traffic.since(mark).length, 0);
    assert.equal(asked.length, 3);
  });

  test('an authenticator that answers nothing fails the call before authd is asked again', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch });
    await client.signup(newAccount('cancelled'));
    let seen: PublicKeyCredentialCreationOptions | undefined;
    const cancelled: WebAuthnApi = {
      create: async ({ publicKey }) => ((seen = publicKey), null),
      get: async () => null,
    };
    await assert.rejects(client.registerPasskey({ webauthn: cancelled }), /no public-key credential/);
    assert.ok(seen?.challenge instanceof ArrayBuffer, 'create() got the decoded options');
    assert.equal(traffic.since(0, 'POST /me/mfa/passkeys').length, 0, 'nothing was registered');
    await assert.rejects(client.registerPasskey(), /no WebAuthn here/, 'Node has no navigator.credentials');
  });
});

describe('step-up', () => {
  let strict: Authd;
  before(async () => {
    // A sign-in counts as recent for 2 s only.
    strict = await startAuthd({ AUTHD__AUTH__REAUTHENTICATION_SECONDS: '2' });
  });
  after(async () => {
    await strict?.stop();
  });

  test('an old sign-in gets 403 reauthentication_required; reauthenticate with the password renews it in the same session', async () => {
    const client = new AuthdClient({ baseUrl: strict.url, fetch: recordTraffic({ cookieJar: true }).fetch });
    const account = newAccount('stepup');
    await client.signup(account);
    const before = client.getAccessToken();
    // Whole seconds on both sides: past 3 s the sign-in is surely older than 2 s.
    await new Promise((resolve) => setTimeout(resolve, 3100));
    await assert.rejects(client.request('POST', '/me/mfa/passkey-options'), authdError(403, 'reauthentication_required'));
    // A wrong password is a field error, not a 401 a client would take for an ended session.
    await assert.rejects(
      client.reauthenticate({ password: 'not the password at all' }),
      authdError(400, 'validation_failed', (e) => assert.equal(e.details[0]?.field, 'password')),
    );
    await client.reauthenticate({ password: account.password });
    const after = client.getAccessToken();
    assert.ok(after && after !== before, 'a new access token is held');
    const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    assert.equal(claims(after).sid, claims(before ?? '').sid, 'the same session');
    assert.ok(claims(after).auth_time > claims(before ?? '').auth_time, 'auth_time moved on');
    const started = await client.request('POST', '/me/mfa/passkey-options');
    assert.ok(started.ceremonyId, 'the sensitive action goes ahead');
  });

  test('a wrong second-factor code in a step-up is that call\'s 401: no refresh, the session stays', async () => {
    const traffic = recordTraffic({ cookieJar: true });
    let ended = 0;
    const client = new AuthdClient({ baseUrl: strict.url, fetch: traffic.fetch, onSessionEnded: () => (ended += 1) });
    const account = newAccount('stepup-totp');
    await client.signup(account);
    const enrolment = await client.request('POST', '/me/mfa/totp');
    await client.request('POST', '/me/mfa/totp/confirm', { body: { code: totp(enrolment.secret) } });
    const wrong = String((Number(totp(enrolment.secret)) + 500_000) % 1_000_000).padStart(6, '0');
    const mark = traffic.since(0).length;
    await assert.rejects(client.reauthenticate({ password: account.password, code: wrong }), authdError(401, 'invalid_mfa_code'));
    assert.equal(traffic.since(mark, 'POST /auth/refresh').length, 0, 'no refresh for an answer about the code');
    assert.equal(client.state, 'signed-in');
    assert.equal((await client.me()).email, account.email, 'the session still works');
    assert.equal(ended, 0, 'onSessionEnded was not called');
  });
});
