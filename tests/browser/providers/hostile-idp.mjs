// A small, hostile OpenID Provider for attack tests: discovery, JWKS, authorize, token
// and userinfo endpoints on a node:http server, with ID tokens made by `jose`.
//
// `/authorize` asks nobody anything: it redirects at once to the `redirect_uri` it was
// given, echoing `state`, with `code=<mode>`, where the mode is what the test set last
// with `setMode`. The token endpoint answers the code by its mode:
//
//   good                     a valid RS256 ID token with the nonce of the last authorize
//   wrong_nonce              ... whose nonce is another one
//   missing_nonce            ... with no nonce at all
//   wrong_audience           ... for another client (aud)
//   wrong_issuer             ... from another issuer (iss)
//   expired                  ... that expired an hour ago
//   alg_none                 header alg "none" and no signature
//   bad_signature            signed with a key that is not in the JWKS, under the JWKS key's kid
//   unknown_key              signed with a key that is not in the JWKS, with a kid of its own
//   hs256_with_public_key    HS256 with the JWKS key's public PEM as the HMAC secret (alg confusion)
//   hs256_with_client_secret HS256 with the client secret (the client never registered HS256)
//   unverified_email         valid, but email_verified is false
//   token_error              the token endpoint answers 400 invalid_grant
//
// and at authorize itself:
//   access_denied            redirect with error=access_denied (and the state)
//
// It keeps the last authorize request (`lastAuthorize`: code_challenge,
// code_challenge_method, nonce, state, scope, redirect_uri, client_id, response_type) and
// the last token request (`lastToken`: code, code_verifier, verifierMatches — whether
// BASE64URL(SHA-256(code_verifier)) equals the recorded code_challenge —, clientAuth
// "basic"|"post"|"none", clientAuthOk, redirect_uri, grant_type).

import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from "jose";

export const hostileModes = [
  "good", "wrong_nonce", "missing_nonce", "wrong_audience", "wrong_issuer", "expired", "alg_none",
  "bad_signature", "unknown_key", "hs256_with_public_key", "hs256_with_client_secret",
  "unverified_email", "token_error", "access_denied",
];

const s256 = (verifier) => createHash("sha256").update(verifier).digest("base64url");

