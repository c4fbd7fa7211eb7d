// Attacks on signing in, over plain HTTP against a real `caucus serve`: a hostile OpenID
// Provider (providers/hostile-idp.mjs) that hands out bad ID tokens, a real certified one
// (oidc-provider, providers/oidc.mjs), and a real SMTP server for email links
// (providers/mail.mjs). Every attack asserts what the person would notice: no
// `caucus_signin` cookie, an error page or error code, and `GET /api/me` still 401.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startServer } from "./support.js";
import { startHostileIdp } from "./providers/hostile-idp.mjs";
import { CookieJar, followSignIn, startOidcProvider } from "./providers/oidc.mjs";
import { startSmtpSink } from "./providers/mail.mjs";

let server;
let hostile;
let real;
let mail;
const ADMIN = "root@example.org";


const toml = (value) => JSON.stringify(value); // a TOML basic string is a JSON string

before(async () => {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  hostile = await startHostileIdp();
  real = await startOidcProvider({ redirectUris: [`${publicUrl}/auth/oidc/real/callback`] });
  mail = await startSmtpSink();
  const dir = mkdtempSync(join(tmpdir(), "caucus-signin-attacks-"));
  const config = join(dir, "caucus.toml");
  writeFileSync(config, [
    // Every test here asks for links from 127.0.0.1; the per-client limit (30 an hour)
    // is tested on its own in tests/it/accounts.rs.
    "[accounts]", "email_links_per_client_per_hour = 1000", "",
    "[[oidc]]", 'id = "hostile"', 'name = "Hostile"', `issuer = ${toml(hostile.issuer)}`,
    `client_id = ${toml(hostile.clientId)}`, `client_secret = ${toml(hostile.clientSecret)}`, "",
    "[[oidc]]", 'id = "real"', 'name = "Real"', `issuer = ${toml(real.issuer)}`,
    `client_id = ${toml(real.clientId)}`, `client_secret = ${toml(real.clientSecret)}`, "",
  ].join("\n"));
  server = await startServer({
    listen: `127.0.0.1:${port}`,
    args: ["--config", config],
    env: { CAUCUS_PUBLIC_URL: publicUrl, CAUCUS_SMTP_URL: mail.url, CAUCUS_ADMINS: ADMIN },
  });
});

after(async () => {
  await server?.stop();
  await hostile?.stop();
  await real?.stop();
  await mail?.stop();
});

// ---------------------------------------------------------------------------------------
// HTTP helpers

/** The cookies a response sets: [{ name, value, attributes: Map(lowercased name → value) }]. */
function cookiesSet(response) {
  return response.headers.getSetCookie().map((header) => {
    const [pair, ...rest] = header.split(";").map((part) => part.trim());
    const at = pair.indexOf("=");
    const attributes = new Map(rest.map((attribute) => {
      const eq = attribute.indexOf("=");
      return eq < 0 ? [attribute.toLowerCase(), true] : [attribute.slice(0, eq).toLowerCase(), attribute.slice(eq + 1)];
    }));
    return { name: pair.slice(0, at), value: pair.slice(at + 1), attributes, header };
  });
}

/** The `caucus_signin` cookie a response hands out (not one it clears), or undefined. */
function issuedSignin(response) {
  return cookiesSet(response).find((cookie) => cookie.name === "caucus_signin"
    && cookie.value !== "" && cookie.attributes.get("max-age") !== "0"
    && !(cookie.attributes.has("expires") && Date.parse(cookie.attributes.get("expires")) < Date.now()));
}

function flowCookieOf(response) {
  return cookiesSet(response).find((cookie) => cookie.name === "caucus_flow" && cookie.value !== "");
}

