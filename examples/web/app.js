// authd browser example: one ES module, no framework, no build step.
//
// What it shows a frontend team:
//  - The access token lives in this module's memory only: never localStorage, sessionStorage or a
//    cookie the page can read. A reload forgets it; the refresh cookie brings a new one.
//  - The refresh token lives only in authd's HttpOnly cookie. This page never asks for it in a
//    body (no "tokenTransport": "body"), so it never sees it. Every call uses
//    credentials: 'include', so the browser stores that cookie from the API's answers and sends it
//    back to /auth/refresh and /auth/logout, although the API is on another origin.
//  - An authenticated call that gets 401 triggers one refresh (concurrent 401s share it) and is
//    retried once. If the refresh fails, the page shows the signed-out state.

// The API's base URL: ?api=http://127.0.0.1:8080 (a base path too: ?api=https://example.com/api).
const API = (new URLSearchParams(location.search).get('api') || 'http://localhost:8080').replace(/\/+$/, '');

let accessToken = null; // in memory only
let refreshes = 0; // refreshes started so far
let refreshing = null; // the latest refresh (a promise), shared by the calls it answers

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code; // authd's stable error codes, e.g. invalid_credentials, token_expired
    this.details = body?.details ?? [];
  }
}

// One request to authd. Returns { res, data }; throws only when there is no answer at all (network
// down, or the browser blocked it: CORS).
async function send(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'include', // store and send the HttpOnly refresh cookie across origins
    });
  } catch (e) {
    logRequest(method, path, 'network error (authd down, or this origin is not allowed by CORS)');
    throw e;
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  logRequest(method, path, res.status, data?.code);
  return { res, data };
}

// POST /auth/refresh, shared: `seen` is how many refreshes had started when the failing call was
// sent. If one has started since, its outcome answers this 401 too, finished or not, so calls that
// fail together cause ONE refresh. Resolves to true when there is a new access token. The cookie
// goes along by itself; the answer's body is read for accessToken only.
function refreshSince(seen) {
  if (refreshes === seen) {
    refreshes += 1;
    refreshing = (async () => {
      try {
        const { res, data } = await send('POST', '/auth/refresh');
        accessToken = res.ok ? data.accessToken : null;
      } catch {
        accessToken = null;
      }
      return accessToken !== null;
    })();
  }
  return refreshing;
}

// An authenticated call: Bearer from memory; on 401, refresh (shared) and retry once.
async function authed(method, path, body) {
  await refreshing; // a refresh under way is about to replace the token: wait for it
  const seen = refreshes;
  let { res, data } = await send(method, path, { body, token: accessToken });
  if (res.status === 401) {
    if (!(await refreshSince(seen))) {
      showSignedOut('Your session has ended: please log in again.');
      throw new ApiError(res.status, data);
    }
    ({ res, data } = await send(method, path, { body, token: accessToken }));
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Signup and login answer {user, accessToken, tokenType, expiresIn} and set the refresh cookie.
async function signIn(path, fields) {
  const { res, data } = await send('POST', path, { body: fields });
  if (!res.ok) throw new ApiError(res.status, data);
  if (!data.accessToken) {
    // auth.require_email_verification: signup answers {user, message} and no tokens.
    showSignedOut(data.message);
    return;
  }
  accessToken = data.accessToken;
  showSignedIn(data.user);
}

async function logout() {
  try {
    // The cookie names the session to end; the Bearer token (even an expired one) is denied too.
    await send('POST', '/auth/logout', { token: accessToken });
  } finally {
    showSignedOut('Logged out.');
  }
}

async function loadAccount() {
  // Two calls at once: after the access token expired both get 401 and share one refresh.
  const [me, sessions] = await Promise.all([authed('GET', '/me'), authed('GET', '/auth/sessions')]);
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
  if (await refreshSince(refreshes)) {
    showSignedIn(await authed('GET', '/me'));
  } else {
    showSignedOut();
  }
}

// ---- the page ------------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

function showSignedIn(user) {
  $('#status').dataset.state = 'signed-in';
  $('#status').textContent = `Signed in as ${user.email}`;
  $('#auth-forms').hidden = true;
}

function showSignedOut(message = '') {
  accessToken = null;
  $('#status').dataset.state = 'signed-out';
  $('#status').textContent = 'Signed out';
  $('#auth-forms').hidden = false;
  $('#profile').textContent = '(not loaded)';
  $('#sessions').replaceChildren();
  $('#message').textContent = message;
}

function showError(e) {
  const lines = [e instanceof ApiError ? `${e.message} (${e.status} ${e.code})` : `${e.message}`];
  for (const d of e.details ?? []) lines.push(`${d.field}: ${d.message}`);
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
for (const [form, path] of [['#signup-form', '/auth/signup'], ['#login-form', '/auth/login']]) {
  $(form).addEventListener('submit', action(async (e) => {
    await signIn(path, formFields(e.target));
    e.target.reset(); // do not keep the password in the page
  }));
}
$('#load').addEventListener('click', action(loadAccount));
$('#logout').addEventListener('click', action(logout));
restoreSession().catch(showError);
