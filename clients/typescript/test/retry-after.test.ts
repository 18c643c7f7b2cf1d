// Retry-After against a real authd whose credential limit is 1 request per 2 s on
// /auth/password/forgot and /auth/email/resend (and off the other routes): a second call within
// the window gets a real 429 with Retry-After. The client waits that long and retries once, or,
// past its cap, fails at once with the typed error. 503 (authd's hasher queue full) cannot be
// caused on demand, so it is checked against a scripted fetch.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { AuthdClient, AuthdError, parseRetryAfter } from '@authd/client';

import { startAuthd, type Authd } from './support/authd.js';
import { authdError } from './support/fixtures.js';
import { recordTraffic, show } from './support/traffic.js';

const WINDOW_SECONDS = 2;
// Timers and the clock are not exact to the millisecond: a lower bound with a small margin.
const MARGIN_MS = 50;

let authd: Authd;
before(async () => {
  authd = await startAuthd({
    AUTHD__RATE_LIMIT__AUTH_ROUTES: '/auth/password/forgot,/auth/email/resend',
    AUTHD__RATE_LIMIT__AUTH_MAX: '1',
    AUTHD__RATE_LIMIT__AUTH_WINDOW_SECONDS: String(WINDOW_SECONDS),
  });
});
after(async () => {
  await authd?.stop();
});

describe('429 from authd', () => {
  test('Retry-After within the cap: the client waits that long, retries once, and succeeds', async () => {
    const traffic = recordTraffic();
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, maxRetryAfterSeconds: 5 });
    await client.forgotPassword('someone@example.com');
    const mark = traffic.mark();
    await client.forgotPassword('someone@example.com'); // resolves: the retry was accepted
    const calls = traffic.since(mark);
    assert.equal(show(calls), 'POST /auth/password/forgot 429, POST /auth/password/forgot 202');
    const [limited, retry] = calls;
    assert.ok(limited && retry);
    assert.equal((limited.responseBody as { code: string }).code, 'rate_limited');
    const retryAfter = Number(limited.responseHeaders.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= WINDOW_SECONDS, `Retry-After: ${retryAfter}`);
    const waited = retry.sentAt - limited.answeredAt;
    assert.ok(waited >= retryAfter * 1000 - MARGIN_MS, `retried after ${waited.toFixed(0)} ms, Retry-After was ${retryAfter} s`);
  });

  test('Retry-After past maxRetryAfterSeconds: AuthdError rate_limited at once, no retry', async () => {
    const traffic = recordTraffic();
    const client = new AuthdClient({ baseUrl: authd.url, fetch: traffic.fetch, maxRetryAfterSeconds: 1 });
    await client.resendVerification('someone@example.com');
    const mark = traffic.mark();
    const started = performance.now();
    await assert.rejects(
      client.resendVerification('someone@example.com'),
      authdError(429, 'rate_limited', (e) => {
        assert.equal(e.retryAfterSeconds, WINDOW_SECONDS, 'the error says how long to wait');
        assert.ok(e.requestId);
      }),
    );
    assert.ok(performance.now() - started < 1000, 'it did not wait');
    assert.equal(show(traffic.since(mark)), 'POST /auth/email/resend 429');
  });
});