async function call(method, path, { cookie, csrf, body, headers = {}, bearer } = {}) {
  const all = { ...headers };
  if (cookie) all.cookie = cookie;
  if (csrf !== undefined) all["x-csrf-token"] = csrf;
  if (bearer) all.authorization = `Bearer ${bearer}`;
  if (body !== undefined) all["content-type"] = "application/json";
  const response = await fetch(new URL(path, server.url), {
    method, headers: all, redirect: "manual", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: response.status, json, text, response };
}

const errorCode = (reply) => reply.json?.error?.code;

/** GET /api/me with `cookie`: the status, and the Me when signed in. */
async function me(cookie) {
  const reply = await call("GET", "/api/me", { cookie });
  return { status: reply.status, me: reply.json };
}

async function assertSignedOut(cookie, what) {
  const { status } = await me(cookie);
  assert.equal(status, 401, `${what}: GET /api/me with the cookies the browser now holds is ${status}, not 401`);
}

/**
 * The callback refused the sign-in as the spec says: 400, a small HTML page that links
 * back to `/`, and no `caucus_signin` cookie.
 */
async function assertRefusedPage(response, html, what, { status = 400 } = {}) {
  assert.equal(response.status, status, `${what}: the callback answered ${response.status}: ${html.slice(0, 300)}`);
  assert.match(response.headers.get("content-type") ?? "", /text\/html/, `${what}: the error is an HTML page`);
  assert.match(html, /href=["'](https?:\/\/[^/"']+)?\/["']/, `${what}: the error page links back to /`);
  assert.ok(html.replace(/<[^>]*>/g, " ").trim().length > 10, `${what}: the error page says what went wrong`);
  assert.equal(issuedSignin(response), undefined, `${what}: a caucus_signin cookie was set`);
}

const origin = () => new URL(server.url).origin;

/**
 * One sign-in through the hostile provider, as a browser does it, with `mode` for the
 * token it hands out. `tamper(callbackUrl)` may change the callback URL;
 * `flowCookie: false` leaves the flow cookie out, or gives another one; `cookie`: a
 * cookie the browser already had. Resolves with the responses and the cookie jar
 * (`cookieHeader`: what the browser would send to /api/me afterwards).
 */
async function hostileSignIn(mode, { returnTo, tamper = (url) => url, flowCookie, cookie, provider = "hostile", callbackProvider } = {}) {
  hostile.reset();
  hostile.setMode(mode);
  const query = returnTo === undefined ? "" : `?${new URLSearchParams({ return_to: returnTo })}`;
  const start = await fetch(`${server.url}/auth/oidc/${provider}${query}`, {
    redirect: "manual", headers: cookie ? { cookie } : {},
  });
  assert.equal(start.status, 303, `GET /auth/oidc/${provider} answered ${start.status}`);
  const authorize = new URL(start.headers.get("location"));
  assert.equal(`${authorize.origin}${authorize.pathname}`, `${hostile.issuer}/authorize`, "the start redirects to the provider");
  const flow = flowCookieOf(start);
  assert.ok(flow, "the start sets a caucus_flow cookie");

  const atProvider = await fetch(authorize, { redirect: "manual" });
  let callbackUrl = new URL(atProvider.headers.get("location"));
  if (callbackProvider) callbackUrl = new URL(callbackUrl.href.replace(`/auth/oidc/${provider}/callback`, `/auth/oidc/${callbackProvider}/callback`));
  callbackUrl = new URL(tamper(callbackUrl.href));
  const sentFlow = flowCookie === undefined ? `caucus_flow=${flow.value}` : flowCookie || undefined;
  const cookieHeader = [sentFlow, cookie].filter(Boolean).join("; ") || undefined;
  const callback = await fetch(callbackUrl, { redirect: "manual", headers: cookieHeader ? { cookie: cookieHeader } : {} });
  const html = await callback.text();
  const issued = issuedSignin(callback);
  // What the browser holds afterwards for this server: the old cookie, or the new one.
  const after = issued ? `caucus_signin=${issued.value}` : cookie;
  return { start, flow, authorize, callbackUrl, callback, html, issued, cookieHeader: after, sentFlow };
}

/** Asks for an email link for `address` and reads the token from the mail. */
async function emailToken(address, { returnTo } = {}) {
  const asked = await call("POST", "/api/auth/email", {
    body: { email: address, ...(returnTo === undefined ? {} : { return_to: returnTo }) },
    headers: { origin: origin() },
  });
  assert.equal(asked.status, 202, `POST /api/auth/email answered ${asked.status}: ${asked.text}`);
  assert.deepEqual(asked.json, { sent: true });
  const message = await mail.waitForMail(address, 15000);
  const links = message.text.match(/https?:\/\/[^\s<>"]*#signin=[^\s<>"]+/g) ?? [];
  assert.equal(links.length, 1, `the mail holds exactly one sign-in link: ${message.text}`);
  assert.ok(links[0].startsWith(`${server.url}/#signin=`), `the link is on the server's public URL: ${links[0]}`);
  return new URLSearchParams(new URL(links[0]).hash.slice(1)).get("signin");
}

async function verifyEmailToken(token, { cookie, headers = { origin: origin() } } = {}) {
  return call("POST", "/api/auth/email/verify", { body: { token }, cookie, headers });
}

/** Signs `address` in by email link. Resolves with `{ cookie, value, me, reply }`. */
async function emailSignIn(address, options = {}) {
  const token = await emailToken(address, options);
  const reply = await verifyEmailToken(token, options);
  assert.equal(reply.status, 200, `POST /api/auth/email/verify answered ${reply.status}: ${reply.text}`);
  const issued = issuedSignin(reply.response);
  assert.ok(issued, "verifying the link sets caucus_signin");
  const cookie = `caucus_signin=${issued.value}`;
  const now = await me(cookie);
  assert.equal(now.status, 200);
  return { cookie, value: issued.value, me: now.me, reply, issued };
}

let addresses = 0;
/** A fresh address for each use, so that no test meets another's rate limit. */
const fresh = (label) => `${label}-${++addresses}-${Date.now() % 100000}@example.org`;

// ---------------------------------------------------------------------------------------
// The OpenID Connect callback

test("the hostile provider's valid token signs in (the control for the attacks below)", async () => {
  const run = await hostileSignIn("good", { returnTo: "/#session=s-abc" });
  assert.equal(run.callback.status, 303, `the callback answered ${run.callback.status}: ${run.html.slice(0, 300)}`);
  assert.equal(new URL(run.callback.headers.get("location"), server.url).href, `${server.url}/#session=s-abc`);
  assert.ok(run.issued, "caucus_signin is set");
  const now = await me(run.cookieHeader);
  assert.equal(now.status, 200);
  assert.equal(now.me.account.email, "mallory@example.org");
});

test("a callback whose state is not the flow's is refused, and the code is never redeemed", async () => {
  const run = await hostileSignIn("good", {
    tamper: (url) => { const u = new URL(url); u.searchParams.set("state", "forged-state"); return u.href; },
  });
  await assertRefusedPage(run.callback, run.html, "wrong state");
  assert.equal(hostile.lastToken, null, "the server redeemed the code of a callback with a wrong state");
  await assertSignedOut(run.cookieHeader, "wrong state");
});

test("a callback without state is refused", async () => {
  const run = await hostileSignIn("good", {
    tamper: (url) => { const u = new URL(url); u.searchParams.delete("state"); return u.href; },
  });
  await assertRefusedPage(run.callback, run.html, "no state");
  assert.equal(hostile.lastToken, null);
});

test("a callback without the caucus_flow cookie is refused (state alone is not enough)", async () => {
  const run = await hostileSignIn("good", { flowCookie: false });
  await assertRefusedPage(run.callback, run.html, "no flow cookie");
  assert.equal(hostile.lastToken, null, "the server redeemed a code without the flow cookie");
  await assertSignedOut(run.cookieHeader, "no flow cookie");
});

test("login CSRF: the attacker's callback (code and state) in the victim's browser, with the victim's own flow, is refused", async () => {
  // The victim started signing in (their browser holds their flow cookie) ...
  hostile.setMode("good");
  const victimStart = await fetch(`${server.url}/auth/oidc/hostile`, { redirect: "manual" });
  const victimFlow = flowCookieOf(victimStart);
  assert.ok(victimFlow);
  // ... and the attacker makes them open a callback from the attacker's own flow.
  const run = await hostileSignIn("good", { flowCookie: `caucus_flow=${victimFlow.value}` });
  await assertRefusedPage(run.callback, run.html, "another flow's state");
  await assertSignedOut(run.cookieHeader, "another flow's state");
});

test("a flow started for one provider cannot be finished at another provider's callback", async () => {
  const run = await hostileSignIn("good", { callbackProvider: "real" });
  await assertRefusedPage(run.callback, run.html, "provider mix-up");
  await assertSignedOut(run.cookieHeader, "provider mix-up");
});

test("a callback URL used a second time is refused", async () => {
  const run = await hostileSignIn("good");
  assert.equal(run.callback.status, 303, "the first use signs in");
  const again = await fetch(run.callbackUrl, { redirect: "manual", headers: { cookie: run.sentFlow } });
  const html = await again.text();
  await assertRefusedPage(again, html, "the same callback again");
});

test("the provider's error (access_denied) shows an error page", async () => {
  const run = await hostileSignIn("access_denied");
  await assertRefusedPage(run.callback, run.html, "access_denied");
  await assertSignedOut(run.cookieHeader, "access_denied");
});

for (const [mode, what] of [
  ["wrong_nonce", "an ID token with another nonce"],
  ["missing_nonce", "an ID token with no nonce"],
  ["wrong_audience", "an ID token for another audience"],
  ["wrong_issuer", "an ID token from another issuer"],
  ["expired", "an expired ID token"],
  ["alg_none", "an ID token with alg none and no signature"],
  ["bad_signature", "an ID token signed by a key not in the JWKS (under the JWKS key's kid)"],
  ["unknown_key", "an ID token signed by a key not in the JWKS (unknown kid)"],
  ["hs256_with_public_key", "an ID token HMAC-signed with the provider's public key (alg confusion)"],
  ["hs256_with_client_secret", "an ID token HS256-signed with the client secret (an algorithm the client never chose)"],
  ["token_error", "a token endpoint that refuses the code"],
]) {
  test(`${what} is refused`, async () => {
    const run = await hostileSignIn(mode);
    assert.ok(hostile.lastToken, "the server asked the token endpoint");
    await assertRefusedPage(run.callback, run.html, mode);
    await assertSignedOut(run.cookieHeader, mode);
  });
}

test("PKCE: the authorize request carries an S256 challenge and the token request the matching verifier", async () => {
  const run = await hostileSignIn("good");
  assert.equal(run.callback.status, 303);
  const asked = hostile.lastAuthorize;
  assert.equal(asked.code_challenge_method, "S256");
  assert.match(asked.code_challenge ?? "", /^[A-Za-z0-9_-]{43}$/, "a base64url SHA-256 challenge");
  assert.equal(asked.response_type, "code");
  assert.equal(asked.client_id, hostile.clientId);
  assert.equal(asked.redirect_uri, `${server.url}/auth/oidc/hostile/callback`);
  assert.deepEqual(new Set((asked.scope ?? "").split(" ")), new Set(["openid", "email", "profile"]));
  assert.ok((asked.nonce ?? "").length >= 16, "a nonce of some length");
  assert.ok((asked.state ?? "").length >= 16, "a state of some length");
  const redeemed = hostile.lastToken;
  assert.ok(redeemed.code_verifier, "the token request has a code_verifier");
  assert.ok(redeemed.verifierMatches, "BASE64URL(SHA-256(code_verifier)) is the challenge sent at authorize");
  assert.equal(redeemed.clientAuth, "basic");
  assert.ok(redeemed.clientAuthOk);
  assert.equal(redeemed.redirect_uri, asked.redirect_uri);

  // Each flow has its own state, nonce and challenge.
  const second = await hostileSignIn("good");
  assert.equal(second.callback.status, 303);
  assert.notEqual(hostile.lastAuthorize.state, asked.state);
  assert.notEqual(hostile.lastAuthorize.nonce, asked.nonce);
  assert.notEqual(hostile.lastAuthorize.code_challenge, asked.code_challenge);
});

/** Signs in at the real provider from the server's start URL, stopping at the callback. */
async function realToCallback(login, { returnTo, jar = new CookieJar() } = {}) {
  const query = returnTo === undefined ? "" : `?${new URLSearchParams({ return_to: returnTo })}`;
  const callbackPrefix = `${server.url}/auth/oidc/real/callback`;
  const reached = await followSignIn(`${server.url}/auth/oidc/real${query}`, login, { jar, stopAt: callbackPrefix });
  assert.ok(reached.url.startsWith(callbackPrefix), `the provider sent the browser back to the callback: ${reached.url} ${reached.html?.slice(0, 300) ?? ""}`);
  return { callbackUrl: reached.url, jar };
}

test("PKCE at the real provider: its code cannot be redeemed without the verifier, and the server redeems it with one", async () => {
  const { callbackUrl, jar } = await realToCallback("grace");
  const code = new URL(callbackUrl).searchParams.get("code");
  assert.ok(code);
  const discovery = await (await fetch(`${real.issuer}/.well-known/openid-configuration`)).json();
  const redeem = (extra) => fetch(discovery.token_endpoint, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(real.clientId)}:${encodeURIComponent(real.clientSecret)}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: `${server.url}/auth/oidc/real/callback`, ...extra }),
  });
  const without = await redeem({});
  assert.equal(without.status, 400, "the provider redeemed a code without a verifier");
  assert.equal((await without.json()).error, "invalid_grant");
  const wrong = await redeem({ code_verifier: "a".repeat(43) });
  assert.equal(wrong.status, 400, "the provider redeemed a code with a wrong verifier");

  // The browser goes on to the callback: the server holds the verifier.
  const callback = await fetch(callbackUrl, { redirect: "manual", headers: { cookie: jar.header(callbackUrl) } });
  assert.equal(callback.status, 303, `the callback answered ${callback.status}: ${(await callback.text()).slice(0, 300)}`);
  assert.ok(issuedSignin(callback));
});

