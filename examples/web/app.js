// authd browser example: one ES module, no framework, no build step. The auth logic is the
// @authd/client package (clients/typescript), imported from a copy of its built ES modules in
// ./vendor/authd-client/ (`npm run update:example` in clients/typescript refreshes it).
//
// What the client does for this page:
//  - The access token lives in the client's memory only: never localStorage, sessionStorage or a
//    cookie the page can read. A reload forgets it; the refresh cookie brings a new one.
//  - The refresh token lives only in authd's HttpOnly cookie: the client never asks for it in a
//    body (tokenTransport "cookie", the default), so the page never sees it. Every call uses
//    credentials: 'include', so the browser stores that cookie from the API's answers and sends it
//    back to /auth/refresh and /auth/logout, although the API is on another origin.
//  - An authenticated call that gets 401 triggers one refresh (concurrent 401s share it) and is
//    retried once. If authd refuses the refresh, the client calls onSessionEnded.
//  - 429, 503 overloaded (and any 503 of a GET) with a short Retry-After are retried once after
//    the wait; errors are AuthdError with authd's stable `code`.
//  - Passkeys (WebAuthn, when the browser has it): the client asks authd for the ceremony's
//    options, hands them to navigator.credentials and sends the authenticator's answer back:
//    adding one while signed in, signing in with one alone, or as the second step of a login.
//  - Sign-in with other providers: startOAuthSignIn() notes the start in this tab's sessionStorage
//    and navigates to authd's start URL; the provider sends the browser back here with the outcome
//    in the URL's fragment, which handleOAuthReturn() reads and removes from the address bar (it
//    may hold an mfaToken or a linkToken), honouring a second step or a link only on a return this
//    tab started. "Signed in" carries no token: authd set the refresh cookie, and the client makes
//    one refresh. A link is made only after the user confirms it.

import { AuthdClient, AuthdError } from './vendor/authd-client/index.js';

// The API's base URL: ?api=http://127.0.0.1:8080 (a base path too: ?api=https://example.com/api).
const API = (new URLSearchParams(location.search).get('api') || 'http://localhost:8080').replace(/\/+$/, '');

const client = new AuthdClient({
  baseUrl: API,
  onSessionEnded: () => showSignedOut('Your session has ended: please log in again.'),
  // Only to show the page's requests in its "Requests to authd" list.
  fetch: loggedFetch,
});

let mfaToken = null; // between a login that answered mfa-required and the second step
let pendingLink = null; // {linkToken, email, provider}: a provider's identity waiting for its account to sign in, then for the user's yes

// Signup answers a session, or (auth.require_email_verification) a message and no session.
async function signUp(fields) {
  const result = await client.signup(fields);
  if (result.status === 'verification-required') showSignedOut(result.message);
  else showSignedIn(result.user);
}

// Login answers a session, or (the account has a second factor) the step to take next.
async function logIn(fields) {
  const result = await client.login(fields);
  if (result.status === 'mfa-required') {
    mfaToken = result.mfaToken;
    showMfaStep(result.methods);
  } else {
    showSignedIn(result.user);
    askToLink();
  }
}

// The second step: a 6-digit code from the authenticator app, or one of the recovery codes.
async function verifySecondFactor({ code }) {
  const proof = /^\d{6}$/.test(code.trim()) ? { code: code.trim() } : { recoveryCode: code.trim() };
  const result = await client.verifyMfa({ mfaToken, ...proof });
  mfaToken = null;
  showSignedIn(result.user);
  askToLink();
}

// ---- passkeys ----

const PASSKEYS = typeof PublicKeyCredential === 'function';

// A passkey for the signed-in account (the browser asks for the authenticator: Touch ID, a
// security key, the phone). The account's first factor also brings recovery codes: shown once.
async function addPasskey() {
  const { passkey, recoveryCodes } = await client.registerPasskey({ name: `Passkey on ${navigator.platform || 'this device'}` });
  $('#message').textContent = `Passkey "${passkey.name}" added: you can sign in with it.`;
  if (recoveryCodes?.length) {
    $('#recovery-codes code').textContent = recoveryCodes.join(' ');
    $('#recovery-codes').hidden = false;
  }
}

// A passkey alone signs in. With the address box empty the device offers the passkeys it keeps
// for this site; with an address, the browser may offer that account's passkeys.
async function signInWithPasskey() {
  const email = $('#login-form [name=email]').value.trim();
  const result = await client.signInWithPasskey(email || undefined);
  $('#login-form').reset();
  showSignedIn(result.user);
  askToLink();
}

// The second step with a passkey instead of a code.
async function verifyWithPasskey() {
  const result = await client.verifyMfaWithPasskey(mfaToken);
  mfaToken = null;
  showSignedIn(result.user);
  askToLink();
}

