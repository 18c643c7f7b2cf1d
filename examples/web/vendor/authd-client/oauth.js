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
/**
 * Reads the outcome of a provider round trip from a URL (`location.href`, or a string / `URL`).
 * Null when the fragment is not one of authd's (no `status` in it): an app's own `#section` or
 * `#/route` is left alone. Pure: no request, no history change (see `AuthdClient.handleOAuthReturn`).
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
            if (!linkToken || email === null)
                return malformed;
            return { status: 'link-required', linkToken, email };
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