test("happy path: signing in at the real provider's own pages ends at return_to, signed in", async () => {
  const { callbackUrl, jar } = await realToCallback("ada", { returnTo: "/#session=s-abc" });
  const callback = await fetch(callbackUrl, { redirect: "manual", headers: { cookie: jar.header(callbackUrl) } });
  const html = await callback.text();
  assert.equal(callback.status, 303, `the callback answered ${callback.status}: ${html.slice(0, 300)}`);
  assert.equal(new URL(callback.headers.get("location"), server.url).href, `${server.url}/#session=s-abc`);
  const issued = issuedSignin(callback);
  assert.ok(issued, "caucus_signin is set");
  const now = await me(`caucus_signin=${issued.value}`);
  assert.equal(now.status, 200);
  assert.equal(now.me.account.email, "ada@example.org");
  assert.equal(now.me.account.name, "Ada");
  assert.match(now.me.account.id, /^a-/);
  assert.deepEqual(now.me.roles, []);
  assert.equal(typeof now.me.csrf, "string");
  assert.ok(now.me.csrf.length >= 16);
  const days = (now.me.expires_at - Date.now() / 1000) / 86400;
  assert.ok(days > 29.9 && days <= 30.01, `the sign-in lasts 30 days, not ${days}`);

  // The same person again: the same account.
  const again = await realToCallback("ada");
  const second = await fetch(again.callbackUrl, { redirect: "manual", headers: { cookie: again.jar.header(again.callbackUrl) } });
  const secondMe = await me(`caucus_signin=${issuedSignin(second).value}`);
  assert.equal(secondMe.me.account.id, now.me.account.id);
});

