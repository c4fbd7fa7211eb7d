// A real, certified OpenID Provider for the tests: the `oidc-provider` npm package on
// 127.0.0.1 with a free port, over plain http. One confidential `web` client
// (client_secret_basic at the token endpoint, the default of Rust's `openidconnect`
// crate), authorization code flow only, PKCE (S256) required.
//
// Signing in goes through the provider's own development pages: a login page that takes
// any login name and any password, nothing else (consent is granted up front, so no
// consent page is shown). The account's claims: `sub` = the login, `email` =
// `<login>@example.org` (or what `accounts` says), `email_verified: true`, `name`.
// They are in the ID token itself (`conformIdTokenClaims: false`), not only at userinfo.
//
//   const idp = await startOidcProvider({ redirectUris: [`${server.url}/auth/oidc/sso/callback`] });
//   // idp.issuer, idp.clientId, idp.clientSecret; await idp.stop();
//
// In Chromium: the login page has `input[name=login]`, `input[name=password]` and a
// "Sign-in" button; `signInOnProviderPage(page, login)` below fills it in.
// Over HTTP: `followSignIn(url, login)` plays a browser through the same pages.

import { createServer } from "node:http";
import { generateKeyPair, exportJWK } from "jose";

// The package prints notices meant for people deploying it (development interactions
// are on, default error pages, Node 20 is older than it likes: it works on it, as these
// tests show, ...). They are what a test provider wants; keep them out
// of the test output unless asked for.
if (!process.env.CAUCUS_TEST_VERBOSE) {
  for (const level of ["info", "warn"]) {
    const original = console[level].bind(console);
    console[level] = (first, ...rest) => {
      if (typeof first === "string" && /^(\x1b\[[0-9;]*m)?oidc-provider (WARNING|NOTICE):/.test(first)) return;
      original(first, ...rest);
    };
  }
}

/** What the provider says about the account `login`: sub, email, email_verified, name. */
function claimsFor(login, accounts) {
  const entry = accounts?.[login];
  const given = typeof entry === "string" ? { email: entry } : (entry ?? {});
  const name = given.name ?? login.charAt(0).toUpperCase() + login.slice(1);
  return {
    sub: given.sub ?? login,
    email: given.email ?? `${login}@example.org`,
    email_verified: given.email_verified ?? true,
    name,
  };
}

/**
 * Starts the provider. `redirectUris`: the client's registered redirect URIs (exact
 * match, as the provider checks them). `accounts`: optional map from login name to an
 * email address or to `{ email, name, email_verified, sub }`.
 * Resolves with `{ issuer, clientId, clientSecret, stop }`.
 */
export async function startOidcProvider({
  redirectUris,
  clientId = "caucus-test",
  clientSecret = "caucus-test-secret-0123456789abcdefghijklmnop",
  accounts,
} = {}) {
  if (!Array.isArray(redirectUris) || redirectUris.length === 0) {
    throw new Error("startOidcProvider: give redirectUris, e.g. [`${server.url}/auth/oidc/sso/callback`]");
  }
  // Listen first, so that the issuer can name the real port.
  const http = createServer();
  await new Promise((done, fail) => {
    http.once("error", fail);
    http.listen(0, "127.0.0.1", done);
  });
  const issuer = `http://127.0.0.1:${http.address().port}`;

  // Imported here, after the filter above is in place: it warns as it loads.
  const { default: Provider } = await import("oidc-provider");
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: "caucus-test-rs256", use: "sig", alg: "RS256" };

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      application_type: "web",
      redirect_uris: redirectUris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "RS256",
    }],
    // Every client, confidential or not, must use PKCE; oidc-provider only knows S256.
    pkce: { required: () => true },
    jwks: { keys: [signingKey] },
    cookies: { keys: ["caucus-test-cookie-key-0123456789abcdef"] },
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name"],
    },
    // Put the scope's claims in the ID token too, not only behind the userinfo endpoint.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      // The provider's default is on; the server under test must work without it.
      userinfo: { enabled: true },
    },
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() { return claimsFor(sub, accounts); },
      };
    },
    // Consent is given up front: the only page a person sees is the login page.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const grant = await ctx.oidc.provider.Grant.find(grantId);
        if (grant) return grant;
      }
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope("openid email profile");
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600,
    },
  });
  provider.on("server_error", (_ctx, error) => console.error("oidc-provider server error:", error));

  http.on("request", provider.callback());
  const sockets = new Set();
  http.on("connection", (socket) => { sockets.add(socket); socket.on("close", () => sockets.delete(socket)); });

  return {
    issuer,
    clientId,
    clientSecret,
    provider,
    stop: () => new Promise((done) => {
      for (const socket of sockets) socket.destroy();
      http.close(() => done());
    }),
  };
}

