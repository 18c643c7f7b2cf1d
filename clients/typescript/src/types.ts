// Type-level plumbing between the generated `paths` (src/schema.ts) and `AuthdClient.request`:
// which paths take which method, what each operation's params and body are, and what it answers.
// Everything here is derived from the schema, so regenerating it covers new endpoints.

import type { components, paths } from './schema.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Paths that have an operation for `M` (openapi-typescript marks absent methods `?: never`). */
export type PathsWithMethod<M extends HttpMethod> = {
  [P in keyof paths]: paths[P] extends { [K in Lowercase<M>]: object } ? P : never;
}[keyof paths];

/** The generated operation object of `M path`. */
export type Operation<M extends HttpMethod, P extends PathsWithMethod<M>> = paths[P][Lowercase<M>];

type Params<Op> = Op extends { parameters: infer Pr } ? Pr : never;
type PathParams<Op> = Params<Op> extends { path: infer X } ? X : never; // `path?: never` when none
type QueryParams<Op> = NonNullable<Params<Op> extends { query?: infer Q } ? Q : never>;

type ParamsOption<Op> = ([PathParams<Op>] extends [never] ? unknown : { path: PathParams<Op> }) &
  ([QueryParams<Op>] extends [never] ? unknown : { query?: QueryParams<Op> });

type ParamsPart<Op> = [PathParams<Op>] extends [never]
  ? [QueryParams<Op>] extends [never]
    ? { params?: never }
    : { params?: ParamsOption<Op> }
  : { params: ParamsOption<Op> };

// Required body, no body (`requestBody?: never`), or optional body, in that order: `never` fits
// any optional shape, so the "no body" case must be tested before the optional one.
type BodyPart<Op> = Op extends { requestBody: { content: { 'application/json': infer B } } }
  ? { body: B }
  : Op extends { requestBody?: never }
    ? { body?: never }
    : Op extends { requestBody?: { content: { 'application/json': infer B } } }
      ? { body?: B }
      : { body?: never };

/** Per-call options that are not part of the operation. */
export interface CallOptions {
  /** Aborts the call, including a wait for `Retry-After`. */
  signal?: AbortSignal;
  /** Extra request headers (e.g. `X-Request-Id` to correlate with your logs). */
  headers?: Record<string, string>;
}

/** `params` (path and query) and `body` of `M path`, as the OpenAPI document declares them. */
export type RequestOptions<M extends HttpMethod, P extends PathsWithMethod<M>> = ParamsPart<Operation<M, P>> &
  BodyPart<Operation<M, P>> &
  CallOptions;

/** The options argument may be left out when nothing in it is required. */
export type OptionsArg<O> = object extends O ? [options?: O] : [options: O];

type SuccessStatus = 200 | 201 | 202 | 204;
type JsonContent<R> = R extends { content: { 'application/json': infer B } } ? B : undefined;

/** The body of any success answer of `M path` (`undefined` for 204). */
export type ResponseBody<M extends HttpMethod, P extends PathsWithMethod<M>> =
  Operation<M, P> extends { responses: infer R }
    ? { [S in keyof R & SuccessStatus]: JsonContent<R[S]> }[keyof R & SuccessStatus]
    : never;

// Shorthands for the schemas the convenience methods use.
type Schemas = components['schemas'];
export type User = Schemas['UserBody'];
export type Me = Schemas['MeBody'];
export type Session = Schemas['SessionBody'];
export type TokenTransport = Schemas['TokenTransport'];
export type SignupRequest = Omit<Schemas['SignupRequest'], 'tokenTransport'>;
export type LoginRequest = Omit<Schemas['LoginRequest'], 'tokenTransport'>;
export type MfaVerifyRequest = Omit<Schemas['MfaVerifyRequest'], 'tokenTransport'>;
export type ResetPasswordRequest = Schemas['ResetRequest'];
export type ChangePasswordRequest = Schemas['ChangePasswordRequest'];
/** `deleteAccount`'s proof: the password. */
export type DeleteAccountRequest = Schemas['DeleteMeRequest'];
/** A provider to sign in with: `name` goes in the paths, `displayName` on the button. */
export type OAuthProvider = Schemas['ProviderBody'];
/** An identity at a provider linked to the caller's account. */
export type LinkedIdentity = Schemas['IdentityBody'];
export type IdTokenRequest = Omit<Schemas['IdTokenRequest'], 'tokenTransport'>;
/** A single-use nonce for a native app's ID token, and the seconds it waits for it. */
export type NativeNonce = Schemas['NativeNonceBody'];
/** Proof for `reauthenticate`: the password (with `code` or `recoveryCode` when the account has a second factor). */
export type ReauthenticateRequest = Required<Pick<Schemas['ReauthenticateRequest'], 'password'>> &
  Pick<Schemas['ReauthenticateRequest'], 'code' | 'recoveryCode'>;
/** A registered passkey, and the recovery codes that come with the account's first factor. */
export type PasskeyRegistered = Schemas['PasskeyRegisteredBody'];