// ---------------------------------------------------------------------------------------
// Open redirects through return_to

const outside = ["//evil.example", "https://evil.example", "/\\evil.example", "/\\/evil.example", "\\\\evil.example", "http:/evil.example"];
// Characters a browser strips from a URL before it parses it: with them, a value that
// starts with one `/` can still turn into `//evil.example` in the browser.
const sneaky = ["/\t/evil.example", "/\n/evil.example", " //evil.example", "javascript:alert(1)"];

test("return_to cannot send the browser off the server after an OpenID sign-in", async () => {
  for (const returnTo of [...outside, ...sneaky]) {
    const run = await hostileSignIn("good", { returnTo });
    assert.equal(run.callback.status, 303, `return_to=${JSON.stringify(returnTo)}: ${run.callback.status}`);
    const location = run.callback.headers.get("location");
    const landed = new URL(location, server.url);
    assert.equal(landed.origin, origin(), `return_to=${JSON.stringify(returnTo)} sent the browser to ${location}`);
    if (outside.slice(0, 3).includes(returnTo)) {
      assert.equal(landed.href, `${server.url}/`, `return_to=${JSON.stringify(returnTo)} ends at /, not ${location}`);
    }
  }
});

test("return_to cannot send the browser off the server after an email sign-in", async () => {
  for (const returnTo of [...outside, ...sneaky]) {
    const signedIn = await emailSignIn(fresh("redirect"), { returnTo });
    const back = signedIn.reply.json.return_to;
    assert.equal(new URL(back, server.url).origin, origin(), `return_to=${JSON.stringify(returnTo)} came back as ${back}`);
    if (outside.slice(0, 3).includes(returnTo)) assert.equal(back, "/", `return_to=${JSON.stringify(returnTo)} came back as ${back}`);
  }
  const kept = await emailSignIn(fresh("redirect"), { returnTo: "/#invite=abc" });
  assert.equal(kept.reply.json.return_to, "/#invite=abc", "a path on the server is kept");
});

