// Copied from clients/typescript/dist/oauth.js by `npm run update:example`: do not edit here.
// Sign-in with other providers (OAuth 2.0 / OpenID Connect): the outcome authd puts in the return
// URL's fragment, parsed into a typed union. The browser round trip is
//
//   page --navigate--> {authd}/auth/oauth/{provider}/start?returnTo=<page>   (oauth_flow cookie)
//        --302--> the provider --302--> {authd}/auth/oauth/{provider}/callback?code&state
//        --302--> <page>#status=...                                           (refresh cookie when signed in)
//
// The fragment never reaches a server (nor a Referer), which is why authd uses it; the page must
// still remove it from the address bar (history) at once: it may carry an mfaToken or linkToken.
//
// Anyone can send a victim a URL of the page with a fragment of their own making (an attacker's
// mfaToken or linkToken), so the tab notes in its sessionStorage that it started a sign-in
// (`startOAuthSignIn`), and `handleOAuthReturn` honours `mfa_required` and `link_required` only
// on a return that tab expected.
/**
 * Reads the outcome of a provider round trip from a URL (`location.href`, or a string / `URL`).
 * Null when the fragment is not one of authd's (no `status` in it): an app's own `#section` or
 * `#/route` is left alone. Pure: no request, no history change, and no check that this tab
 * started a sign-in: act on a return with `AuthdClient.handleOAuthReturn`, which makes it.
 */
export function parseOAuthReturn(url) {
    const href = typeof url === 'string' ? url : url.href;
    const hash = href.includes('#') ? href.slice(href.indexOf('#') + 1) : '';
    if (!hash)
        return null;
    const fields = new URLSearchParams(hash);
    const status = fields.get('status');
    if (status === null)
        return null;
    const malformed = { status: 'error', code: 'unexpected_response' };
    switch (status) {
        case 'signed_in':
            return { status: 'signed-in' };
        case 'mfa_required': {
            const mfaToken = fields.get('mfaToken');
            const methods = (fields.get('methods') ?? '').split(',').filter(Boolean);
            const expiresIn = Number(fields.get('expiresIn') ?? Number.NaN);
            if (!mfaToken || !Number.isFinite(expiresIn))
                return malformed;
            return { status: 'mfa-required', mfaToken, methods, expiresIn };
        }
        case 'link_required': {
            const linkToken = fields.get('linkToken');
            const email = fields.get('email');
            const provider = fields.get('provider');
            if (!linkToken || email === null || provider === '')
                return malformed;
            return provider === null ? { status: 'link-required', linkToken, email } : { status: 'link-required', linkToken, email, provider };
        }
        case 'verification_sent':
            return { status: 'verification-sent' };
        case 'linked':
            return { status: 'linked' };
        case 'error':
            return { status: 'error', code: fields.get('error') || 'unexpected_response' };
        default:
            return malformed;
    }
}
/** `url` without its fragment (what `returnTo` should be, and what stays in the address bar). */
export function withoutFragment(url) {
    const href = typeof url === 'string' ? url : url.href;
    const at = href.indexOf('#');
    return at < 0 ? href : href.slice(0, at);
}
// The tab's note that it sent the browser to a provider: one sessionStorage key (per tab, per
// origin), the provider's name, no token. Written just before the navigation, taken (read and
// removed) by the first return.
const STARTED_KEY = 'authd.oauth-started';
/** Notes that this tab starts a sign-in with `provider` (`AuthdClient.startOAuthSignIn`). */
export function noteOAuthStart(provider) {
    const storage = globalThis.sessionStorage;
    if (!storage)
        throw new TypeError('startOAuthSignIn: no sessionStorage here (browsers only)');
    storage.setItem(STARTED_KEY, provider);
}
/** The provider this tab started a sign-in with, or null; the note is removed either way. */
export function takeOAuthStart() {
    try {
        const storage = globalThis.sessionStorage;
        if (!storage)
            return null;
        const provider = storage.getItem(STARTED_KEY);
        storage.removeItem(STARTED_KEY);
        return provider;
    }
    catch {
        // Storage disabled (a sandboxed frame): no note, so nothing that needs one is honoured.
        return null;
    }
}
