// @authd/client: a typed client for authd. Runtime: the platform's fetch only.
export { AuthdClient } from './client.js';
export type {
  AuthdClientOptions,
  IdTokenResult,
  LoginResult,
  MfaRequired,
  OAuthReturn,
  SessionState,
  SignedIn,
  SignupResult,
  VerificationRequired,
} from './client.js';
export { AuthdError, parseRetryAfter } from './errors.js';
export type { ApiErrorBody, AuthdErrorCode, FieldError } from './errors.js';
export { parseOAuthReturn } from './oauth.js';
export type { HistoryLike, Linked, LinkRequired, OAuthErrorCode, OAuthFailed, OAuthOutcome, VerificationSent } from './oauth.js';
export { base64url, bytes, creationOptions, credentialJson, platformWebAuthn, requestOptions } from './passkeys.js';
export type { PasskeyCeremonyOptions, WebAuthnApi } from './passkeys.js';
export { memoryStorage } from './storage.js';
export type { RefreshTokenStorage } from './storage.js';
export type * from './types.js';
// The generated OpenAPI types, for anything the shorthands above do not name.
export type { components, operations, paths } from './schema.js';