// ---------------------------------------------------------------------------------------
// Email links

test("an email link works once: the second use is 400 invalid_link and sets no cookie", async () => {
  const address = fresh("replay");
  const token = await emailToken(address);
  const first = await verifyEmailToken(token);
  assert.equal(first.status, 200);
  assert.equal(first.json.account.email, address);
  assert.ok(issuedSignin(first.response));
  const second = await verifyEmailToken(token);
  assert.equal(second.status, 400, `the replayed link answered ${second.status}: ${second.text}`);
  assert.equal(errorCode(second), "invalid_link");
  assert.equal(issuedSignin(second.response), undefined);
});

test("a made-up or truncated email token is 400 invalid_link", async () => {
  const token = await emailToken(fresh("forged"));
  for (const bad of ["", "x", token.slice(0, -1), `${token}x`, token.toUpperCase() === token ? token.toLowerCase() : token.toUpperCase()]) {
    const reply = await verifyEmailToken(bad);
    assert.ok([400, 422].includes(reply.status), `token ${JSON.stringify(bad)} answered ${reply.status}`);
    assert.equal(issuedSignin(reply.response), undefined);
  }
  assert.equal((await verifyEmailToken(token)).status, 200, "the real token still works after the guesses");
});

test("an expired email link is 400 invalid_link", async () => {
  // CAUCUS_EMAIL_LINK_SECS: how long an emailed link works (default 15 minutes).
  const short = await startServer({ env: { CAUCUS_SMTP_URL: mail.url, CAUCUS_EMAIL_LINK_SECS: "1" } });
  try {
    const address = fresh("expired");
    const asked = await fetch(`${short.url}/api/auth/email`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: address }),
    });
    assert.equal(asked.status, 202);
    const message = await mail.waitForMail(address, 15000);
    const token = new URLSearchParams(message.text.match(/#(signin=[^\s<>"]+)/)[1]).get("signin");
    await new Promise((wake) => setTimeout(wake, 2500));
    const reply = await fetch(`${short.url}/api/auth/email/verify`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }),
    });
    assert.equal(reply.status, 400);
    assert.equal((await reply.json()).error.code, "invalid_link");
    assert.equal(issuedSignin(reply), undefined);
  } finally {
    await short.stop();
  }
});

test("asking for too many links for one address is 429 rate_limited, and sends no more mail", async () => {
  const address = fresh("flood");
  const replies = [];
  for (let ask = 0; ask < 8; ask++) {
    replies.push(await call("POST", "/api/auth/email", { body: { email: address }, headers: { origin: origin() } }));
  }
  const statuses = replies.map((reply) => reply.status);
  assert.equal(statuses[0], 202);
  assert.ok(statuses.includes(429), `eight links in a row were all accepted: ${statuses}`);
  const limited = replies.find((reply) => reply.status === 429);
  assert.equal(errorCode(limited), "rate_limited");
  assert.ok(statuses.slice(statuses.indexOf(429)).every((status) => status === 429), `once limited, always limited: ${statuses}`);
  await new Promise((wake) => setTimeout(wake, 1000));
  const mails = mail.messages().filter((m) => m.to.includes(address)).length;
  assert.equal(mails, statuses.filter((status) => status === 202).length, "one mail for each accepted request and none for the refused");
});

test("an address with mail headers or extra recipients in it is 422 invalid_value, and nothing is sent", async () => {
  const victim = fresh("bcc-victim");
  for (const email of [
    `a@example.org\r\nBcc: ${victim}`, `a@example.org\nBcc: ${victim}`, `a@example.org, ${victim}`,
    `a@example.org>\r\nRCPT TO:<${victim}`, "not an address", "", "@example.org",
  ]) {
    const reply = await call("POST", "/api/auth/email", { body: { email }, headers: { origin: origin() } });
    assert.equal(reply.status, 422, `${JSON.stringify(email)} answered ${reply.status}: ${reply.text}`);
    assert.equal(errorCode(reply), "invalid_value");
  }
  await new Promise((wake) => setTimeout(wake, 1000));
  assert.ok(!mail.messages().some((m) => m.to.some((to) => to.toLowerCase() === victim)), "mail went to an injected recipient");
});