// ---- sign-in with other providers ----

// One button per provider authd offers; none (and no box) when it offers none.
async function showProviders() {
  const providers = await client.providers();
  $('#provider-buttons').replaceChildren(
    ...providers.map((provider) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.provider = provider.name;
      button.textContent = `Sign in with ${provider.displayName}`;
      button.addEventListener('click', () => signInWith(provider.name));
      return button;
    }),
  );
  $('#providers').hidden = providers.length === 0;
}

// A top-level navigation, not fetch: the provider's pages need the window, and authd's cookie
// that ties the round trip to this browser must travel with it. It comes back to this very URL
// (authd's oauth.allowed_return_urls must allow it), the outcome in the fragment. The client
// first notes in this tab's sessionStorage that it started a sign-in: a return URL someone else
// made (with their mfaToken or linkToken) finds no note and is refused.
function signInWith(provider) {
  client.startOAuthSignIn(provider, { returnTo: location.href });
}

// What the fragment can say besides "signed in" and "second step", for people.
const PROVIDER_ERRORS = {
  oauth_cancelled: 'The sign-in was cancelled at the provider.',
  oauth_state_invalid: 'That sign-in expired or was started in another browser: please try again.',
  oauth_failed: "The provider's answer could not be verified.",
  provider_unavailable: 'The provider cannot be reached: please try again later.',
  identity_email_missing: 'The provider did not share an email address.',
  identity_email_unverified: 'That address has an account here, and the provider has not verified it: log in with your password instead.',
  signup_disabled: 'There is no account for that identity, and new accounts are closed.',
  identity_taken: 'That identity is already linked to another account.',
  account_locked: 'This account is locked.',
  email_not_verified: 'Please confirm your email address first (see the mail we sent).',
  oauth_return_unexpected: 'This page did not start that sign-in (an old or forwarded link?): nothing was done. Use the buttons to sign in.',
};

// On load: did a provider round trip bring the browser back here? (null: an ordinary load)
async function handleProviderReturn() {
  const outcome = await client.handleOAuthReturn(); // reads location.hash, then clears it
  switch (outcome?.status) {
    case 'signed-in': // the client already refreshed once with the cookie authd set
      showSignedIn(outcome.user);
      $('#message').textContent = 'Signed in with your provider.';
      return true;
    case 'mfa-required': // the same second step as a password login
      mfaToken = outcome.mfaToken;
      showMfaStep(outcome.methods, 'Your provider signed you in: one more step');
      return true;
    case 'link-required': // never linked silently: the account signs in first, then the user confirms
      pendingLink = { linkToken: outcome.linkToken, email: outcome.email, provider: outcome.provider };
      await restoreSession();
      $('#message').textContent = `${outcome.email} already has an account: log in to it, and you will be asked whether to link your ${outcome.provider} account to it.`;
      if ($('#status').dataset.state === 'signed-in') askToLink();
      return true;
    case 'verification-sent':
      await restoreSession();
      $('#message').textContent = 'Account created: confirm your address with the link we mailed you, then sign in.';
      return true;
    case 'linked':
      await restoreSession();
      $('#message').textContent = 'Your provider is linked to this account.';
      return true;
    case 'error':
      await restoreSession();
      $('#error').textContent = `${PROVIDER_ERRORS[outcome.code] ?? 'Signing in with your provider failed.'} (${outcome.code})`;
      return true;
    default:
      return false;
  }
}

// Signed in after link-required: ask before the provider's identity joins this account. Only
// the user's yes links it (a link the user did not ask for would let that identity sign in here).
function askToLink() {
  if (!pendingLink) return;
  $('#link-question').textContent = `Link your ${pendingLink.provider} account ${pendingLink.email} to this account?`;
  $('#link-confirm').hidden = false;
}

async function confirmLink() {
  const { linkToken } = pendingLink ?? {};
  pendingLink = null;
  $('#link-confirm').hidden = true;
  if (!linkToken) return;
  const identity = await client.linkIdentity(linkToken);
  $('#message').textContent = `Linked your ${identity.provider} identity (${identity.email ?? 'no address'}) to this account.`;
}

function declineLink() {
  pendingLink = null;
  $('#link-confirm').hidden = true;
  $('#message').textContent = 'Nothing was linked.';
}

async function logout() {
  // The cookie names the session to end; the Bearer token (even an expired one) is denied too.
  // Only a logout authd answered ends the session: if this throws (authd unreachable, a 5xx),
  // the page stays signed in and shows the error, since the cookie would restore the session.
  await client.logout();
  showSignedOut('Logged out.');
}

