// Compile-time checks of the typing (not run: `npm run build` fails if any line here is wrong).
// Each `@ts-expect-error` must be an error, and every other line must compile.

import type { AuthdClient, AuthdError, AuthdErrorCode, LoginResult, OAuthErrorCode, OAuthReturn, ResponseBody } from '@authd/client';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const is = <T extends true>(_: T) => undefined;

export async function typing(client: AuthdClient) {
  // Answers are the OpenAPI schemas.
  const me = await client.request('GET', '/me');
  is<Equal<typeof me.emailVerified, boolean>>(true);
  const none = await client.request('DELETE', '/auth/sessions/{id}', { params: { path: { id: 'x' } } });
  is<Equal<typeof none, undefined>>(true); // 204
  is<Equal<ResponseBody<'GET', '/auth/sessions'>, Awaited<ReturnType<AuthdClient['sessions']>>>>(true);

  // Paths and methods come from the document.
  // @ts-expect-error no such path
  await client.request('GET', '/nope');
  // @ts-expect-error /me has no POST
  await client.request('POST', '/me');

  // Path parameters are required where the path has them.
  // @ts-expect-error params.path.id is missing
  await client.request('DELETE', '/auth/sessions/{id}');
  // @ts-expect-error wrong parameter name
  await client.request('DELETE', '/auth/sessions/{id}', { params: { path: { sid: 'x' } } });

  // Query parameters are typed and optional.
  await client.request('GET', '/admin/users', { params: { query: { limit: 20, q: 'ada' } } });
  // @ts-expect-error limit is a number
  await client.request('GET', '/admin/users', { params: { query: { limit: '20' } } });

  // Bodies: required when the operation requires one, checked field by field.
  await client.request('PATCH', '/me', { body: { name: 'Ada' } });
  // @ts-expect-error POST /auth/login needs a body
  await client.request('POST', '/auth/login');
  // @ts-expect-error password is missing
  await client.request('POST', '/auth/login', { body: { email: 'a@example.com' } });
  // @ts-expect-error GET /me takes no body
  await client.request('GET', '/me', { body: {} });
  await client.request('POST', '/auth/passkey/options'); // an optional body may be left out

  // The login result is a discriminated union: the MFA branch must be handled to reach `user`.
  const login: LoginResult = await client.login({ email: 'a@example.com', password: 'pw' });
  // @ts-expect-error `user` only exists once narrowed to signed-in
  void login.user;
  if (login.status === 'mfa-required') {
    await client.verifyMfa({ mfaToken: login.mfaToken, code: '123456' });
  } else {
    is<Equal<typeof login.user.email, string>>(true);
  }

  // A provider round trip's outcome is a union too: each status carries its own fields.
  const back: OAuthReturn | null = await client.handleOAuthReturn();
  // @ts-expect-error it may be null (no outcome in the URL)
  void back.status;
  if (back) {
    // @ts-expect-error `mfaToken` only on mfa-required
    void back.mfaToken;
    if (back.status === 'mfa-required') await client.verifyMfa({ mfaToken: back.mfaToken, recoveryCode: 'x' });
    else if (back.status === 'link-required') {
      is<Equal<typeof back.provider, string | undefined>>(true);
      await client.linkIdentity(back.linkToken);
    }
    else if (back.status === 'signed-in') is<Equal<typeof back.user.email, string>>(true);
    else if (back.status === 'error') {
      const oauthCode: OAuthErrorCode = back.code;
      void oauthCode;
    } else is<Equal<typeof back.status, 'verification-sent' | 'linked'>>(true);
  }
  // @ts-expect-error the ID token exchange needs the nonce
  await client.exchangeIdToken('apple', { idToken: 'x' });
  // The token exchange is among the calls that take tokenTransport (body transport adds it).
  await client.request('POST', '/auth/oauth/{provider}/token', { params: { path: { provider: 'apple' } }, body: { idToken: 'x', nonce: 'n', tokenTransport: 'body' } });

  // @ts-expect-error a step-up needs the password (or reauthenticateWithPasskey)
  await client.reauthenticate({ code: '123456' });
  await client.reauthenticate({ password: 'p', code: '123456' });

  // The account's deletion goes through its named method, with the password.
  await client.deleteAccount({ password: 'pw' });
  // @ts-expect-error the password is the proof
  await client.deleteAccount({});

  // Every code authd answers is one of the named ones (not only `string & {}`).
  type Named = AuthdErrorCode extends infer C ? (C extends string ? (string extends C ? never : C) : never) : never;
  type Added = 'feature_disabled' | 'last_admin' | 'cors_method_not_allowed' | 'cors_header_not_allowed' | 'error';
  is<Equal<Extract<Named, Added>, Added>>(true);
  is<Equal<Extract<OAuthErrorCode, 'oauth_return_unexpected'>, 'oauth_return_unexpected'>>(true);

  // Error codes autocomplete, and unknown future codes still type-check.
  const code: AuthdError['code'] = 'invalid_credentials';
  const future: AuthdError['code'] = 'some_code_added_later';
  return [code, future];
}