test("without SMTP the server says so: providers lists email false, and asking for a link is 503 email_unavailable", async () => {
  const bare = await startServer();
  try {
    const providers = await (await fetch(`${bare.url}/api/auth/providers`)).json();
    assert.equal(providers.email, false);
    const asked = await fetch(`${bare.url}/api/auth/email`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "nobody@example.org" }),
    });
    assert.equal(asked.status, 503);
    const body = await asked.json();
    assert.equal(body.error.code, "email_unavailable");
    assert.match(body.error.message, /signin-link/);
  } finally {
    await bare.stop();
  }
});

test("the providers list names both providers and email", async () => {
  const reply = await call("GET", "/api/auth/providers");
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.json.providers.map((p) => p.id).sort(), ["hostile", "real"]);
  assert.equal(reply.json.email, true);
  assert.ok(!reply.text.includes(hostile.clientSecret) && !reply.text.includes(real.clientSecret), "no client secret in the list");
});

// ---------------------------------------------------------------------------------------
// Session fixation and cookie flags

test("session fixation: a caucus_signin value the browser already had is never the one issued, and never signs in", async () => {
  const planted = "caucus_signin=fixated-by-the-attacker-0123456789abcdef";
  const byEmail = await emailSignIn(fresh("fixation"), { cookie: planted });
  assert.notEqual(byEmail.cookie, planted);
  await assertSignedOut(planted, "the planted value after an email sign-in");

  const byOidc = await hostileSignIn("good", { cookie: planted });
  assert.equal(byOidc.callback.status, 303);
  assert.ok(byOidc.issued, "the OpenID sign-in issues a cookie");
  assert.notEqual(`caucus_signin=${byOidc.issued.value}`, planted);
  await assertSignedOut(planted, "the planted value after an OpenID sign-in");

  // The attacker's own real sign-in, planted in the victim's browser: the victim's
  // sign-in gets a new value, and the attacker's value never becomes the victim's.
  const attacker = await emailSignIn(fresh("attacker"));
  const victimAddress = fresh("victim");
  const victim = await emailSignIn(victimAddress, { cookie: attacker.cookie });
  assert.notEqual(victim.value, attacker.value);
  assert.equal(victim.me.account.email, victimAddress);
  const attackerNow = await me(attacker.cookie);
  assert.notEqual(attackerNow.me?.account?.email, victimAddress, "the attacker's cookie now opens the victim's account");

  const victimByOidc = await hostileSignIn("good", { cookie: attacker.cookie });
  assert.notEqual(victimByOidc.issued.value, attacker.value);
});

function assertCookieFlags(cookie, { path, maxAge }, what) {
  assert.ok(cookie, `${what}: the cookie is set`);
  assert.equal(cookie.attributes.get("httponly"), true, `${what}: HttpOnly (${cookie.header})`);
  assert.equal(String(cookie.attributes.get("samesite")).toLowerCase(), "lax", `${what}: SameSite=Lax (${cookie.header})`);
  assert.equal(cookie.attributes.get("path"), path, `${what}: Path=${path} (${cookie.header})`);
  assert.equal(cookie.attributes.has("secure"), false, `${what}: no Secure on http (${cookie.header})`);
  assert.equal(cookie.attributes.has("domain"), false, `${what}: no Domain (${cookie.header})`);
  if (maxAge !== undefined) assert.equal(Number(cookie.attributes.get("max-age")), maxAge, `${what}: Max-Age=${maxAge} (${cookie.header})`);
  assert.ok(cookie.value.length >= 22, `${what}: a random value of some length (${cookie.value.length})`);
}

test("cookie flags: caucus_signin and caucus_flow are HttpOnly, SameSite=Lax, with their paths, and not Secure on http", async () => {
  const signedIn = await emailSignIn(fresh("flags"));
  assertCookieFlags(signedIn.issued, { path: "/", maxAge: 30 * 86400 }, "caucus_signin after an email link");
  const run = await hostileSignIn("good");
  assertCookieFlags(run.issued, { path: "/", maxAge: 30 * 86400 }, "caucus_signin after OpenID");
  assertCookieFlags(run.flow, { path: "/auth", maxAge: 600 }, "caucus_flow");
});

// ---------------------------------------------------------------------------------------
// CSRF

/**
 * `request(headers)` makes one state-changing request as the signed-in `account`.
 * Without X-CSRF-Token, with a wrong one and with another sign-in's own token it must be
 * 403 `csrf`.
 */
async function assertCsrfRefused(what, request, other) {
  for (const [label, csrf] of [["no X-CSRF-Token", undefined], ["a wrong X-CSRF-Token", "wrong"], ["another sign-in's token", other.me.csrf]]) {
    const reply = await request(csrf);
    assert.equal(reply.status, 403, `${what} with ${label} answered ${reply.status}: ${reply.text}`);
    assert.equal(errorCode(reply), "csrf", `${what} with ${label}: ${reply.text}`);
  }
}

let otherSignIn;
async function other() {
  otherSignIn ??= await emailSignIn(fresh("other"));
  return otherSignIn;
}

test("CSRF: POST /api/me (rename)", async () => {
  const user = await emailSignIn(fresh("rename"));
  const before = user.me.account.name;
  await assertCsrfRefused("POST /api/me", (csrf) => call("POST", "/api/me", { cookie: user.cookie, csrf, body: { name: "Renamed by CSRF" } }), await other());
  assert.equal((await me(user.cookie)).me.account.name, before, "the name changed");
  const done = await call("POST", "/api/me", { cookie: user.cookie, csrf: user.me.csrf, body: { name: "Renamed" } });
  assert.equal(done.status, 200, done.text);
  assert.equal((await me(user.cookie)).me.account.name, "Renamed");
});

