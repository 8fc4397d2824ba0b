// A real OpenID Connect provider for the tests (oidc-provider, certified by the OpenID Foundation), started by
// tests/support/oidc_provider.py. Configuration comes from the environment:
//   OIDC_PORT           the loopback port to listen on; the issuer is http://127.0.0.1:PORT
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS (comma-separated)   the one confidential client
//   OIDC_TOKEN_AUTH     client_secret_basic (default) or client_secret_post
//   OIDC_CLAIMS_IN      id_token (default: the scopes' claims are in the ID token, as Google and Entra put them)
//                       or userinfo (only the userinfo endpoint has them, which is what the spec's default says)
// Its development interactions sign in whatever login is typed (any password) and then ask for consent.
// The login becomes the subject; its email is the login itself when it holds an "@", else login@example.test.
// Prints "ready ISSUER" on stdout once it listens.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('OIDC_PORT must be a port number');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

function account(login) {
  const email = login.includes('@') ? login.toLowerCase() : `${login.toLowerCase()}@example.test`;
  const name = login.split('@')[0].replace(/[._-]+/g, ' ');
  return { sub: login, email, email_verified: true, name };
}

// A signing key of this run only: the tests must fetch it from the JWKS, not know it in advance.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean),
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: process.env.OIDC_TOKEN_AUTH || 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Every client must use PKCE, with S256 only (no "plain"): our client always does.
  pkce: { methods: ['S256'], required: () => true },
  conformIdTokenClaims: process.env.OIDC_CLAIMS_IN === 'userinfo',
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return account(id); } };
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
