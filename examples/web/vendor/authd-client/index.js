// Copied from clients/typescript/dist/index.js by `npm run update:example`: do not edit here.
// @authd/client: a typed client for authd. Runtime: the platform's fetch only.
export { AuthdClient } from './client.js';
export { AuthdError, parseRetryAfter } from './errors.js';
export { parseOAuthReturn } from './oauth.js';
export { base64url, bytes, creationOptions, credentialJson, platformWebAuthn, requestOptions } from './passkeys.js';
export { memoryStorage } from './storage.js';