/** Fills in the provider's login page in Chromium and submits it. */
export async function signInOnProviderPage(page, login, password = "any password") {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: "Sign-in" }).click();
}

/**
 * A cookie jar for scripted HTTP flows, by host:port (enough for 127.0.0.1 servers on
 * different ports; paths are honoured, expiry by Max-Age=0 only).
 */
export class CookieJar {
  constructor() { this.cookies = []; }

  /** Stores the Set-Cookie headers of `response`, which answered a request to `url`. */
  take(url, response) {
    const host = new URL(url).host;
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(";").map((part) => part.trim());
      const at = pair.indexOf("=");
      const name = pair.slice(0, at);
      const value = pair.slice(at + 1);
      let path = "/";
      let gone = false;
      for (const attribute of attributes) {
        const [key, val = ""] = attribute.split("=");
        if (key.toLowerCase() === "path") path = val;
        if (key.toLowerCase() === "max-age" && Number(val) <= 0) gone = true;
        if (key.toLowerCase() === "expires" && Date.parse(val) < Date.now()) gone = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.host === host && c.name === name && c.path === path));
      if (!gone) this.cookies.push({ host, name, value, path });
    }
  }

  /** The Cookie header a browser would send to `url`, or undefined. */
  header(url) {
    const { host, pathname } = new URL(url);
    const matching = this.cookies.filter((c) => c.host === host
      && (pathname === c.path || pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`)));
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join("; ") : undefined;
  }

  get(url, name) {
    const host = new URL(url).host;
    return this.cookies.find((c) => c.host === host && c.name === name)?.value;
  }
}

/**
 * Plays a browser from `url` (e.g. the server's `/auth/oidc/sso?...` or the provider's
 * authorization URL) through redirects and the provider's login page, signing in as
 * `login`. Stops at the first response that is not a redirect, or at a redirect to
 * `stopAt` (a URL prefix), and resolves with `{ url, response, jar }` where `url` is the
 * last URL asked for (or the redirect target, when `stopAt` matched).
 */
export async function followSignIn(url, login, { jar = new CookieJar(), stopAt, password = "any password", limit = 20 } = {}) {
  let method = "GET";
  let body;
  for (let step = 0; step < limit; step++) {
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers["content-type"] = "application/x-www-form-urlencoded";
    const response = await fetch(url, { method, body, headers, redirect: "manual" });
    jar.take(url, response);
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, url).href;
      if (stopAt && next.startsWith(stopAt)) return { url: next, response, jar };
      url = next;
      method = "GET";
      body = undefined;
      continue;
    }
    const html = response.headers.get("content-type")?.includes("html") ? await response.text() : undefined;
    const form = html?.match(/<form[^>]*action="([^"]+)"[^>]*method="post"[\s\S]*?name="login"/);
    if (form) {
      url = new URL(form[1].replace(/&amp;/g, "&"), url).href;
      method = "POST";
      body = new URLSearchParams({ prompt: "login", login, password }).toString();
      continue;
    }
    return { url, response, html, jar };
  }
  throw new Error(`followSignIn: more than ${limit} steps`);
}
