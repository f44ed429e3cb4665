// A real, independent OpenID provider for the integration tests: npm `oidc-provider` (a
// certified implementation) configured for portcullis' tests. It is a test peer only: it
// never ships, binds 127.0.0.1 only, and its users, secrets and keys are fixed test values.
//
// Start: `node server.mjs [CONFIG_JSON]` with env
//   PORT        listen port (0 or unset: an ephemeral port)
//   ISSUER      issuer URL (default http://127.0.0.1:<port>)
//   KEYS_FILE   JSON file holding the private signing keys; created on first start and reused,
//               so a restart keeps the keys (without it, keys live in memory only)
//   ACCESS_TTL  access token lifetime in seconds (default 300); ID_TOKEN_TTL (default 3600)
//   OIDC_CONFIG the config JSON, when not given as the first argument
// It prints exactly one line `READY <issuer>` on stdout once it accepts connections.
//
// Config JSON (every key optional):
//   { "clients": [ {client metadata, merged by client_id into the defaults below} ],
//     "resources": { "api://billing": { "scope": "billing.read billing.write", "alg": "ES256" } } }
//
// Test-only endpoints (never part of a real provider):
//   GET  /__test/health       200 "ok"
//   POST /__test/rotate-keys  adds a new ES256 and a new RS256 key FIRST in the key set (new
//                             kids), persists them, and answers {"kids": [...]}; new tokens use
//                             the new keys, old ones stay published so issued tokens verify
//   POST /__test/clients      body: a JSON array of client metadata merged by client_id, e.g. to
//                             set the relying party's redirect_uris once its port is known
//   POST /__test/forget-grants  forgets every session, grant and token (a provider that lost its
//                             state or revoked everything): the next refresh gets invalid_grant
// Both rebuilding POSTs build a new Provider object in-process and swap it in: sessions, grants
// and tokens survive, as a real provider's database would across a key rotation, because every
// Provider built here shares one store (`STORE`; oidc-provider's default gives each Provider
// object a store of its own), and cookie signing keys are fixed.
//
// Login: GET /interaction/<uid> shows a plain HTML form (no JavaScript) with a `login` text
// field; POSTing a known username logs that user in, and consent for whatever the client asked
// is granted automatically on the next interaction, so an HTTP client can drive the flow.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';
// The package's own in-memory adapter and its LRU, constructed over one store for the process.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const STORE = new LRU({ maxSize: 100000 });
const adapter = (model) => new MemoryAdapter(model, STORE);

const USERS = {
  alice: { name: 'Alice Anders', email: 'alice@corp.example', email_verified: true, groups: ['eng', 'security'] },
  bob: { name: 'Bob Berg', email: 'bob@corp.example', email_verified: true, groups: ['sales'] },
  carol: { name: 'Carol Chen', email: 'carol@corp.example', email_verified: true, groups: [] },
};

const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name'],
  groups: ['groups'],
};

const DEFAULT_CLIENTS = [
  {
    client_id: 'portcullis',
    client_secret: 'portcullis-test-secret',
    client_name: 'portcullis (tests)',
    application_type: 'web',
    redirect_uris: ['http://127.0.0.1/.portcullis/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/'],
    backchannel_logout_uri: 'http://127.0.0.1/.portcullis/backchannel-logout',
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'billing-bot',
    client_secret: 'billing-bot-test-secret',
    client_name: 'billing service (tests)',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'billing.read billing.write ledger.read',
  },
];

const DEFAULT_RESOURCES = {
  'api://billing': { scope: 'billing.read billing.write', alg: 'ES256' },
  'api://ledger': { scope: 'ledger.read', alg: 'RS256' },
};

function readConfig() {
  const text = process.argv[2] || process.env.OIDC_CONFIG || '{}';
  return JSON.parse(text);
}

// Merges client metadata lists by client_id; later entries override earlier keys.
function mergeClients(base, overrides) {
  const byId = new Map(base.map((c) => [c.client_id, { ...c }]));
  for (const c of overrides || []) {
    byId.set(c.client_id, { ...(byId.get(c.client_id) || {}), ...c });
  }
  return [...byId.values()];
}

function newKeys() {
  const kid = crypto.randomBytes(8).toString('hex');
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return [
    { ...ec, kid: `es-${kid}`, alg: 'ES256', use: 'sig' },
    { ...rsa, kid: `rs-${kid}`, alg: 'RS256', use: 'sig' },
  ];
}

function loadKeys(file) {
  if (file && fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8')).keys;
  }
  const keys = newKeys();
  saveKeys(file, keys);
  return keys;
}