describe('503 (scripted answers)', () => {
  /** A fetch answering from a script, recording when each request came. */
  function scripted(...answers: Array<() => Response>) {
    const times: number[] = [];
    const fetch: typeof globalThis.fetch = async () => {
      times.push(performance.now());
      const next = answers.shift();
      if (!next) throw new Error('unexpected request');
      return next();
    };
    return { fetch, times };
  }
  const overloaded = (retryAfter?: string) => () =>
    new Response(JSON.stringify({ error: 'busy', code: 'overloaded', statusCode: 503, requestId: 'r-1', timestamp: '' }), {
      status: 503,
      headers: retryAfter ? { 'retry-after': retryAfter, 'content-type': 'application/json' } : { 'content-type': 'application/json' },
    });
  const ok = () => new Response(JSON.stringify({ message: 'on its way' }), { status: 202 });
  // authd's 503 when the store or cache failed mid-handler: perhaps after the work was done.
  const unavailable = () => () =>
    new Response(JSON.stringify({ error: 'a backing service is unavailable', code: 'unavailable', statusCode: 503, requestId: 'r-2', timestamp: '' }), {
      status: 503,
      headers: { 'retry-after': '1', 'content-type': 'application/json' },
    });
  const user = () => new Response(JSON.stringify({ id: 'u', email: 'a@example.com' }), { status: 200 });

  test('503 unavailable: a POST is not repeated (signup may have made the account); a GET is', async () => {
    const post = scripted(unavailable());
    await assert.rejects(new AuthdClient({ baseUrl: 'http://authd.test', fetch: post.fetch }).forgotPassword('a@example.com'), authdError(503, 'unavailable'));
    assert.equal(post.times.length, 1, 'one request');
    const proxy = scripted(() => new Response('<html>busy</html>', { status: 503, headers: { 'retry-after': '0' } }));
    await assert.rejects(new AuthdClient({ baseUrl: 'http://authd.test', fetch: proxy.fetch }).signup({ email: 'a@example.com', password: 'pw' }), authdError(503, 'unexpected_response'));
    assert.equal(proxy.times.length, 1, 'a 503 that is not overloaded is not repeated for a POST');
    const get = scripted(unavailable(), user);
    assert.equal((await new AuthdClient({ baseUrl: 'http://authd.test', fetch: get.fetch }).me()).email, 'a@example.com');
    assert.equal(get.times.length, 2, 'GET: retried once');
  });

  test('503 overloaded with Retry-After: 1 is retried once after a second', async () => {
    const { fetch, times } = scripted(overloaded('1'), ok);
    await new AuthdClient({ baseUrl: 'http://authd.test', fetch }).forgotPassword('a@example.com');
    assert.equal(times.length, 2);
    assert.ok(times[1]! - times[0]! >= 1000 - MARGIN_MS, `waited ${times[1]! - times[0]!} ms`);
  });

  test('a second 503 is the answer (retried once only); no Retry-After means no retry', async () => {
    const twice = scripted(overloaded('0'), overloaded('0'));
    await assert.rejects(new AuthdClient({ baseUrl: 'http://authd.test', fetch: twice.fetch }).forgotPassword('a@example.com'), authdError(503, 'overloaded'));
    assert.equal(twice.times.length, 2);
    const bare = scripted(overloaded());
    await assert.rejects(
      new AuthdClient({ baseUrl: 'http://authd.test', fetch: bare.fetch }).forgotPassword('a@example.com'),
      (e) => e instanceof AuthdError && e.code === 'overloaded' && e.retryAfterSeconds === null && e.requestId === 'r-1',
    );
    assert.equal(bare.times.length, 1);
  });

  test('an abort during the wait ends the call at once', async () => {
    const { fetch, times } = scripted(overloaded('3'), ok);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('user left the page')), 100);
    const started = performance.now();
    await assert.rejects(
      new AuthdClient({ baseUrl: 'http://authd.test', fetch }).request('POST', '/auth/password/forgot', { body: { email: 'a@example.com' }, signal: controller.signal }),
      /user left the page/,
    );
    assert.ok(performance.now() - started < 2000);
    assert.equal(times.length, 1);
  });

  test('parseRetryAfter reads delta-seconds and IMF-fixdate HTTP dates, nothing else', () => {
    assert.equal(parseRetryAfter('3'), 3);
    assert.equal(parseRetryAfter(' 2 '), 2);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter('soon'), null);
    const inTenSeconds = parseRetryAfter(new Date(Date.now() + 10_000).toUTCString());
    assert.ok(inTenSeconds !== null && inTenSeconds >= 9 && inTenSeconds <= 10, String(inTenSeconds));
    assert.equal(parseRetryAfter('Thu, 01 Jan 1970 00:00:00 GMT'), 0, 'a date in the past: no wait');
    // Date.parse reads each of these as some date (`1.5` as January 2001): an immediate retry.
    for (const odd of ['1.5', '-1', '', '1e3', '0x10', '2030-01-01T00:00:00Z', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Sun Nov  6 08:49:37 1994']) {
      assert.equal(parseRetryAfter(odd), null, JSON.stringify(odd));
    }
  });

  test('an unreadable Retry-After is no Retry-After: no retry', async () => {
    const { fetch, times } = scripted(overloaded('1.5'), ok);
    await assert.rejects(new AuthdClient({ baseUrl: 'http://authd.test', fetch }).forgotPassword('a@example.com'), (e) => e instanceof AuthdError && e.code === 'overloaded' && e.retryAfterSeconds === null);
    assert.equal(times.length, 1);
  });

  test('details that are not a list (a proxy\'s rewrite) are an empty list', async () => {
    const { fetch } = scripted(() => new Response(JSON.stringify({ error: 'bad', code: 'validation_failed', statusCode: 400, requestId: 'r-3', timestamp: 'then', details: { field: 'email' } }), { status: 400 }));
    await assert.rejects(
      new AuthdClient({ baseUrl: 'http://authd.test', fetch }).forgotPassword('a@example.com'),
      authdError(400, 'validation_failed', (e) => assert.deepEqual([e.details, e.timestamp, e.requestId], [[], 'then', 'r-3'])),
    );
  });

  test('an answer that is not authd\'s error shape is unexpected_response', async () => {
    const { fetch } = scripted(() => new Response('<html>Bad Gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    await assert.rejects(new AuthdClient({ baseUrl: 'http://authd.test', fetch }).me(), authdError(502, 'unexpected_response'));
  });
});