test("CSRF: DELETE /api/me", async () => {
  const user = await emailSignIn(fresh("delete"));
  await assertCsrfRefused("DELETE /api/me", (csrf) => call("DELETE", "/api/me", { cookie: user.cookie, csrf }), await other());
  assert.equal((await me(user.cookie)).status, 200, "the account is gone");
  const done = await call("DELETE", "/api/me", { cookie: user.cookie, csrf: user.me.csrf });
  assert.equal(done.status, 204, done.text);
  assert.equal((await me(user.cookie)).status, 401);
});

test("CSRF: POST /api/auth/signout", async () => {
  const user = await emailSignIn(fresh("signout"));
  await assertCsrfRefused("POST /api/auth/signout", (csrf) => call("POST", "/api/auth/signout", { cookie: user.cookie, csrf }), await other());
  assert.equal((await me(user.cookie)).status, 200, "signed out");
  const done = await call("POST", "/api/auth/signout", { cookie: user.cookie, csrf: user.me.csrf });
  assert.equal(done.status, 204, done.text);
  const cleared = cookiesSet(done.response).find((cookie) => cookie.name === "caucus_signin");
  assert.ok(cleared && (cleared.value === "" || cleared.attributes.get("max-age") === "0"), "sign out clears the cookie");
  assert.equal((await me(user.cookie)).status, 401);
});

test("CSRF: POST /api/auth/signout-everywhere", async () => {
  const address = fresh("everywhere");
  const here = await emailSignIn(address);
  const there = await emailSignIn(address);
  await assertCsrfRefused("POST /api/auth/signout-everywhere", (csrf) => call("POST", "/api/auth/signout-everywhere", { cookie: here.cookie, csrf }), await other());
  assert.equal((await me(here.cookie)).status, 200);
  assert.equal((await me(there.cookie)).status, 200);
  const done = await call("POST", "/api/auth/signout-everywhere", { cookie: here.cookie, csrf: here.me.csrf });
  assert.equal(done.status, 204, done.text);
  assert.equal((await me(here.cookie)).status, 401);
  assert.equal((await me(there.cookie)).status, 401);
});

/** A session made with a bearer facilitator token, and a guest's member token in it. */
async function sessionWithGuest(title) {
  const created = await call("POST", "/api/sessions", { bearer: server.token("Fay"), body: { title, caucuses: { a: "North", b: "South" } } });
  assert.ok([200, 201].includes(created.status), created.text);
  const joined = await call("POST", "/api/join", { body: { invite_code: created.json.invite_code, name: "Guest" } });
  assert.equal(joined.status, 200, joined.text);
  return { session: created.json.session, inviteCode: created.json.invite_code, guestToken: joined.json.token };
}

async function mySessions(cookie) {
  const reply = await call("GET", "/api/me/sessions", { cookie });
  assert.equal(reply.status, 200, reply.text);
  return reply.json.sessions.map((s) => s.session);
}

test("CSRF: POST /api/me/seats", async () => {
  const { session, guestToken } = await sessionWithGuest("Seats");
  const user = await emailSignIn(fresh("seats"));
  await assertCsrfRefused("POST /api/me/seats", (csrf) => call("POST", "/api/me/seats", { cookie: user.cookie, csrf, body: { token: guestToken } }), await other());
  assert.ok(!(await mySessions(user.cookie)).includes(session), "the seat moved");
  const done = await call("POST", "/api/me/seats", { cookie: user.cookie, csrf: user.me.csrf, body: { token: guestToken } });
  assert.equal(done.status, 200, done.text);
  assert.ok((await mySessions(user.cookie)).includes(session));
});

test("CSRF: POST /api/join with the cookie", async () => {
  const { session, inviteCode } = await sessionWithGuest("Join");
  const user = await emailSignIn(fresh("join"));
  await assertCsrfRefused("POST /api/join", (csrf) => call("POST", "/api/join", { cookie: user.cookie, csrf, body: { invite_code: inviteCode, name: "Joiner" } }), await other());
  assert.ok(!(await mySessions(user.cookie)).includes(session), "the account got a seat");
  const done = await call("POST", "/api/join", { cookie: user.cookie, csrf: user.me.csrf, body: { invite_code: inviteCode, name: "Joiner" } });
  assert.equal(done.status, 200, done.text);
  assert.equal(done.json.token, undefined, "a signed-in join has no token");
  assert.ok((await mySessions(user.cookie)).includes(session));
});

async function admin() {
  const signedIn = await emailSignIn(ADMIN);
  assert.ok(signedIn.me.roles.includes("admin"), `CAUCUS_ADMINS makes ${ADMIN} an admin: ${JSON.stringify(signedIn.me.roles)}`);
  return signedIn;
}

async function facilitators(cookie) {
  const reply = await call("GET", "/api/admin/facilitators", { cookie });
  assert.equal(reply.status, 200, reply.text);
  return reply.json.facilitators.map((f) => f.email);
}

