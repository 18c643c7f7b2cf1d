import type { components } from './schema.js';

/** authd's error body: the one shape of every error answer. */
export type ApiErrorBody = components['schemas']['ApiError'];
/** One problem with one input field (`validation_failed` and `not_ready` list them). */
export type FieldError = components['schemas']['FieldError'];

/**
 * authd's stable error codes (`code` of every error answer): every code authd answers, from the
 * `ApiError` schema of /openapi.json, src/http/error.rs (`AppError::code`, `framework_error`),
 * src/http/middleware.rs (CORS refusals) and docs/api.md. The OpenAPI document types `code` as a
 * plain string, so this list is kept by hand; `string & {}` keeps codes added later usable (and
 * autocompletion of the known ones intact).
 *
 * The codes of signing in through a provider are also what `handleOAuthReturn` reports from
 * the return URL (`OAuthErrorCode`).
 *
 * Two codes are the client's own, for answers that are not authd's error shape:
 * `unexpected_response` (e.g. an HTML 502 from a proxy) and `session_unavailable` (a refresh was
 * needed but, with `tokenTransport: "body"`, the storage holds no refresh token; or the client was
 * signed out while the refresh was under way).
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
  | 'cors_method_not_allowed' // 403: a browser's preflight asked for a method CORS does not allow
  | 'cors_header_not_allowed' // 403: a browser's preflight asked for a header CORS does not allow
  // 404, 405, 408, 409, 413, 415, 431
  | 'not_found'
  | 'feature_disabled' // 404: the endpoint belongs to a feature turned off in authd's configuration
  | 'method_not_allowed'
  | 'request_timeout'
  | 'email_taken'
  | 'mfa_already_enabled'
  | 'last_admin' // 409: demoting, locking or deleting the last admin
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
  | 'error' // any other status the framework answers by itself
  // the client's own
  | 'unexpected_response'
  | 'session_unavailable'
  | (string & {});

/** A failed call: authd answered with an error (or something that is not authd's answer). */
export class AuthdError extends Error {
  override readonly name = 'AuthdError';
  /** The HTTP status (authd's `statusCode` repeats it; 0 for `session_unavailable`, which no request answered). */
  readonly status: number;
  readonly code: AuthdErrorCode;
  /** `X-Request-Id` of the answer: quote it when reporting a problem. */
  readonly requestId: string | null;
  /** Per-field problems; empty unless `validation_failed` or `not_ready`. */
  readonly details: FieldError[];
  /** authd's `timestamp` of the error (RFC 3339, UTC); null for an answer that is not authd's error shape. */
  readonly timestamp: string | null;
  /** `Retry-After` in seconds, on 429 and 503 answers that carry it. */
  readonly retryAfterSeconds: number | null;

  constructor(init: {
    status: number;
    code: AuthdErrorCode;
    message: string;
    requestId?: string | null;
    details?: FieldError[] | null;
    retryAfterSeconds?: number | null;
    timestamp?: string | null;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? null;
    this.details = init.details ?? [];
    this.retryAfterSeconds = init.retryAfterSeconds ?? null;
    this.timestamp = init.timestamp ?? null;
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
      // Whatever a proxy in between made of the body, `details` is always a list.
      details: Array.isArray(body.details) ? body.details : [],
      retryAfterSeconds,
      timestamp: typeof body.timestamp === 'string' ? body.timestamp : null,
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

// RFC 9110's IMF-fixdate, the one HTTP-date form a sender may generate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * `Retry-After` in seconds: delta-seconds (digits only: what authd sends) or an IMF-fixdate HTTP
 * date (what a proxy in front of it may send). Null when absent or anything else (`1.5`, `-1`,
 * obsolete date forms): `Date.parse` alone would read `1.5` as a date in 2001, an immediate retry.
 */
export function parseRetryAfter(value: string | null): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  if (!IMF_FIXDATE.test(trimmed)) return null;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
