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

import type { AuthdErrorCode } from './errors.js';
import type { MfaRequired } from './client.js';

/** The `error` of `#status=error&error=<code>`: why the round trip failed. */
export type OAuthErrorCode =
  /** The callback came without a flow this browser started (no or another `oauth_flow` cookie,
   * a `state` unknown, used or expired after `oauth.flow_ttl_seconds`): start again. */
  | 'oauth_state_invalid'
  /** The user said no at the provider (`error=access_denied`, or any provider error). */
  | 'oauth_cancelled'
  /** The provider's answer did not check out (code, ID token signature, issuer, audience, nonce). */
  | 'oauth_failed'
  /** The provider could not be reached or answered garbage. */
  | 'provider_unavailable'
  /** The provider gave no email address, and the identity is not linked yet. */
  | 'identity_email_missing'
  /** The provider did not verify an address that belongs to an account: sign in to that account
   * and link the provider from there (`startIdentityLink`). */
  | 'identity_email_unverified'
  /** No account for the identity and `oauth.allow_signup` is off. */
  | 'signup_disabled'
  /** Linking: the identity belongs to another account. */
  | 'identity_taken'
  | 'account_locked'
  | 'email_not_verified'
  /** The fragment had `status` but not the fields its status needs (the client's own code). */
  | 'unexpected_response'
  /** `mfa_required` or `link_required` came back to a tab that started no provider sign-in with
   * `startOAuthSignIn` (or already handled its return): possibly a URL forged to sign the user in
   * to someone else's account or to link someone else's identity. Nothing was done (the client's
   * own code). */
  | 'oauth_return_unexpected'
  | AuthdErrorCode;

/** The provider vouched for an address that has an account: sign in to it (password, passkey),
 * ask the user to confirm ("Link your <provider> account <email>?"), and only then
 * `linkIdentity(linkToken)` links the provider; `linkToken` is single-use and short-lived. */
export interface LinkRequired {
  status: 'link-required';
  linkToken: string;
  email: string;
  /** The provider's name: from the fragment's `provider` when authd sends it, else the one the
   * tab started (`handleOAuthReturn`) or the one exchanged for (`exchangeIdToken`); absent only
   * from `parseOAuthReturn` of a fragment without it. */
  provider?: string;
}
/** A new account whose address the provider did not verify: a verification mail was sent. */
export interface VerificationSent {
  status: 'verification-sent';
}
/** A signed-in user linked the provider (`startIdentityLink`). The session cookie is unchanged:
 * `restoreSession()` gets an access token again after the page load. */
export interface Linked {
  status: 'linked';
}
export interface OAuthFailed {
  status: 'error';
  code: OAuthErrorCode;
}

/** What the return URL's fragment says, before the client acted on it. */
export type OAuthOutcome = { status: 'signed-in' } | MfaRequired | LinkRequired | VerificationSent | Linked | OAuthFailed;

/** The part of `History` that `handleOAuthReturn` uses (`window.history`). */
export interface HistoryLike {
  readonly state: unknown;
  replaceState(data: unknown, unused: string, url?: string | URL | null): void;
}

/**
 * Reads the outcome of a provider round trip from a URL (`location.href`, or a string / `URL`).
 * Null when the fragment is not one of authd's (no `status` in it): an app's own `#section` or
 * `#/route` is left alone. Pure: no request, no history change, and no check that this tab
 * started a sign-in: act on a return with `AuthdClient.handleOAuthReturn`, which makes it.
 */
export function parseOAuthReturn(url: string | URL | { readonly href: string }): OAuthOutcome | null {
  const href = typeof url === 'string' ? url : url.href;
  const hash = href.includes('#') ? href.slice(href.indexOf('#') + 1) : '';
  if (!hash) return null;
  const fields = new URLSearchParams(hash);
  const status = fields.get('status');
  if (status === null) return null;
  const malformed: OAuthFailed = { status: 'error', code: 'unexpected_response' };
  switch (status) {
    case 'signed_in':
      return { status: 'signed-in' };
    case 'mfa_required': {
      const mfaToken = fields.get('mfaToken');
      const methods = (fields.get('methods') ?? '').split(',').filter(Boolean);
      const expiresIn = Number(fields.get('expiresIn') ?? Number.NaN);
      if (!mfaToken || !Number.isFinite(expiresIn)) return malformed;
      return { status: 'mfa-required', mfaToken, methods, expiresIn };
    }
    case 'link_required': {
      const linkToken = fields.get('linkToken');
      const email = fields.get('email');
      const provider = fields.get('provider');
      if (!linkToken || email === null || provider === '') return malformed;
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
export function withoutFragment(url: string | URL | { readonly href: string }): string {
  const href = typeof url === 'string' ? url : url.href;
  const at = href.indexOf('#');
  return at < 0 ? href : href.slice(0, at);
}

// The tab's note that it sent the browser to a provider: one sessionStorage key (per tab, per
// origin), the provider's name, no token. Written just before the navigation, taken (read and
// removed) by the first return.
const STARTED_KEY = 'authd.oauth-started';

/** Notes that this tab starts a sign-in with `provider` (`AuthdClient.startOAuthSignIn`). */
export function noteOAuthStart(provider: string): void {
  const storage = (globalThis as { sessionStorage?: Storage }).sessionStorage;
  if (!storage) throw new TypeError('startOAuthSignIn: no sessionStorage here (browsers only)');
  storage.setItem(STARTED_KEY, provider);
}

/** The provider this tab started a sign-in with, or null; the note is removed either way. */
export function takeOAuthStart(): string | null {
  try {
    const storage = (globalThis as { sessionStorage?: Storage }).sessionStorage;
    if (!storage) return null;
    const provider = storage.getItem(STARTED_KEY);
    storage.removeItem(STARTED_KEY);
    return provider;
  } catch {
    // Storage disabled (a sandboxed frame): no note, so nothing that needs one is honoured.
    return null;
  }
}