function saveKeys(file, keys) {
  if (file) {
    fs.writeFileSync(file, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  }
}

const env = process.env;
const config = readConfig();
const accessTtl = Number(env.ACCESS_TTL || 300);
const idTokenTtl = Number(env.ID_TOKEN_TTL || 3600);
const keysFile = env.KEYS_FILE || '';
const state = {
  keys: loadKeys(keysFile),
  clients: mergeClients(DEFAULT_CLIENTS, config.clients),
  resources: { ...DEFAULT_RESOURCES, ...(config.resources || {}) },
};

function scopes() {
  const resourceScopes = Object.values(state.resources).flatMap((r) => r.scope.split(' '));
  return [...new Set(['openid', 'offline_access', ...Object.keys(CLAIMS), ...resourceScopes])];
}

async function findAccount(_ctx, id) {
  const user = USERS[id];
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...user };
    },
  };
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: state.clients,
    jwks: { keys: state.keys },
    findAccount,
    adapter,
    claims: CLAIMS,
    scopes: scopes(),
    // Scope-requested claims (groups, email) go into the id_token too, as Okta and Keycloak do.
    conformIdTokenClaims: false,
    cookies: { keys: ['portcullis-test-cookie-key'] },
    pkce: { required: () => true },
    // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection) by
    // handing fetch a guarded dispatcher; every relying party here is on 127.0.0.1, so the
    // back-channel logout POST must use the default dispatcher instead.
    fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher: undefined }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // Refresh tokens for every client allowed the grant, without the offline_access consent dance.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: () => accessTtl,
      ClientCredentials: () => accessTtl,
      IdToken: () => idTokenTtl,
      AuthorizationCode: () => 60,
      RefreshToken: () => 24 * 3600,
      Interaction: () => 3600,
      Session: () => 24 * 3600,
      Grant: () => 24 * 3600,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, indicator) => {
          const resource = state.resources[indicator];
          if (!resource) throw new errors.InvalidTarget();
          return {
            scope: resource.scope,
            audience: indicator,
            accessTokenTTL: accessTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: resource.alg || 'ES256' } },
          };
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));
  provider.on('backchannel.error', (_ctx, err, client) => console.error(`backchannel logout to ${client.clientId} failed:`, err));
  return provider;
}

// The logout confirmation page; the submit button sits INSIDE the form (the default page puts
// it outside with form=...), so a form-submitting HTTP client finds everything in one <form>.
async function logoutSource(ctx, form) {
  const button = '<button type="submit" name="logout" value="yes">Yes, sign me out</button>';
  ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign out</title></head>
<body><h1>Sign out of the test provider?</h1>${form.replace('</form>', `${button}</form>`)}</body></html>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, clientId, message) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Test provider sign-in</h1><p>Client: ${escapeHtml(clientId)}</p>
${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Username <input type="text" name="login" autofocus></label>
<button type="submit">Sign in</button>
</form><p>Users: ${Object.keys(USERS).join(', ')}</p></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

// Grants exactly what the consent prompt says is missing, then resumes the authorization.
async function grantConsent(provider, req, res, details) {
  const { prompt, params, session } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scope.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interaction(provider, req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'text/plain', 'interaction mismatch\n');
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'consent') return grantConsent(provider, req, res, details);
    return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details.params.client_id));
  }
  if (req.method === 'POST' && action === 'login') {
    const login = new URLSearchParams(await readBody(req)).get('login') || '';
    if (!USERS[login]) {
      return send(res, 200, 'text/html; charset=utf-8', loginPage(uid, details.params.client_id, `unknown user ${login}`));
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  return send(res, 404, 'text/plain', 'not found\n');
}

async function testEndpoint(req, res, url, rebuild) {
  if (req.method === 'GET' && url.pathname === '/__test/health') return send(res, 200, 'text/plain', 'ok\n');
  if (req.method === 'POST' && url.pathname === '/__test/rotate-keys') {
    state.keys = [...newKeys(), ...state.keys];
    saveKeys(keysFile, state.keys);
    rebuild();
    return send(res, 200, 'application/json', JSON.stringify({ kids: state.keys.map((k) => k.kid) }));
  }
  if (req.method === 'POST' && url.pathname === '/__test/forget-grants') {
    STORE.clear();
    return send(res, 200, 'text/plain', 'forgotten\n');
  }
  if (req.method === 'POST' && url.pathname === '/__test/clients') {
    const previous = state.clients;
    state.clients = mergeClients(state.clients, JSON.parse(await readBody(req)));
    try {
      rebuild();
    } catch (err) {
      state.clients = previous;
      rebuild();
      return send(res, 400, 'text/plain', `${err.message}\n`);
    }
    return send(res, 200, 'application/json', JSON.stringify({ clients: state.clients.map((c) => c.client_id) }));
  }
  return send(res, 404, 'text/plain', 'not found\n');
}

const server = http.createServer();
server.listen(Number(env.PORT || 0), '127.0.0.1', () => {
  const issuer = env.ISSUER || `http://127.0.0.1:${server.address().port}`;
  let provider = buildProvider(issuer);
  let callback = provider.callback();
  const rebuild = () => {
    const next = buildProvider(issuer);
    provider = next;
    callback = next.callback();
  };
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    const current = provider;
    let work;
    if (url.pathname.startsWith('/__test/')) work = testEndpoint(req, res, url, rebuild);
    else if (url.pathname.startsWith('/interaction/')) work = interaction(current, req, res, url);
    else return callback(req, res);
    work.catch((err) => {
      console.error('test provider error', err);
      if (!res.headersSent) send(res, 500, 'text/plain', `${err.message}\n`);
    });
  });
  process.stdout.write(`READY ${issuer}\n`);
});
