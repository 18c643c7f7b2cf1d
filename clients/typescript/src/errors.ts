import type { components } from './schema.js';

/** authd's error body: the one shape of every error answer. */
export type ApiErrorBody = components['schemas']['ApiError'];
/** One problem with one input field (`validation_failed` and `not_ready` list them). */
export type FieldError = components['schemas']['FieldError'];

/**
 * authd's stable error codes (`code` of every error answer), from the `ApiError` schema of
 * /openapi.json, src/http/error.rs and docs/api.md. The OpenAPI document types `code` as a plain
 * string, so this list is kept by hand; `string & {}` keeps codes added later usable (and
 * autocompletion of the known ones intact).
 *
 * The codes of signing in through a provider are also what `handleOAuthReturn` reports from
 * the return URL (`OAuthErrorCode`).
 *
 * Two codes are the client's own, for answers that are not authd's error shape:
 * `unexpected_response` (e.g. an HTML 502 from a proxy) and `session_unavailable` (a refresh was
 * needed but, with `tokenTransport: "body"`, the storage holds no refresh token).
 */
export type AuthdErrorCode =
  // 400
  | 'validation_failed'
  | 'bad_request'
  | 'token_invalid' // also 401: an access token, refresh token or emailed token that does not check out
  // 401
  | 'invalid_credentials'
  | 'unauthorized'
  | 'token_expired'
  | 'refresh_token_reused'
  | 'mfa_token_invalid'
  | 'invalid_mfa_code'
  // 403
  | 'forbidden'
  | 'account_locked'
  | 'email_not_verified'
  | 'reauthentication_required'
  | 'mfa_enrollment_required'
  | 'origin_not_allowed'
  // 404, 405, 408, 409, 413, 415, 431
  | 'not_found'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'email_taken'
  | 'mfa_already_enabled'
  | 'identity_email_unverified' // 409: the provider did not verify an address that has an account
  | 'identity_taken' // 409: the identity is linked to another account
  | 'last_sign_in_method' // 409: unlinking would leave the account no way to sign in
  | 'endpoint_configured' // 409: a webhook endpoint of the configuration (remove it there)
  | 'delivery_not_dead' // 409: only a dead webhook delivery is retried
  | 'signup_disabled' // 403: oauth.allow_signup is off and the identity has no account
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'headers_too_large'
  // sign-in through a provider (also in the return URL's `#status=error&error=`)
  | 'oauth_state_invalid'
  | 'oauth_cancelled'
  | 'oauth_failed'
  | 'identity_email_missing'
  | 'provider_unavailable' // 502
  // 429, 503, 500
  | 'rate_limited'
  | 'overloaded'
  | 'unavailable'
  | 'not_ready'
  | 'internal'
  // the client's own
  | 'unexpected_response'
  | 'session_unavailable'
  | (string & {});

/** A failed call: authd answered with an error (or something that is not authd's answer). */
export class AuthdError extends Error {
  override readonly name = 'AuthdError';
  /** The HTTP status (0 for `session_unavailable`, which no request answered). */
  readonly status: number;
  readonly code: AuthdErrorCode;
  /** `X-Request-Id` of the answer: quote it when reporting a problem. */
  readonly requestId: string | null;
  /** Per-field problems; empty unless `validation_failed` or `not_ready`. */
  readonly details: FieldError[];
  /** `Retry-After` in seconds, on 429 and 503 answers that carry it. */
  readonly retryAfterSeconds: number | null;

  constructor(init: {
    status: number;
    code: AuthdErrorCode;
    message: string;
    requestId?: string | null;
    details?: FieldError[] | null;
    retryAfterSeconds?: number | null;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? null;
    this.details = init.details ?? [];
    this.retryAfterSeconds = init.retryAfterSeconds ?? null;
  }

  /** Builds the error from an answer that is not 2xx; reads (and so consumes) its body. */
  static async fromResponse(res: Response): Promise<AuthdError> {
    const text = await res.text().catch(() => '');
    const body = parseErrorBody(text);
    const retryAfterSeconds = parseRetryAfter(res.headers.get('retry-after'));
    const requestId = body?.requestId ?? res.headers.get('x-request-id');
    if (!body) {
      return new AuthdError({
        status: res.status,
        code: 'unexpected_response',
        message: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}: not an authd error answer`,
        requestId,
        retryAfterSeconds,
      });
    }
    return new AuthdError({
      status: res.status,
      code: body.code,
      message: body.error,
      requestId,
      details: body.details,
      retryAfterSeconds,
    });
  }
}

function parseErrorBody(text: string): ApiErrorBody | null {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && 'code' in body && 'error' in body) {
      const { code, error } = body;
      if (typeof code === 'string' && typeof error === 'string') return body as ApiErrorBody;
    }
  } catch {
    // not JSON: handled as unexpected_response
  }
  return null;
}

/**
 * `Retry-After` in seconds: delta-seconds (what authd sends) or an HTTP date (what a proxy in
 * front of it may send). Null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