async function readBody(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Starts the hostile provider on 127.0.0.1 with a free port. The account it vouches for
 * is `{ subject, email, name }`. Resolves with `{ issuer, clientId, clientSecret,
 * setMode(mode), lastAuthorize, lastToken, requests, stop }` (`lastAuthorize` and
 * `lastToken` are read live).
 */
export async function startHostileIdp({
  clientId = "caucus-hostile",
  clientSecret = "hostile-client-secret-0123456789abcdefghij",
  subject = "mallory",
  email = "mallory@example.org",
  name = "Mallory",
} = {}) {
  const kid = "hostile-rs256";
  const good = await generateKeyPair("RS256", { extractable: true });
  const other = await generateKeyPair("RS256", { extractable: true });
  const publicJwk = { ...(await exportJWK(good.publicKey)), kid, use: "sig", alg: "RS256" };
  const publicPem = await exportSPKI(good.publicKey);

  let mode = "good";
  let lastAuthorize = null;
  let lastToken = null;
  const requests = [];

  const http = createServer();
  await new Promise((done, fail) => {
    http.once("error", fail);
    http.listen(0, "127.0.0.1", done);
  });
  const issuer = `http://127.0.0.1:${http.address().port}`;

  async function idToken(tokenMode) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: subject, email, email_verified: tokenMode !== "unverified_email", name,
      nonce: lastAuthorize?.nonce ?? undefined, azp: clientId,
    };
    if (tokenMode === "wrong_nonce") claims.nonce = "not-the-nonce-you-sent";
    if (tokenMode === "missing_nonce") delete claims.nonce;
    if (claims.nonce === undefined) delete claims.nonce;
    let audience = clientId;
    let iss = issuer;
    let iat = now;
    let exp = now + 600;
    if (tokenMode === "wrong_audience") { audience = "someone-else"; claims.azp = "someone-else"; }
    if (tokenMode === "wrong_issuer") iss = "http://127.0.0.1:1/another-issuer";
    if (tokenMode === "expired") { iat = now - 7200; exp = now - 3600; }

    if (tokenMode === "alg_none") {
      return new UnsecuredJWT(claims).setIssuer(iss).setAudience(audience).setIssuedAt(iat).setExpirationTime(exp).encode();
    }
    const jwt = new SignJWT(claims).setIssuer(iss).setAudience(audience).setIssuedAt(iat).setExpirationTime(exp);
    switch (tokenMode) {
      case "bad_signature":
        return jwt.setProtectedHeader({ alg: "RS256", kid, typ: "JWT" }).sign(other.privateKey);
      case "unknown_key":
        return jwt.setProtectedHeader({ alg: "RS256", kid: "not-in-the-jwks", typ: "JWT" }).sign(other.privateKey);
      case "hs256_with_public_key":
        return jwt.setProtectedHeader({ alg: "HS256", kid, typ: "JWT" }).sign(new TextEncoder().encode(publicPem));
      case "hs256_with_client_secret":
        return jwt.setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(clientSecret));
      default:
        return jwt.setProtectedHeader({ alg: "RS256", kid, typ: "JWT" }).sign(good.privateKey);
    }
  }

  function send(response, status, body, headers = {}) {
    const json = typeof body === "string" ? body : JSON.stringify(body);
    response.writeHead(status, {
      "content-type": typeof body === "string" ? "text/plain" : "application/json",
      "cache-control": "no-store",
      ...headers,
    });
    response.end(json);
  }

  http.on("request", async (request, response) => {
    try {
      const url = new URL(request.url, issuer);
      requests.push({ method: request.method, path: url.pathname });
      if (url.pathname === "/.well-known/openid-configuration") {
        return send(response, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          userinfo_endpoint: `${issuer}/userinfo`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ["code"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
          scopes_supported: ["openid", "email", "profile"],
          token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
          code_challenge_methods_supported: ["S256"],
          claims_supported: ["sub", "email", "email_verified", "name"],
        });
      }
      if (url.pathname === "/jwks") return send(response, 200, { keys: [publicJwk] });
      if (url.pathname === "/authorize") {
        const q = Object.fromEntries(url.searchParams);
        lastAuthorize = {
          client_id: q.client_id, response_type: q.response_type, redirect_uri: q.redirect_uri, scope: q.scope,
          state: q.state, nonce: q.nonce, code_challenge: q.code_challenge,
          code_challenge_method: q.code_challenge_method, query: q, mode,
        };
        if (!q.redirect_uri) return send(response, 400, "no redirect_uri");
        const back = new URL(q.redirect_uri);
        if (mode === "access_denied") back.searchParams.set("error", "access_denied");
        else back.searchParams.set("code", mode);
        if (q.state !== undefined) back.searchParams.set("state", q.state);
        response.writeHead(303, { location: back.href, "cache-control": "no-store" });
        return response.end();
      }
      if (url.pathname === "/token" && request.method === "POST") {
        const form = Object.fromEntries(new URLSearchParams(await readBody(request)));
        let clientAuth = "none";
        let givenId = form.client_id;
        let givenSecret = form.client_secret;
        const authorization = request.headers.authorization ?? "";
        if (/^basic /i.test(authorization)) {
          clientAuth = "basic";
          const decoded = Buffer.from(authorization.slice(6), "base64").toString("utf8");
          const colon = decoded.indexOf(":");
          givenId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
          givenSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
        } else if (givenSecret !== undefined) {
          clientAuth = "post";
        }
        const challenge = lastAuthorize?.code_challenge;
        lastToken = {
          grant_type: form.grant_type, code: form.code, redirect_uri: form.redirect_uri,
          code_verifier: form.code_verifier,
          verifierMatches: Boolean(form.code_verifier && challenge && s256(form.code_verifier) === challenge),
          clientAuth,
          clientAuthOk: givenId === clientId && givenSecret === clientSecret,
          form,
        };
        if (!lastToken.clientAuthOk) return send(response, 401, { error: "invalid_client" });
        const tokenMode = form.code;
        if (tokenMode === "token_error" || !hostileModes.includes(tokenMode)) {
          return send(response, 400, { error: "invalid_grant", error_description: "hostile: no such code" });
        }
        return send(response, 200, {
          access_token: `at-${tokenMode}`,
          token_type: "Bearer",
          expires_in: 600,
          scope: lastAuthorize?.scope ?? "openid",
          id_token: await idToken(tokenMode),
        });
      }
      if (url.pathname === "/userinfo") {
        return send(response, 200, { sub: subject, email, email_verified: true, name });
      }
      return send(response, 404, "not found");
    } catch (error) {
      console.error("hostile IdP:", error);
      if (!response.headersSent) send(response, 500, String(error));
    }
  });

  const sockets = new Set();
  http.on("connection", (socket) => { sockets.add(socket); socket.on("close", () => sockets.delete(socket)); });

  return {
    issuer,
    clientId,
    clientSecret,
    requests,
    /** The mode of the next authorize (and so of the code it hands out). */
    setMode(next) {
      if (!hostileModes.includes(next)) throw new Error(`hostile IdP: unknown mode ${next}`);
      mode = next;
    },
    get mode() { return mode; },
    get lastAuthorize() { return lastAuthorize; },
    get lastToken() { return lastToken; },
    reset() { lastAuthorize = null; lastToken = null; mode = "good"; requests.length = 0; },
    stop: () => new Promise((done) => {
      for (const socket of sockets) socket.destroy();
      http.close(() => done());
    }),
  };
}
