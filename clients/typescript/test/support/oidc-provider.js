// A fake OpenID Connect provider on loopback, for the client's tests and tests/browser/e2e.mjs.
// Plain JavaScript (an ES module with JSDoc types, checked by tsc: checkJs) and node: modules only,
// so the browser test imports this very file without a build step, and the client's tests get
// tsc's copy in build/.
//
// What authd's OpenID Connect client needs of a provider, done the way a real one does it:
//   GET  /.well-known/openid-configuration   discovery (issuer, endpoints, RS256)
//   GET  /jwks                                the public RSA key as a JWK (kid, alg, use)
//   GET  /authorize                           consents at once (or refuses: denyNext()) and 302s
//                                             to redirect_uri with code and state
//   POST /token                               checks the client (Basic or form), the code (once),
//                                             redirect_uri and PKCE S256; answers an ID token
//                                             signed RS256 with kid: iss, sub, aud, iat, exp,
//                                             nonce, email, email_verified, name
// ID tokens for native apps (POST /auth/oauth/{provider}/token) come from idToken().

import crypto from 'node:crypto';
import http from 'node:http';

/**
 * Who the provider says signed in.
 * @typedef {{ subject: string, email: string | null, emailVerified: boolean, name: string | null }} Person
 */

/**
 * One request the provider received (query for GET, form for POST).
 * @typedef {{ method: string, path: string, params: Record<string, string>, authorization: string | null }} ProviderRequest
 */

/**
 * @typedef {object} OidcProvider
 * @property {string} issuer `http://<host>:<port>`: authd's `oauth.providers.<name>.issuer`.
 * @property {string} clientId
 * @property {string} clientSecret
 * @property {ProviderRequest[]} requests Every request, in order.
 * @property {(person: Person) => void} signsIn The person every following authorization vouches for.
 * @property {() => void} denyNext The next authorization is refused (`error=access_denied`), as when the user says no.
 * @property {(options: { person: Person, nonce: string, audience?: string, claims?: Record<string, unknown>, foreignKey?: boolean }) => string} idToken
 *   An ID token as a native app gets it from the provider's SDK (`claims` override any claim;
 *   `foreignKey` signs with a key the provider does not publish).
 * @property {(names?: Record<string, string>) => Record<string, string>} authdSettings
 *   The AUTHD__ variables that configure this provider in authd as `names.name` (default `fake`).
 * @property {() => Promise<void>} stop
 */

/** A person with a fresh subject. @param {string} email @param {Partial<Person>} [rest] @returns {Person} */
export function person(email, rest = {}) {
  return { subject: `sub-${crypto.randomBytes(8).toString('hex')}`, email, emailVerified: true, name: 'Ada Lovelace', ...rest };
}

/** @param {Buffer | string} data */
const b64url = (data) => Buffer.from(data).toString('base64url');

/** RS256 (RSASSA-PKCS1-v1_5 with SHA-256), the signature every OpenID Connect provider supports.
 * @param {Record<string, unknown>} header @param {Record<string, unknown>} claims @param {crypto.KeyObject} key */