async function loadAccount() {
  // Two calls at once: after the access token expired both get 401 and share one refresh.
  const [me, sessions] = await Promise.all([client.me(), client.sessions()]);
  showSignedIn(me);
  $('#profile').textContent = JSON.stringify(me, null, 2);
  $('#sessions').replaceChildren(
    ...sessions.map((s) => {
      const li = document.createElement('li');
      li.textContent = `${s.current ? 'this session' : 'session'} since ${s.createdAt}, ${s.userAgent ?? 'unknown agent'}`;
      return li;
    }),
  );
}

// On load: the access token is gone (memory only), but the refresh cookie may still be there.
async function restoreSession() {
  try {
    if (await client.restoreSession()) return showSignedIn(await client.me());
    showSignedOut();
  } catch (e) {
    showSignedOut(); // authd unreachable, or this origin not allowed: the forms, and the error
    throw e;
  }
}

// The page's request list: every call the client makes, with its status and error code.
async function loggedFetch(input, init) {
  const method = init?.method ?? 'GET';
  const path = new URL(String(input)).pathname.slice(new URL(API).pathname.replace(/\/$/, '').length);
  let res;
  try {
    res = await fetch(input, init);
  } catch (e) {
    logRequest(method, path, 'network error (authd down, or this origin is not allowed by CORS)');
    throw e;
  }
  const code = res.ok ? undefined : await res.clone().json().then((b) => b.code, () => undefined);
  logRequest(method, path, res.status, code);
  return res;
}

// ---- the page ------------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

function showSignedIn(user) {
  $('#status').dataset.state = 'signed-in';
  $('#status').textContent = `Signed in as ${user.email}`;
  $('#auth-forms').hidden = true;
  $('#mfa-form').hidden = true;
  $('#add-passkey').hidden = !PASSKEYS;
}

function showMfaStep(methods, text = 'Password accepted: one more step') {
  $('#status').dataset.state = 'signed-out'; // no session until the second step
  $('#status').textContent = text;
  $('#auth-forms').hidden = true;
  $('#mfa-form').hidden = false;
  $('#mfa-methods').textContent = methods.join(', ');
  $('#mfa-passkey').hidden = !(PASSKEYS && methods.includes('passkey'));
}

function showSignedOut(message = '') {
  $('#status').dataset.state = 'signed-out';
  $('#status').textContent = 'Signed out';
  $('#auth-forms').hidden = false;
  $('#mfa-form').hidden = true;
  $('#profile').textContent = '(not loaded)';
  $('#sessions').replaceChildren();
  $('#add-passkey').hidden = true;
  $('#recovery-codes').hidden = true;
  $('#link-confirm').hidden = true;
  $('#message').textContent = message;
}

function showError(e) {
  const lines = [e instanceof AuthdError ? `${e.message} (${e.status} ${e.code})` : `${e.message}`];
  for (const d of e instanceof AuthdError ? e.details : []) lines.push(`${d.field}: ${d.message}`);
  $('#error').textContent = lines.join('\n');
}

function logRequest(method, path, status, code) {
  const li = document.createElement('li');
  li.textContent = `${method} ${path} → ${status}${code ? ` ${code}` : ''}`;
  if (typeof status !== 'number' || status >= 400) li.className = 'failed';
  $('#log').append(li);
  while ($('#log').children.length > 20) $('#log').firstElementChild.remove();
}

// Runs an action from a button or form, showing its error if it fails.
function action(fn) {
  return async (event) => {
    event.preventDefault();
    $('#error').textContent = '';
    $('#message').textContent = '';
    try {
      await fn(event);
    } catch (e) {
      showError(e);
    }
  };
}

function formFields(form) {
  const fields = Object.fromEntries(new FormData(form));
  if (fields.name === '') delete fields.name;
  return fields;
}

$('#api').textContent = API;
for (const [form, submit] of [['#signup-form', signUp], ['#login-form', logIn], ['#mfa-form', verifySecondFactor]]) {
  $(form).addEventListener('submit', action(async (e) => {
    await submit(formFields(e.target));
    e.target.reset(); // do not keep the password (or the code) in the page
  }));
}
$('#load').addEventListener('click', action(loadAccount));
$('#logout').addEventListener('click', action(logout));
$('#add-passkey').addEventListener('click', action(addPasskey));
$('#passkey-login').addEventListener('click', action(signInWithPasskey));
$('#mfa-passkey').addEventListener('click', action(verifyWithPasskey));
$('#link-yes').addEventListener('click', action(confirmLink));
$('#link-no').addEventListener('click', action(declineLink));
$('#passkey-login').hidden = !PASSKEYS;
showProviders().catch(() => {}); // no buttons when authd cannot list them (the request list shows why)
handleProviderReturn()
  .then((handled) => handled || restoreSession())
  .catch((e) => {
    showError(e);
    if ($('#status').dataset.state === 'unknown') showSignedOut();
  });
