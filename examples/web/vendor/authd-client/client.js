// Copied from clients/typescript/dist/client.js by `npm run update:example`: do not edit here.
import { AuthdError, parseRetryAfter } from './errors.js';
import { noteOAuthStart, parseOAuthReturn, takeOAuthStart, withoutFragment } from './oauth.js';
import { creationOptions, credentialJson, platformWebAuthn, requestOptions } from './passkeys.js';
import { memoryStorage } from './storage.js';
/** `request()` refuses the calls that change the client's own session: their named methods keep
 * the client's state (token, `state`, stored refresh token, the shared refresh) right. */
const SESSION_CALLS = {
    'POST /auth/refresh': 'refresh() or restoreSession()',
    'POST /auth/logout': 'logout()',
    'POST /auth/logout-all': 'logoutAll()',
    'DELETE /me': 'deleteAccount()',
};
/** The outcome of a refresh that a sign-in or sign-out overtook: nothing of it was applied. */
const STALE = Symbol('stale refresh');
// A Record over the schema-derived union: regenerating the schema with a new such path fails to
// compile until it is listed here, so body transport cannot silently miss an endpoint.
const TAKES_TRANSPORT = {
    '/auth/signup': true,
    '/auth/login': true,
    '/auth/refresh': true,
    '/auth/logout': true,
    '/auth/mfa/verify': true,
    '/auth/email/login/verify': true,
    '/auth/passkey/login': true,
    '/auth/oauth/{provider}/token': true,
};
// 401 codes that mean "this access token is missing or no good": worth one refresh and a retry.
// Other 401s (invalid_credentials, invalid_mfa_code, mfa_token_invalid, refresh_token_reused) are
// answers about what the call itself sent.
const ACCESS_TOKEN_CODES = new Set(['unauthorized', 'token_expired', 'token_invalid']);
const ANONYMOUS = { bearer: false, refreshOn401: false };
const AUTHENTICATED = { bearer: true, refreshOn401: true };
export class AuthdClient {
    #baseUrl;
    #transport;
    #storage;
    #maxRetryAfterSeconds;
    #onSessionEnded;
    #fetch;
    // In memory only (a private field): never web storage, never a readable cookie.
    #accessToken = null;
    /** `expiresIn` of the answer that brought the access token. */
    #expiresIn = null;
    #state = 'unknown';
    // The session generation: bumped whenever a token is kept and whenever the session is
    // forgotten. A refresh applies its outcome only if it is unchanged since the refresh started,
    // so one overtaken by a login or logout can neither end the new session nor undo the logout.
    #generation = 0;
    // One refresh at a time. `#refreshes` counts refreshes started; a call remembers the count when
    // it is sent, and on 401 joins the latest refresh if one started since (finished or not),
    // else starts one. So calls that fail together share ONE `POST /auth/refresh`.
    #refreshes = 0;
    #latestRefresh = null;
    #refreshInFlight = null;
    constructor(options) {
        this.#baseUrl = options.baseUrl.replace(/\/+$/, '');
        this.#transport = options.tokenTransport ?? 'cookie';
        this.#storage = options.refreshTokenStorage ?? memoryStorage();
        this.#maxRetryAfterSeconds = options.maxRetryAfterSeconds ?? 5;
        this.#onSessionEnded = options.onSessionEnded;
        // Bound: a bare `fetch` called as a method of another object throws "Illegal invocation" in browsers.
        this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    }
    get state() {
        return this.#state;
    }
    /** The current access token, for calling your own APIs with it. Keep it in memory too. */
    getAccessToken() {
        return this.#accessToken;
    }
    /**
     * Any endpoint of the OpenAPI document, typed from it: `request('GET', '/admin/users',
     * { params: { query: { limit: 20 } } })`, `request('DELETE', '/auth/sessions/{id}',
     * { params: { path: { id } } })`. Sends the access token, refreshes on 401 like every
     * authenticated call, and keeps any access (or, body transport, refresh) token an answer carries.
     * The calls that change the client's own session are refused with a `TypeError` naming the
     * method to use: `POST /auth/refresh` (`refresh`, `restoreSession`), `POST /auth/logout`
     * (`logout`), `POST /auth/logout-all` (`logoutAll`), `DELETE /me` (`deleteAccount`).
     */
    request(method, path, ...[options]) {
        const named = SESSION_CALLS[`${method} ${path}`];
        if (named) {
            return Promise.reject(new TypeError(`request('${method}', '${path}') would leave the client's session state behind: use ${named}`));
        }
        return this.#typed(method, path, options, AUTHENTICATED);
    }
    // ---- the auth flows ----------------------------------------------------------------------
    /** `POST /auth/signup`: signed in, or (email verification required) not yet. */
    async signup(body) {
        const res = await this.#typed('POST', '/auth/signup', { body }, ANONYMOUS);
        if ('accessToken' in res)
            return signedIn(res);
        return { status: 'verification-required', user: res.user, message: res.message };
    }
    /** `POST /auth/login`: signed in, or the second step to take (`verifyMfa`). */
    async login(body) {
        const res = await this.#typed('POST', '/auth/login', { body }, ANONYMOUS);
        if ('mfaToken' in res) {
            return { status: 'mfa-required', mfaToken: res.mfaToken, methods: res.methods, expiresIn: res.expiresIn };
        }
        return signedIn(res);
    }
    /** `POST /auth/mfa/verify`: the second step of a login, with `code`, `recoveryCode` or a passkey's `credential`. */
    async verifyMfa(body) {
        return signedIn(await this.#typed('POST', '/auth/mfa/verify', { body }, ANONYMOUS));
    }
    /**
     * `POST /auth/reauthenticate`: the session proves itself again, for a sensitive action that
     * answered 403 `reauthentication_required` (adding or removing a factor, the password, deleting
     * the account): the password, with `code` or `recoveryCode` when the account has a second
     * factor. The new access token (same session, `auth_time` now) replaces the old one.
     */
    async reauthenticate(proof) {
        await this.#typed('POST', '/auth/reauthenticate', { body: proof }, AUTHENTICATED);
    }
    // ---- passkeys: `webauthn` defaults to the browser's navigator.credentials ----
    /** `reauthenticate` with a passkey instead of the password: `POST /auth/reauthenticate/passkey-options`, the authenticator, `POST /auth/reauthenticate`. */
    async reauthenticateWithPasskey(options = {}) {
        const webauthn = options.webauthn ?? platformWebAuthn();
        const { signal } = options;
        const started = await this.#typed('POST', '/auth/reauthenticate/passkey-options', { signal }, AUTHENTICATED);
        const credential = credentialJson(await webauthn.get(ceremony(requestOptions(started.options), options)));
        const body = { ceremonyId: started.ceremonyId, credential };
        await this.#typed('POST', '/auth/reauthenticate', { body, signal }, AUTHENTICATED);
    }
    /**
     * Registers a passkey for the signed-in user: `POST /me/mfa/passkey-options`, the
     * authenticator, `POST /me/mfa/passkeys`. Needs a recent sign-in (403
     * `reauthentication_required` otherwise). With the account's first factor come `recoveryCodes`:
     * show them once.
     */
    async registerPasskey(options = {}) {
        const webauthn = options.webauthn ?? platformWebAuthn();
        const { signal } = options;
        const started = await this.#typed('POST', '/me/mfa/passkey-options', { signal }, AUTHENTICATED);
        const publicKey = creationOptions(started.options);
        const credential = credentialJson(await webauthn.create(signal === undefined ? { publicKey } : { publicKey, signal }));
        const body = { ceremonyId: started.ceremonyId, credential, name: options.name };
        return this.#typed('POST', '/me/mfa/passkeys', { body, signal }, AUTHENTICATED);
    }
    /**
     * Signs in with a passkey alone: `POST /auth/passkey/options`, the authenticator, `POST /auth/passkey/login`.
     * Without `email` the authenticator offers the passkeys it keeps for the site and its answer
     * names the account (nothing tells whether an address has an account); with it, the passkeys of
     * that address's account are listed (also those the authenticator does not keep).
     * `mediation: 'conditional'` (without `email`) offers the passkeys in the browser's autofill;
     * `signal` aborts the wait (and the requests).
     */
    async signInWithPasskey(email, options = {}) {
        const webauthn = options.webauthn ?? platformWebAuthn();
        const { signal } = options;
        const asked = email === undefined ? {} : { email };
        const started = await this.#typed('POST', '/auth/passkey/options', { body: asked, signal }, ANONYMOUS);
        const credential = credentialJson(await webauthn.get(ceremony(requestOptions(started.options), options)));
        const body = { ceremonyId: started.ceremonyId, credential };
        return signedIn(await this.#typed('POST', '/auth/passkey/login', { body, signal }, ANONYMOUS));
    }
    /** The second step of a login with a passkey (when `methods` lists `passkey`): `POST /auth/mfa/passkey-options`, the authenticator, `verifyMfa`. */
    async verifyMfaWithPasskey(mfaToken, options = {}) {
        const webauthn = options.webauthn ?? platformWebAuthn();
        const { signal } = options;
        const started = await this.#typed('POST', '/auth/mfa/passkey-options', { body: { mfaToken }, signal }, ANONYMOUS);
        const credential = credentialJson(await webauthn.get(ceremony(requestOptions(started.options), options)));
        return signedIn(await this.#typed('POST', '/auth/mfa/verify', { body: { mfaToken, credential }, signal }, ANONYMOUS));
    }
    /**
     * `POST /auth/refresh` now (joining one under way). Resolves when there is a new access token;
     * rejects with the `AuthdError` if authd refused (the client is then signed out) or could not
     * answer. Calls refresh by themselves on 401: this is for refreshing ahead of expiry.
     */
    async refresh() {
        const failure = await this.#refreshNow();
        if (failure)
            throw failure;
    }
    /**
     * On start-up (a page load, an app launch): the access token is gone, the refresh cookie (or the
     * stored refresh token) may still be valid. True when that restored a session; false when there
     * is none, without `onSessionEnded`. Rejects only when authd could not answer.
     */
    async restoreSession() {
        const failure = await this.#refreshNow();
        return failure === null;
    }
    /**
     * `POST /auth/logout`: ends this session on authd (idempotent), then forgets it here. Only an
     * answer from authd that the session is over (2xx, or 401: nothing left to end) signs the client
     * out. Anything else (no answer, a 5xx, a 429 or 503 past the retry) rejects and keeps the
     * session: in a browser the HttpOnly refresh cookie, which only authd can clear, would still
     * sign the next `restoreSession()` back in. Tell the user the logout failed, and let them retry.
     */
    async logout() {
        try {
            // The cookie or the body's refresh token names the session; the Bearer token (even an
            // expired one) is denied at once too.
            await this.#typed('POST', '/auth/logout', {}, { bearer: true, refreshOn401: false });
        }
        catch (e) {
            if (!(e instanceof AuthdError && e.status === 401))
                throw e;
        }
        await this.#forget();
    }
    /** `POST /auth/logout-all`: ends every session of the user, this one included. */
    async logoutAll() {
        const res = await this.#typed('POST', '/auth/logout-all', {}, AUTHENTICATED);
        await this.#forget();
        return { revokedSessions: res.revokedSessions };
    }
    /**
     * `DELETE /me` (a recent sign-in needed): deletes the account with the password's proof; every
     * session ends, and the client forgets its own (no `onSessionEnded`). A wrong password is 400
     * `validation_failed` naming `password`; the last admin gets 409 `last_admin`.
     */
    async deleteAccount(body) {
        await this.#typed('DELETE', '/me', { body }, AUTHENTICATED);
        await this.#forget();
    }
    /** `GET /me`. */
    me() {
        return this.#typed('GET', '/me', {}, AUTHENTICATED);
    }
    /** `GET /auth/sessions`: the user's sessions, `current` marking this one. */
    sessions() {
        return this.#typed('GET', '/auth/sessions', {}, AUTHENTICATED);
    }
    /** `DELETE /auth/sessions/{id}`: ends one of the user's sessions (e.g. a lost phone's). */
    async revokeSession(id) {
        await this.#typed('DELETE', '/auth/sessions/{id}', { params: { path: { id } } }, AUTHENTICATED);
    }
    /** `POST /auth/password/forgot`: mails a reset link; the same answer whether or not the address has an account. */
    async forgotPassword(email) {
        await this.#typed('POST', '/auth/password/forgot', { body: { email } }, ANONYMOUS);
    }
    /**
     * `POST /auth/password/reset` with the emailed token (or, without `token`, the `one_time_token`
     * cookie from `POST /auth/tokens/validate`). Every session of the user ends, so this client is
     * signed out too.
     */
    async resetPassword(body) {
        const res = await this.#typed('POST', '/auth/password/reset', { body }, ANONYMOUS);
        await this.#forget();
        return { revokedSessions: res.revokedSessions };
    }
    /** `POST /auth/password/change`: the user's other sessions end; this one goes on. */
    async changePassword(body) {
        const res = await this.#typed('POST', '/auth/password/change', { body }, AUTHENTICATED);
        return { revokedSessions: res.revokedSessions };
    }
    /** `POST /auth/email/verify` with the emailed token (or, without it, the `one_time_token` cookie). */
    async verifyEmail(token) {
        await this.#typed('POST', '/auth/email/verify', { body: token === undefined ? {} : { token } }, ANONYMOUS);
    }
    /** `POST /auth/email/resend`: the same answer whether or not the address has an account. */
    async resendVerification(email) {
        await this.#typed('POST', '/auth/email/resend', { body: { email } }, ANONYMOUS);
    }
    // ---- sign-in with other providers (OAuth 2.0 / OpenID Connect) -----------------------------
    /** `GET /auth/oauth/providers`: the providers to offer (`[]` when none is configured). */
    providers() {
        return this.#typed('GET', '/auth/oauth/providers', {}, ANONYMOUS);
    }
    /**
     * Where to send the browser (a top-level navigation: `location.assign(url)`, or a link; not
     * `fetch`) to sign in with `provider`. It comes back to `returnTo` (default: authd's first
     * allowed return URL) with the outcome in the fragment: call `handleOAuthReturn()` on that page.
     * `returnTo` must be on authd's `oauth.allowed_return_urls`; its own fragment is dropped (the
     * outcome replaces it, and an old outcome must not travel).
     */
    oauthStartUrl(provider, returnTo) {
        const url = `${this.#baseUrl}/auth/oauth/${pathSegment('/auth/oauth/{provider}/start', 'provider', provider)}/start`;
        return returnTo === undefined ? url : `${url}?${new URLSearchParams({ returnTo: withoutFragment(returnTo) })}`;
    }
    /**
     * Sends the browser to sign in with `provider` (browsers only): notes in this tab's
     * sessionStorage that it started a sign-in (the provider's name; no token), then
     * `location.assign(oauthStartUrl(provider, returnTo))`. `handleOAuthReturn` honours
     * `mfa_required` and `link_required` only on a return this tab started this way, so a forged
     * return URL cannot slip the user someone else's `mfaToken` or `linkToken`. `location`: what to
     * call `assign` on (default `window.location`).
     */
    startOAuthSignIn(provider, options = {}) {
        const url = this.oauthStartUrl(provider, options.returnTo);
        const target = options.location ?? globalThis.location;
        if (!target)
            throw new TypeError('startOAuthSignIn: no location here (browsers only): pass `location`');
        noteOAuthStart(provider);
        target.assign(url);
    }
    /**
     * On the page a provider round trip returned to: reads the outcome from the fragment, removes
     * the fragment from the address bar (`history.replaceState`, before anything else: it may hold
     * an `mfaToken` or `linkToken`), and on `signed_in` restores the session (one
     * `POST /auth/refresh` with the cookie authd just set, then `GET /me`). Null when the URL
     * carries no outcome (an ordinary page load: call `restoreSession()` as usual).
     *
     * `mfa-required` goes on with `verifyMfa({ mfaToken, code })`; `link-required` with a sign-in
     * to the account, the user's confirmation ("Link your <provider> account <email>?"), then
     * `linkIdentity(linkToken)`: never link without asking. Both are honoured only when this tab
     * started the sign-in with `startOAuthSignIn` (its note is cleared by any return); otherwise the
     * answer is `{status: 'error', code: 'oauth_return_unexpected'}` and nothing is done. `linked`
     * (and an `error` during linking) leave the session as it was: `restoreSession()`. Rejects only
     * after `signed_in`: when the refresh fails (its `AuthdError`: typically the browser did not
     * keep the cookie because the page and authd are not on the same site; or no answer), or when
     * the `GET /me` after it fails.
     *
     * Browsers only: a native app has no cookie from the round trip; it uses `exchangeIdToken`.
     */
    async handleOAuthReturn(location = globalThis.location, history = globalThis.history ?? null) {
        if (!location)
            throw new TypeError('handleOAuthReturn: no location here: pass the URL the provider round trip returned to');
        const outcome = parseOAuthReturn(location);
        if (!outcome)
            return null;
        history?.replaceState(history.state, '', withoutFragment(location));
        const started = takeOAuthStart();
        if (outcome.status === 'mfa-required' || outcome.status === 'link-required') {
            const unexpected = { status: 'error', code: 'oauth_return_unexpected' };
            if (started === null)
                return unexpected;
            if (outcome.status === 'mfa-required')
                return outcome;
            if (outcome.provider !== undefined && outcome.provider !== started)
                return unexpected;
            return { ...outcome, provider: started };
        }
        if (outcome.status !== 'signed-in')
            return outcome;
        const failure = await this.#refreshNow();
        if (failure)
            throw failure;
        const user = await this.me();
        return { status: 'signed-in', user, expiresIn: this.#expiresIn ?? 0 };
    }
    /**
     * `POST /auth/oauth/{provider}/nonce`: the nonce a native app gives the provider's SDK before
     * `exchangeIdToken` (Google: as it is; Sign in with Apple: its SHA-256 in hex). It works once,
     * for this provider, within `expiresIn` seconds; authd accepts no other unless configured
     * with `oauth.native_nonces = "any"`.
     */
    nativeNonce(provider) {
        return this.#typed('POST', '/auth/oauth/{provider}/nonce', { params: { path: { provider } } }, ANONYMOUS);
    }
    /**
     * `POST /auth/oauth/{provider}/token`: a native app's sign-in with the ID token the provider's
     * SDK gave it (Sign in with Apple, Google Sign-In) and the raw `nonce` from `nativeNonce` that
     * the app passed to the SDK. Answers like `login`, or what is left: the second step, a link to
     * accept after signing in to the account holding the address, or a verification mail. Each ID
     * token and each nonce works once.
     */
    async exchangeIdToken(provider, body) {
        const res = await this.#typed('POST', '/auth/oauth/{provider}/token', { params: { path: { provider } }, body }, ANONYMOUS);
        if ('accessToken' in res)
            return signedIn(res);
        if ('mfaToken' in res) {
            return { status: 'mfa-required', mfaToken: res.mfaToken, methods: res.methods, expiresIn: res.expiresIn };
        }
        if ('linkToken' in res)
            return { status: 'link-required', linkToken: res.linkToken, email: res.email, provider };
        if ('verificationSent' in res)
            return { status: 'verification-sent' };
        throw new AuthdError({ status: 200, code: 'unexpected_response', message: 'the ID token exchange answered none of its outcomes' });
    }
    /** `GET /me/identities`: the providers linked to the account, oldest first. */
    identities() {
        return this.#typed('GET', '/me/identities', {}, AUTHENTICATED);
    }
    /**
     * `POST /me/identities/{provider}/start` (a recent sign-in needed): answers the provider URL to
     * send the browser to (top-level navigation); authd also sets the `oauth_flow` cookie on this
     * answer. The browser comes back to `returnTo` with `#status=linked` or `#status=error`.
     */
    async startIdentityLink(provider, returnTo) {
        const body = returnTo === undefined ? {} : { returnTo: withoutFragment(returnTo) };
        const res = await this.#typed('POST', '/me/identities/{provider}/start', { params: { path: { provider } }, body }, AUTHENTICATED);
        return res.authorizationUrl;
    }
    /** `POST /me/identities` (a recent sign-in needed): links the identity a sign-in offered as
     * `link-required` to this account. */
    linkIdentity(linkToken) {
        return this.#typed('POST', '/me/identities', { body: { linkToken } }, AUTHENTICATED);
    }
    /** `DELETE /me/identities/{provider}` (a recent sign-in needed); 409 `last_sign_in_method` when
     * the account would have no password, passkey or other identity left. */
    async unlinkIdentity(provider) {
        await this.#typed('DELETE', '/me/identities/{provider}', { params: { path: { provider } } }, AUTHENTICATED);
    }
    // ---- the machinery -------------------------------------------------------------------------
    #typed(method, path, options, flags) {
        // The generated types have checked `options` against the operation; from here on it is data.
        const { params, body, signal, headers } = (options ?? {});
        return this.#call({ method, path, params, body, signal, headers, ...flags });
    }
    async #call(call) {
        // A refresh under way is about to replace the access token: sending the old one would only
        // earn a 401. Its failure is not this call's concern yet (the call will get its own 401).
        // The call's `signal` ends the wait (the refresh goes on for the others).
        if (this.#refreshInFlight)
            await abortable(this.#refreshInFlight.catch(() => undefined), call.signal);
        const seen = this.#refreshes;
        let res = await this.#send(call);
        if (res.status === 401 && call.refreshOn401) {
            const error = await AuthdError.fromResponse(res);
            if (!ACCESS_TOKEN_CODES.has(error.code))
                throw error;
            const failure = await abortable(this.#refreshSince(seen, error), call.signal);
            // STALE: a login or logout overtook the refresh, whose outcome was dropped: the retry goes
            // with the token current now (none after a logout: then its 401 is the answer).
            if (failure !== null && failure !== STALE)
                throw failure;
            // Once: if the new token gets a 401 too, that error is the answer (no loop).
            res = await this.#send(call);
        }
        return this.#read(res);
    }
    /**
     * One request, plus at most one retry after a short enough `Retry-After`: on 429 (refused before
     * any work), on 503 `overloaded` (likewise), and for GET/HEAD on any 503. Any other 503 of a
     * POST, PUT, PATCH or DELETE (`unavailable`: the store or cache failed mid-handler, perhaps after
     * the work was done) is the answer: repeating it could act twice.
     */
    async #send(call) {
        const url = this.#url(call);
        const body = await this.#prepareBody(call.path, call.body);
        const headers = { ...call.headers };
        if (body !== undefined)
            headers['Content-Type'] = 'application/json';
        if (call.bearer && this.#accessToken)
            headers.Authorization = `Bearer ${this.#accessToken}`;
        const init = {
            method: call.method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            // Browsers store authd's refresh cookie from answers and send it back only with 'include'
            // (the API is usually on another origin). Body transport sends no cookie: the stored token
            // is the one credential, so the two cannot disagree.
            credentials: this.#transport === 'cookie' ? 'include' : 'omit',
            signal: call.signal,
        };
        const res = await this.#fetch(url, init);
        if (res.status !== 429 && res.status !== 503)
            return res;
        const wait = parseRetryAfter(res.headers.get('retry-after'));
        // No Retry-After, or longer than the caller is willing to wait: the typed error, at once.
        if (wait === null || wait > this.#maxRetryAfterSeconds)
            return res;
        if (res.status === 503 && call.method !== 'GET' && call.method !== 'HEAD') {
            const code = await res
                .clone()
                .json()
                .then((b) => (typeof b === 'object' && b !== null && 'code' in b ? b.code : null), () => null);
            if (code !== 'overloaded')
                return res;
        }
        await res.body?.cancel();
        await sleep(wait * 1000, call.signal);
        return this.#fetch(url, init);
    }
    #url(call) {
        const path = call.path.replace(/\{(\w+)\}/g, (_, name) => pathSegment(call.path, name, call.params?.path?.[name]));
        const query = new URLSearchParams();
        for (const [key, value] of Object.entries(call.params?.query ?? {})) {
            if (value === undefined || value === null)
                continue;
            for (const item of Array.isArray(value) ? value : [value])
                query.append(key, String(item));
        }
        const search = query.toString();
        return `${this.#baseUrl}${path}${search ? `?${search}` : ''}`;
    }
    /** Body transport: ask for tokens in the body, and hand the stored refresh token to the endpoints that take it. */
    async #prepareBody(path, body) {
        if (this.#transport !== 'body')
            return body;
        let out = body;
        if (path in TAKES_TRANSPORT)
            out = { ...body, tokenTransport: 'body' };
        if (path === '/auth/refresh' || path === '/auth/logout') {
            const refreshToken = await this.#storage.get();
            if (refreshToken && !(typeof out === 'object' && out !== null && 'refreshToken' in out)) {
                out = { ...out, refreshToken };
            }
        }
        return out;
    }
    /** A success answer's body (undefined for 204), keeping any tokens it carries; else the AuthdError. */
    async #read(res) {
        const body = await this.#body(res);
        await this.#keep(body);
        return body;
    }
    /** A success answer's JSON (undefined for 204); else the AuthdError. */
    async #body(res) {
        if (!res.ok)
            throw await AuthdError.fromResponse(res);
        const text = await res.text();
        if (!text)
            return undefined;
        try {
            return JSON.parse(text);
        }
        catch {
            throw new AuthdError({ status: res.status, code: 'unexpected_response', message: `HTTP ${res.status}: the body is not JSON`, requestId: res.headers.get('x-request-id') });
        }
    }
    /**
     * Every answer with an access token (login, signup, MFA verify, passkey login, refresh,
     * re-authentication, TOTP confirmation) replaces the one in memory: a new session generation.
     * With `generation` (a refresh's), only if the generation is still that one. True when kept.
     */
    async #keep(body, generation) {
        if (typeof body !== 'object' || body === null || !('accessToken' in body) || typeof body.accessToken !== 'string')
            return false;
        if (generation !== undefined && generation !== this.#generation)
            return false;
        this.#generation += 1;
        this.#accessToken = body.accessToken;
        this.#expiresIn = 'expiresIn' in body && typeof body.expiresIn === 'number' ? body.expiresIn : null;
        this.#state = 'signed-in';
        if (this.#transport === 'body' && 'refreshToken' in body && typeof body.refreshToken === 'string') {
            await this.#storage.set(body.refreshToken);
        }
        return true;
    }
    /**
     * `refresh()`, `restoreSession()` and `handleOAuthReturn`: the refresh under way, or a new one.
     * If a login or logout overtook it (STALE), the state now answers: the new session's token, or
     * after a logout `session_unavailable` (no second request).
     */
    async #refreshNow() {
        const outcome = await (this.#refreshInFlight ?? this.#refreshSince(this.#refreshes));
        if (outcome !== STALE)
            return outcome;
        if (this.#accessToken)
            return null;
        return new AuthdError({ status: 0, code: 'session_unavailable', message: 'the client was signed out while the refresh was under way' });
    }
    /**
     * The shared refresh: starts one unless one has started since the failing call was sent (`seen`),
     * in which case that one's outcome answers this call too. Resolves to null when there is a new
     * access token, or to the error that ended the session, or to STALE when a login or logout
     * (a new session generation) overtook it: then nothing of it was applied. Rejects when authd
     * could not answer (network, 429 past the cap, 5xx): the session may still be fine, so it is kept.
     */
    #refreshSince(seen, cause) {
        if (this.#refreshes === seen || !this.#latestRefresh) {
            this.#refreshes += 1;
            const refresh = this.#runRefresh(cause);
            this.#latestRefresh = refresh;
            this.#refreshInFlight = refresh;
            const settled = () => {
                if (this.#refreshInFlight === refresh)
                    this.#refreshInFlight = null;
            };
            refresh.then(settled, settled);
        }
        return this.#latestRefresh;
    }
    async #runRefresh(cause) {
        const generation = this.#generation;
        try {
            return await this.#attemptRefresh(generation, cause);
        }
        catch (e) {
            // No answer about the session of that generation is news about the one now.
            if (this.#generation !== generation)
                return STALE;
            throw e;
        }
    }
    async #attemptRefresh(generation, cause) {
        if (this.#transport === 'body' && !(await this.#storage.get())) {
            if (this.#generation !== generation)
                return STALE;
            // Nothing to refresh with: the session is over (or never was) without asking authd.
            return this.#endSession(cause ?? new AuthdError({ status: 0, code: 'session_unavailable', message: 'no refresh token is stored' }));
        }
        // No body in cookie mode: the cookie is the credential. Body mode: #prepareBody adds the token.
        const res = await this.#send({ method: 'POST', path: '/auth/refresh', ...ANONYMOUS });
        if (res.ok) {
            const body = await this.#body(res);
            if (await this.#keep(body, generation))
                return null;
            if (this.#generation !== generation)
                return STALE;
            throw new AuthdError({ status: res.status, code: 'unexpected_response', message: 'the refresh answered no access token', requestId: res.headers.get('x-request-id') });
        }
        const error = await AuthdError.fromResponse(res);
        if (this.#generation !== generation)
            return STALE;
        // 408, 429 and 5xx say nothing about the refresh token: keep the session and let calls fail.
        if (res.status === 408 || res.status === 429 || res.status >= 500)
            throw error;
        return this.#endSession(error);
    }
    async #endSession(error) {
        const wasSignedIn = this.#state === 'signed-in';
        await this.#forget();
        // A microtask: an exception in the app's handler must not break the calls waiting here.
        if (wasSignedIn && this.#onSessionEnded) {
            const handler = this.#onSessionEnded;
            queueMicrotask(() => handler(error));
        }
        return error;
    }
    async #forget() {
        this.#generation += 1;
        this.#accessToken = null;
        this.#expiresIn = null;
        this.#state = 'signed-out';
        if (this.#transport === 'body')
            await this.#storage.clear();
    }
}
function signedIn(res) {
    // The schema shares TokenBody with refresh, so `user` is optional there; login, signup and MFA
    // verification always send it.
    if (!res.user)
        throw new AuthdError({ status: 200, code: 'unexpected_response', message: 'the answer has no user' });
    return { status: 'signed-in', user: res.user, expiresIn: res.expiresIn };
}
/** A path parameter as one path segment: refused when empty, `.` or `..`, which the URL would
 * resolve into another path (`/auth/sessions/..` is `/auth/`). */
function pathSegment(path, name, value) {
    if (value === undefined || value === null)
        throw new TypeError(`${path}: path parameter "${name}" is missing`);
    const text = String(value);
    if (text === '' || text === '.' || text === '..')
        throw new TypeError(`${path}: path parameter "${name}" cannot be ${JSON.stringify(text)}`);
    return encodeURIComponent(text);
}
/** The `navigator.credentials.get` argument of a ceremony: the options, and `mediation` and
 * `signal` when the caller gave them. */
function ceremony(publicKey, options) {
    return {
        publicKey,
        ...(options.mediation === undefined ? {} : { mediation: options.mediation }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
    };
}
/** `promise`, or the abort of `signal` if that comes first (the promise itself goes on). */
function abortable(promise, signal) {
    if (!signal)
        return promise;
    if (signal.aborted)
        return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        promise.then((value) => {
            signal.removeEventListener('abort', onAbort);
            resolve(value);
        }, (error) => {
            signal.removeEventListener('abort', onAbort);
            reject(error);
        });
    });
}
function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted)
            return reject(signal.reason);
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal?.reason);
        };
        const timer = setTimeout(() => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
        }, ms);
        signal?.addEventListener('abort', onAbort, { once: true });
    });
}
