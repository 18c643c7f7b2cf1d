// Passkeys (WebAuthn) between authd and the platform. authd sends the ceremonies' options as JSON
// whose binary fields are base64url strings, and reads the credential back as JSON; the WebAuthn
// API takes and gives ArrayBuffers. These functions translate, so that every browser with
// WebAuthn works, not only those with `PublicKeyCredential.parseCreationOptionsFromJSON`.

/**
 * The part of `navigator.credentials` the passkey ceremonies use. Browsers have it; elsewhere
 * (React Native) pass an implementation backed by the platform's passkey API.
 */
export interface WebAuthnApi {
  create(options: { publicKey: PublicKeyCredentialCreationOptions; signal?: AbortSignal }): Promise<Credential | null>;
  get(options: { publicKey: PublicKeyCredentialRequestOptions; mediation?: CredentialMediationRequirement; signal?: AbortSignal }): Promise<Credential | null>;
}

/** Per-ceremony options handed to `navigator.credentials.get` (and the calls to authd): `mediation`
 * (`'conditional'`: the browser offers passkeys in the autofill of an input with
 * `autocomplete="username webauthn"` instead of a dialog) and `signal` (aborts the wait for the
 * authenticator and the requests; a conditional request waits until the user picks a passkey, so
 * abort it when they sign in another way). */
export interface PasskeyCeremonyOptions {
  webauthn?: WebAuthnApi;
  mediation?: CredentialMediationRequirement;
  signal?: AbortSignal;
}

/** The browser's `navigator.credentials`, or an error that says to pass one. */
export function platformWebAuthn(): WebAuthnApi {
  const credentials = (globalThis as { navigator?: { credentials?: WebAuthnApi } }).navigator?.credentials;
  if (!credentials || typeof credentials.create !== 'function') {
    throw new TypeError('no WebAuthn here (navigator.credentials): pass `webauthn` to use passkeys');
  }
  return credentials;
}

type Json = Record<string, unknown>;

/** authd's `options` of a registration, as `navigator.credentials.create` takes them. */
export function creationOptions(options: Json): PublicKeyCredentialCreationOptions {
  const publicKey = field(options, 'publicKey');
  const user = field(publicKey, 'user');
  return {
    ...publicKey,
    challenge: bytes(publicKey.challenge, 'publicKey.challenge'),
    user: { ...user, id: bytes(user.id, 'publicKey.user.id') },
    excludeCredentials: descriptors(publicKey.excludeCredentials, 'excludeCredentials'),
  } as unknown as PublicKeyCredentialCreationOptions;
}

/** authd's `options` of an authentication, as `navigator.credentials.get` takes them. */
export function requestOptions(options: Json): PublicKeyCredentialRequestOptions {
  const publicKey = field(options, 'publicKey');
  return {
    ...publicKey,
    challenge: bytes(publicKey.challenge, 'publicKey.challenge'),
    allowCredentials: descriptors(publicKey.allowCredentials, 'allowCredentials'),
  } as unknown as PublicKeyCredentialRequestOptions;
}

/** The JSON authd reads of a credential that `create` or `get` answered. */
export function credentialJson(credential: Credential | null): Json {
  if (!credential || !('rawId' in credential) || !('response' in credential)) {
    throw new TypeError('the authenticator answered no public-key credential');
  }
  const { id, type, rawId, response } = credential as PublicKeyCredential;
  const answer = response as AuthenticatorResponse & Partial<AuthenticatorAttestationResponse & AuthenticatorAssertionResponse>;
  const encoded: Json = { clientDataJSON: base64url(answer.clientDataJSON) };
  if (answer.attestationObject) {
    encoded.attestationObject = base64url(answer.attestationObject);
    const transports = answer.getTransports?.();
    if (transports) encoded.transports = transports;
  } else {
    if (!answer.authenticatorData || !answer.signature) throw new TypeError('the assertion has no authenticator data or signature');
    encoded.authenticatorData = base64url(answer.authenticatorData);
    encoded.signature = base64url(answer.signature);
    encoded.userHandle = answer.userHandle ? base64url(answer.userHandle) : null;
  }
  const extensions = (credential as PublicKeyCredential).getClientExtensionResults?.() ?? {};
  return { id, rawId: base64url(rawId), type, response: encoded, extensions };
}

function field(object: unknown, name: string): Json {
  const value = (object as Json | null | undefined)?.[name];
  if (typeof value !== 'object' || value === null) throw new TypeError(`passkey options without ${name}`);
  return value as Json;
}

function descriptors(list: unknown, name: string): PublicKeyCredentialDescriptor[] | undefined {
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw new TypeError(`passkey options: ${name} is not a list`);
  return list.map((item: Json, i) => ({ ...item, id: bytes(item.id, `${name}[${i}].id`) }) as PublicKeyCredentialDescriptor);
}

/** base64url (padding optional) to bytes. */
export function bytes(value: unknown, name: string): ArrayBuffer {
  const base64 = typeof value === 'string' ? value.replace(/=+$/, '') : '';
  // A length of 1 modulo 4 cannot come from bytes.
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(value) || base64.length % 4 === 1) {
    throw new TypeError(`passkey options: ${name} is not base64url`);
  }
  const standard = base64.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out.buffer;
}

/** Bytes to base64url without padding. */
export function base64url(data: ArrayBuffer | ArrayBufferView): string {
  // isView, not instanceof ArrayBuffer: a buffer from another realm (an iframe, a native bridge)
  // is not an instance of this realm's ArrayBuffer.
  const view = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
  let binary = '';
  for (const byte of view) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
