// Copied from clients/typescript/dist/passkeys.js by `npm run update:example`: do not edit here.
// Passkeys (WebAuthn) between authd and the platform. authd sends the ceremonies' options as JSON
// whose binary fields are base64url strings, and reads the credential back as JSON; the WebAuthn
// API takes and gives ArrayBuffers. These functions translate, so that every browser with
// WebAuthn works, not only those with `PublicKeyCredential.parseCreationOptionsFromJSON`.
/** The browser's `navigator.credentials`, or an error that says to pass one. */
export function platformWebAuthn() {
    const credentials = globalThis.navigator?.credentials;
    if (!credentials || typeof credentials.create !== 'function') {
        throw new TypeError('no WebAuthn here (navigator.credentials): pass `webauthn` to use passkeys');
    }
    return credentials;
}
/** authd's `options` of a registration, as `navigator.credentials.create` takes them. */
export function creationOptions(options) {
    const publicKey = field(options, 'publicKey');
    const user = field(publicKey, 'user');
    return {
        ...publicKey,
        challenge: bytes(publicKey.challenge, 'publicKey.challenge'),
        user: { ...user, id: bytes(user.id, 'publicKey.user.id') },
        excludeCredentials: descriptors(publicKey.excludeCredentials, 'excludeCredentials'),
    };
}
/** authd's `options` of an authentication, as `navigator.credentials.get` takes them. */
export function requestOptions(options) {
    const publicKey = field(options, 'publicKey');
    return {
        ...publicKey,
        challenge: bytes(publicKey.challenge, 'publicKey.challenge'),
        allowCredentials: descriptors(publicKey.allowCredentials, 'allowCredentials'),
    };
}
/** The JSON authd reads of a credential that `create` or `get` answered. */
export function credentialJson(credential) {
    if (!credential || !('rawId' in credential) || !('response' in credential)) {
        throw new TypeError('the authenticator answered no public-key credential');
    }
    const { id, type, rawId, response } = credential;
    const answer = response;
    const encoded = { clientDataJSON: base64url(answer.clientDataJSON) };
    if (answer.attestationObject) {
        encoded.attestationObject = base64url(answer.attestationObject);
        const transports = answer.getTransports?.();
        if (transports)
            encoded.transports = transports;
    }
    else {
        if (!answer.authenticatorData || !answer.signature)
            throw new TypeError('the assertion has no authenticator data or signature');
        encoded.authenticatorData = base64url(answer.authenticatorData);
        encoded.signature = base64url(answer.signature);
        encoded.userHandle = answer.userHandle ? base64url(answer.userHandle) : null;
    }
    const extensions = credential.getClientExtensionResults?.() ?? {};
    return { id, rawId: base64url(rawId), type, response: encoded, extensions };
}
function field(object, name) {
    const value = object?.[name];
    if (typeof value !== 'object' || value === null)
        throw new TypeError(`passkey options without ${name}`);
    return value;
}
function descriptors(list, name) {
    if (list === undefined || list === null)
        return undefined;
    if (!Array.isArray(list))
        throw new TypeError(`passkey options: ${name} is not a list`);
    return list.map((item, i) => ({ ...item, id: bytes(item.id, `${name}[${i}].id`) }));
}
/** base64url (padding optional) to bytes. */
export function bytes(value, name) {
    const base64 = typeof value === 'string' ? value.replace(/=+$/, '') : '';
    // A length of 1 modulo 4 cannot come from bytes.
    if (typeof value !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(value) || base64.length % 4 === 1) {
        throw new TypeError(`passkey options: ${name} is not base64url`);
    }
    const standard = base64.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++)
        out[i] = binary.charCodeAt(i);
    return out.buffer;
}
/** Bytes to base64url without padding. */
export function base64url(data) {
    // isView, not instanceof ArrayBuffer: a buffer from another realm (an iframe, a native bridge)
    // is not an instance of this realm's ArrayBuffer.
    const view = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    let binary = '';
    for (const byte of view)
        binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
