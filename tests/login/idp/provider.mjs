// Test-only OpenID Connect provider for the login tests (tests/login). Never deployed.
//
// Usage: node provider.mjs CONFIG.json
//
// The test writes CONFIG.json: issuer, listen address, TLS files, cookie keys, the
// clients (taken from the generated hub.config: client_id, client_secret, callback URL)
// and the users. This file only turns that into an oidc-provider instance with a
// minimal login and consent UI, so that a real browser walks the same pages a person
// would: a username/password form, then a consent page.
//
// Settings that matter for the hub (oauthenticator 16.1.0 and 17.4.0, GenericOAuthenticator):
// - token_endpoint_auth_method client_secret_post: with its default basic_auth=False
//   oauthenticator sends client_id and client_secret in the token request body.
// - PKCE not required, checked when sent: oauthenticator 16.1.0 sends no code_challenge,
//   17.4.0 sends S256 by default.
// - a client may have short-lived access tokens (access_token_ttl, seconds), with no clock
//   tolerance, so a test can wait for expiry and watch the hub refresh; the revocation
//   endpoint lets a test revoke a refresh token.
// - refresh tokens: oidc-provider issues one only for the offline_access scope, and
//   keeps that scope only when the authorization request carries prompt=consent.
// - custom claim "groups" mapped to the "profile" scope, so it appears in the
//   userinfo response the hub reads (it asks with the access token in the header).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node provider.mjs CONFIG.json');
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));

const usersBySub = new Map(cfg.users.map((u) => [u.sub, u]));
const usersByName = new Map(cfg.users.map((u) => [u.username, u]));

// A fresh signing key per run: ID tokens only have to verify while the test runs.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'login-test' };

const accessTokenTtl = new Map(
  cfg.clients.filter((c) => c.access_token_ttl).map((c) => [c.client_id, c.access_token_ttl]),
);

const claimsByScope = cfg.claims ?? {
  openid: ['sub'],
  profile: ['preferred_username', 'name', 'groups'],
  email: ['email', 'email_verified'],
};

const configuration = {
  clients: cfg.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_post',
  })),
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: claimsByScope,
  async findAccount(_ctx, sub) {
    const user = usersBySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      // The provider filters these down to what the granted scopes allow.
      async claims() {
        return {
          sub: user.sub,
          preferred_username: user.username,
          name: user.name ?? user.username,
          email: user.email,
          email_verified: true,
          groups: user.groups ?? [],
        };
      },
    };
  },
  // oauthenticator 16.1.0 sends no code_challenge; a confidential client may skip PKCE.
  pkce: { required: () => false },
  features: {
    // Our own interaction pages below replace the development ones.
    devInteractions: { enabled: false },
    revocation: { enabled: true },
  },
  // An expired token is expired: by default the provider accepts one for 15 s more.
  clockTolerance: 0,
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  cookies: { keys: cfg.cookie_keys ?? [randomBytes(32).toString('hex')] },
  // Explicit lifetimes (seconds), long enough for one test run; also keeps the log free
  // of the provider's notices about default TTL functions.
  ttl: {
    AccessToken: (_ctx, _token, client) => accessTokenTtl.get(client?.clientId) ?? 3600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
  jwks: { keys: [signingKey] },
};

const provider = new Provider(cfg.issuer, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('authorization.error', (_ctx, err) => console.error('authorization.error', err.message, err.error_description ?? ''));
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
// The tests read these lines to see which grants reached the provider.
provider.on('grant.success', (ctx) => console.log('grant.success', ctx.oidc.client?.clientId, ctx.oidc.params?.grant_type));
provider.on('userinfo.error', (_ctx, err) => console.error('userinfo.error', err.message));

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function page(res, status, title, body) {
  const html = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

function loginForm(res, uid, clientId, message) {
  const error = message ? `<p id="error" role="alert">${escapeHtml(message)}</p>` : '';
  page(res, 200, 'Sign in to the test identity provider', `
${error}
<p>Client: <code id="client">${escapeHtml(clientId)}</code></p>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label>Username <input name="username" autocomplete="username" required autofocus></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>`);
}

function consentForm(res, uid, clientId, details, params) {
  const scopes = (params.scope ?? '').split(' ').filter(Boolean);
  const items = scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('');
  page(res, 200, 'Authorize access', `
<p>The application <code id="client">${escapeHtml(clientId)}</code> asks for:</p>
<ul id="scopes">${items}</ul>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
  <button type="submit">Allow</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit">Deny</button>
</form>
<pre hidden id="details">${escapeHtml(JSON.stringify(details))}</pre>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    // A login form is tiny; refuse anything that is not.
    if (size > 65536) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function handleInteraction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    page(res, 400, 'Interaction mismatch', '<p>This sign-in page does not belong to the current request.</p>');
    return;
  }
  const { prompt, params } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') {
      loginForm(res, uid, params.client_id);
    } else if (prompt.name === 'consent') {
      consentForm(res, uid, params.client_id, prompt.details, params);
    } else {
      page(res, 501, 'Unsupported prompt', `<p>${escapeHtml(prompt.name)}</p>`);
    }
    return;
  }

  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const user = usersByName.get(form.get('username') ?? '');
    if (!user || user.password !== form.get('password')) {
      loginForm(res, uid, params.client_id, 'Invalid username or password.');
      return;
    }
    // The session's accountId is the sub, which differs from the username on purpose.
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const { accountId } = details.session;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
    return;
  }

  if (req.method === 'POST' && action === 'abort') {
    await readForm(req);
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  page(res, 405, 'Not allowed', '<p>Unexpected request for this sign-in step.</p>');
}

const providerCallback = provider.callback();
const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/;

const server = createServer(
  { cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) },
  (req, res) => {
    const { pathname } = new URL(req.url, cfg.issuer);
    const match = interactionPath.exec(pathname);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    handleInteraction(req, res, match[1], match[2]).catch((err) => {
      console.error('interaction error', err);
      if (!res.headersSent) {
        page(res, err.statusCode ?? 500, 'Sign-in error', `<p id="error">${escapeHtml(err.message)}</p>`);
      } else {
        res.end();
      }
    });
  },
);

server.listen(cfg.port, cfg.host, () => {
  console.log(`oidc-provider listening on ${cfg.host}:${cfg.port}, issuer ${cfg.issuer}`);
});

function shutdown(signal) {
  console.log(`received ${signal}, closing`);
  server.close(() => process.exit(0));
  // Keep-alive connections from the hub or browser would hold close() open.
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