function signJwt(header, claims, key) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.sign('sha256', Buffer.from(input), key))}`;
}

/** @param {http.IncomingMessage} req @returns {Promise<string>} */
function readBody(req) {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

/** @param {http.ServerResponse} res @param {number} status @param {unknown} body */
function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * Starts the provider on `127.0.0.1` and a free port. `publicHost` is the host name in its URLs
 * (the issuer): e.g. `localhost`, so that in a browser the provider is another *site* than a page
 * and an authd on `127.0.0.1`, as a real provider is.
 * @param {{ clientId?: string, clientSecret?: string, publicHost?: string }} [options]
 * @returns {Promise<OidcProvider>}
 */
export async function startOidcProvider(options = {}) {
  const clientId = options.clientId ?? 'authd-fake-client';
  const clientSecret = options.clientSecret ?? crypto.randomBytes(16).toString('hex');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const foreign = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const kid = `fake-${crypto.randomBytes(4).toString('hex')}`;
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

  /** @type {ProviderRequest[]} */
  const requests = [];
  /** @type {Person | null} */
  let current = null;
  let deny = false;
  /** @type {Map<string, { person: Person, nonce: string | null, challenge: string | null, redirectUri: string }>} */
  const grants = new Map();
  const usedCodes = new Set();
  let issuer = '';

  /** @param {Person} who @param {string} audience @param {string | null} nonce @param {Record<string, unknown>} [claims] @param {crypto.KeyObject} [key] */
  const sign = (who, audience, nonce, claims = {}, key = privateKey) => {
    const now = Math.floor(Date.now() / 1000);
    return signJwt(
      { alg: 'RS256', typ: 'JWT', kid },
      {
        iss: issuer,
        sub: who.subject,
        aud: audience,
        iat: now,
        exp: now + 600,
        ...(nonce === null ? {} : { nonce }),
        email: who.email,
        email_verified: who.emailVerified,
        name: who.name,
        ...claims,
      },
      key,
    );
  };

  /** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
  const handle = async (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const form = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
    const params = Object.fromEntries(form);
    requests.push({ method: req.method ?? 'GET', path: url.pathname, params, authorization: req.headers.authorization ?? null });

    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        code_challenge_methods_supported: ['S256'],
        scopes_supported: ['openid', 'email', 'profile'],
      });
    }
    if (req.method === 'GET' && url.pathname === '/jwks') return json(res, 200, { keys: [jwk] });

    if (req.method === 'GET' && url.pathname === '/authorize') {
      // A real provider shows an error page, not a redirect, when the client or its redirect URI
      // is wrong: the browser test would see it.
      const redirectUri = params.redirect_uri ?? '';
      if (params.client_id !== clientId || params.response_type !== 'code' || !/^https?:\/\//.test(redirectUri)) {
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        return res.end(`bad authorization request: ${JSON.stringify(params)}`);
      }
      const back = new URL(redirectUri);
      if (params.state !== undefined) back.searchParams.set('state', params.state);
      if (deny || !current) {
        deny = false;
        back.searchParams.set('error', 'access_denied');
      } else {
        const code = crypto.randomBytes(16).toString('hex');
        const challenge = params.code_challenge_method === 'S256' ? params.code_challenge ?? null : null;
        grants.set(code, { person: current, nonce: params.nonce ?? null, challenge, redirectUri });
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { Location: back.href });
      return res.end();
    }

    if (req.method === 'POST' && url.pathname === '/token') {
      // client_secret_basic (the id and secret form-urlencoded, then Base64), or client_secret_post.
      let [id, secret] = [params.client_id ?? '', params.client_secret ?? ''];
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (basic) {
        const decoded = Buffer.from(basic, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const unform = (/** @type {string} */ s) => decodeURIComponent(s.replace(/\+/g, ' '));
        [id, secret] = [unform(decoded.slice(0, colon)), unform(decoded.slice(colon + 1))];
      }
      if (id !== clientId || secret !== clientSecret) return json(res, 401, { error: 'invalid_client' });
      if (params.grant_type !== 'authorization_code') return json(res, 400, { error: 'unsupported_grant_type' });
      const code = params.code ?? '';
      const grant = grants.get(code);
      grants.delete(code);
      if (usedCodes.has(code) || !grant) return json(res, 400, { error: 'invalid_grant', error_description: 'unknown or used code' });
      usedCodes.add(code);
      if (params.redirect_uri !== grant.redirectUri) return json(res, 400, { error: 'invalid_grant', error_description: 'redirect_uri mismatch' });
      if (grant.challenge !== null) {
        const verifier = params.code_verifier ?? '';
        if (b64url(crypto.createHash('sha256').update(verifier).digest()) !== grant.challenge) {
          return json(res, 400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
        }
      }
      return json(res, 200, {
        access_token: crypto.randomBytes(16).toString('hex'),
        token_type: 'Bearer',
        expires_in: 3600,
        id_token: sign(grant.person, clientId, grant.nonce),
      });
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((/** @type {unknown} */ e) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(e));
    });
  });
  await new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(undefined));
  });
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('the provider has no port');
  issuer = `http://${options.publicHost ?? '127.0.0.1'}:${address.port}`;

  return {
    issuer,
    clientId,
    clientSecret,
    requests,
    signsIn: (who) => {
      current = who;
    },
    denyNext: () => {
      deny = true;
    },
    idToken: ({ person: who, nonce, audience = clientId, claims = {}, foreignKey = false }) =>
      sign(who, audience, nonce, claims, foreignKey ? foreign : privateKey),
    authdSettings: ({ name = 'fake', displayName = 'Fake ID' } = {}) => {
      const prefix = `AUTHD__OAUTH__PROVIDERS__${name.toUpperCase()}__`;
      return {
        [`${prefix}KIND`]: 'oidc',
        [`${prefix}DISPLAY_NAME`]: displayName,
        [`${prefix}CLIENT_ID`]: clientId,
        [`${prefix}CLIENT_SECRET`]: clientSecret,
        [`${prefix}ISSUER`]: issuer,
      };
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}