test("CSRF: POST and DELETE /api/admin/facilitators", async () => {
  const root = await admin();
  const chosen = fresh("chosen");
  await assertCsrfRefused("POST /api/admin/facilitators", (csrf) => call("POST", "/api/admin/facilitators", { cookie: root.cookie, csrf, body: { email: chosen } }), await other());
  assert.ok(!(await facilitators(root.cookie)).includes(chosen), "granted without a CSRF token");
  const granted = await call("POST", "/api/admin/facilitators", { cookie: root.cookie, csrf: root.me.csrf, body: { email: chosen } });
  assert.equal(granted.status, 200, granted.text);
  assert.ok((await facilitators(root.cookie)).includes(chosen));

  const path = `/api/admin/facilitators/${encodeURIComponent(chosen)}`;
  await assertCsrfRefused(`DELETE ${path}`, (csrf) => call("DELETE", path, { cookie: root.cookie, csrf }), await other());
  assert.ok((await facilitators(root.cookie)).includes(chosen), "revoked without a CSRF token");
  const revoked = await call("DELETE", path, { cookie: root.cookie, csrf: root.me.csrf });
  assert.equal(revoked.status, 200, revoked.text);
  assert.ok(!(await facilitators(root.cookie)).includes(chosen));
});

test("the admin endpoints are 403 forbidden for a member, CSRF token or not", async () => {
  const member = await emailSignIn(fresh("member"));
  assert.equal((await call("GET", "/api/admin/facilitators", { cookie: member.cookie })).status, 403);
  const reply = await call("POST", "/api/admin/facilitators", { cookie: member.cookie, csrf: member.me.csrf, body: { email: member.me.account.email } });
  assert.equal(reply.status, 403);
  assert.equal(errorCode(reply), "forbidden");
  assert.deepEqual((await me(member.cookie)).me.roles, []);
});

test("CSRF: POST /api/sessions, POST /api/sessions/{id}/invite and /facilitators with the cookie", async () => {
  const root = await admin();
  const listed = async () => (await call("GET", "/api/sessions", { cookie: root.cookie })).json.sessions.map((s) => s.session);
  const before = await listed();
  await assertCsrfRefused("POST /api/sessions", (csrf) => call("POST", "/api/sessions", { cookie: root.cookie, csrf, body: { title: "CSRF", caucuses: { a: "A", b: "B" } } }), await other());
  assert.deepEqual(await listed(), before, "a session was made without a CSRF token");
  const created = await call("POST", "/api/sessions", { cookie: root.cookie, csrf: root.me.csrf, body: { title: "Made", caucuses: { a: "A", b: "B" } } });
  assert.ok([200, 201].includes(created.status), created.text);
  const { session } = created.json;

  const invitePath = `/api/sessions/${session}/invite`;
  const invite = async () => (await call("GET", invitePath, { cookie: root.cookie })).json.invite_code;
  const code = await invite();
  await assertCsrfRefused(`POST ${invitePath}`, (csrf) => call("POST", invitePath, { cookie: root.cookie, csrf }), await other());
  assert.equal(await invite(), code, "the invite changed without a CSRF token");

  const cochair = fresh("cochair");
  const facilitatorsPath = `/api/sessions/${session}/facilitators`;
  await assertCsrfRefused(`POST ${facilitatorsPath}`, (csrf) => call("POST", facilitatorsPath, { cookie: root.cookie, csrf, body: { email: cochair } }), await other());
  const them = await emailSignIn(cochair);
  assert.ok(!(await mySessions(them.cookie)).includes(session), "a co-facilitator was added without a CSRF token");
  const added = await call("POST", facilitatorsPath, { cookie: root.cookie, csrf: root.me.csrf, body: { email: cochair } });
  assert.equal(added.status, 200, added.text);
  assert.ok((await mySessions(them.cookie)).includes(session));
});

test("CSRF before sign-in: asking for or verifying a link from a foreign Origin is 403 csrf, and changes nothing", async () => {
  const address = fresh("foreign");
  for (const foreign of ["http://evil.example", "null", `http://127.0.0.1:${Number(new URL(server.url).port) + 1}`]) {
    const asked = await call("POST", "/api/auth/email", { body: { email: address }, headers: { origin: foreign } });
    assert.equal(asked.status, 403, `Origin ${foreign}: ${asked.status} ${asked.text}`);
    assert.equal(errorCode(asked), "csrf");
  }
  await new Promise((wake) => setTimeout(wake, 1000));
  assert.ok(!mail.messages().some((m) => m.to.includes(address)), "a link was mailed for a foreign Origin");

  const token = await emailToken(address);
  const foreignVerify = await verifyEmailToken(token, { headers: { origin: "http://evil.example" } });
  assert.equal(foreignVerify.status, 403, foreignVerify.text);
  assert.equal(errorCode(foreignVerify), "csrf");
  assert.equal(issuedSignin(foreignVerify.response), undefined);
  const ours = await verifyEmailToken(token);
  assert.equal(ours.status, 200, "the link still works from the server's own origin");
});

test("a bearer facilitator token still creates a session with no CSRF header", async () => {
  const created = await call("POST", "/api/sessions", { bearer: server.token("Bea"), body: { title: "Bearer", caucuses: { a: "A", b: "B" } } });
  assert.ok([200, 201].includes(created.status), created.text);
});
