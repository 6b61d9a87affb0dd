// Signing in with Cognito.
//   hosted: the user pool's hosted UI, authorization code flow with PKCE (S256); the app client has no
//           secret. Tokens come from /oauth2/token; refresh_token grant before the access token expires.
//   local:  `make dev`'s user pool on moto, which has no hosted UI: InitiateAuth (USER_PASSWORD_AUTH and
//           REFRESH_TOKEN_AUTH) from the browser, with the demo user preset so opening the app signs in.
// Tokens live in sessionStorage (this tab only, gone with it); what the person was looking at (the
// route) is kept across the sign-in redirect.

const SESSION = "collections.session";
const RETURN_TO = "collections.returnTo";
const PKCE = "collections.pkce";
const SIGNED_OUT = "collections.signedOut";
const REFRESH_MARGIN_MS = 60_000; // refresh a minute before expiry

export class SignInRequired extends Error {}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

function load(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key));
  } catch {
    return null;
  }
}

export class Auth {
  constructor(config) {
    this.config = config;
    this.session = load(SESSION);
    this.pending = null;
    this.timer = null;
    this.onChange = () => {};
  }

  get signedIn() {
    return Boolean(this.session);
  }

  get username() {
    return this.session?.username || "";
  }

  get canSignInHere() {
    return this.config.mode === "local";
  }

  // On page load: finish a hosted sign-in redirect, refresh a stale session, or sign the demo user in.
  async start() {
    const params = new URLSearchParams(location.search);
    if (this.config.mode === "hosted" && params.has("code")) await this.finishRedirect(params);
    if (this.session && this.session.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      try {
        await this.refresh();
      } catch {
        this.forget();
      }
    }
    if (!this.session && this.config.mode === "local" && this.config.demoUser && !sessionStorage.getItem(SIGNED_OUT)) {
      await this.signInWithPassword(this.config.demoUser.username, this.config.demoUser.password);
    }
    this.schedule();
    return this.signedIn;
  }

  // A valid access token, refreshed first when it is about to expire.
  async token() {
    if (!this.session) throw new SignInRequired("not signed in");
    if (this.session.expiresAt - Date.now() < REFRESH_MARGIN_MS) await this.refresh();
    return this.session.accessToken;
  }

  // Send the person to sign in, remembering where they were.
  signIn(returnTo = location.hash) {
    sessionStorage.setItem(RETURN_TO, returnTo || "#/");
    if (this.config.mode === "hosted") return this.redirectToHostedUi();
    this.forget();
  }

  takeReturnTo() {
    const value = sessionStorage.getItem(RETURN_TO);
    sessionStorage.removeItem(RETURN_TO);
    return value;
  }

  async signOut() {
    const refreshToken = this.session?.refreshToken;
    this.forget();
    if (this.config.mode === "hosted") {
      // /logout ends only the hosted UI's cookie session: the refresh token stays valid for its whole
      // lifetime unless revoked (Cognito developer guide, "The token revocation endpoint"; public
      // client: client_id in the body). A simple form POST: sent even if the answer is unreadable.
      if (refreshToken) await this.revoke(refreshToken).catch(() => {});
      const url = new URL("/logout", this.config.domain);
      url.searchParams.set("client_id", this.config.clientId);
      url.searchParams.set("logout_uri", `${location.origin}/`);
      location.assign(url);
      return;
    }
    sessionStorage.setItem(SIGNED_OUT, "1");
  }

  forget() {
    this.session = null;
    sessionStorage.removeItem(SESSION);
    clearTimeout(this.timer);
    this.onChange();
  }

  save(tokens, username) {
    const access = claims(tokens.accessToken);
    const identity = tokens.idToken ? claims(tokens.idToken) : {};
    this.session = {
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken || this.session?.refreshToken,
      idToken: tokens.idToken || this.session?.idToken,
      // The token's own expiry when it has one, else what the endpoint said.
      expiresAt: access.exp ? access.exp * 1000 : Date.now() + tokens.expiresIn * 1000,
      username: username || identity.email || this.session?.username || access.username || "",
    };
    sessionStorage.setItem(SESSION, JSON.stringify(this.session));
    sessionStorage.removeItem(SIGNED_OUT);
    this.schedule();
    this.onChange();
  }

  // Refresh before expiry even while the person is only looking.
  schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const wait = Math.max(5_000, this.session.expiresAt - Date.now() - REFRESH_MARGIN_MS);
    this.timer = setTimeout(() => this.refresh().catch(() => this.forget()), wait);
  }

  refresh() {
    // One refresh at a time: parallel requests wait for the same one.
    if (!this.pending) {
      this.pending = this.refreshNow().finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  async refreshNow() {
    const refreshToken = this.session?.refreshToken;
    if (!refreshToken) throw new SignInRequired("no refresh token");
    if (this.config.mode === "hosted") {
      const tokens = await this.tokenEndpoint({ grant_type: "refresh_token", refresh_token: refreshToken });
      this.save(tokens);
    } else {
      const result = await this.initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: refreshToken });
      this.save(result);
    }
  }

  // --- local: InitiateAuth against moto's Cognito ------------------------------------------------
  async signInWithPassword(username, password) {
    const result = await this.initiateAuth("USER_PASSWORD_AUTH", { USERNAME: username, PASSWORD: password });
    this.save(result, username);
  }

  async initiateAuth(flow, parameters) {
    const response = await fetch(this.config.endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({ AuthFlow: flow, ClientId: this.config.clientId, AuthParameters: parameters }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || !body.AuthenticationResult) {
      throw new SignInRequired(body.message || body.Message || `sign-in failed (${response.status})`);
    }
    const r = body.AuthenticationResult;
    return { accessToken: r.AccessToken, idToken: r.IdToken, refreshToken: r.RefreshToken, expiresIn: r.ExpiresIn };
  }

  // --- hosted UI: authorization code + PKCE ----------------------------------------------------
  async redirectToHostedUi() {
    const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
    const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state }));
    const url = new URL("/oauth2/authorize", this.config.domain);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: this.config.clientId,
      redirect_uri: `${location.origin}/`,
      scope: "openid email",
      state,
      code_challenge: b64url(digest),
      code_challenge_method: "S256",
    });
    location.assign(url);
  }

  async finishRedirect(params) {
    const pkce = load(PKCE);
    sessionStorage.removeItem(PKCE);
    // Drop ?code=&state= from the address bar whatever happens: a code is single-use.
    history.replaceState(null, "", `${location.pathname}${location.hash}`);
    if (!pkce || params.get("state") !== pkce.state) throw new SignInRequired("sign-in answer did not match its request");
    const tokens = await this.tokenEndpoint({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: `${location.origin}/`,
      code_verifier: pkce.verifier,
    });
    this.save(tokens);
  }

  revoke(token) {
    return fetch(new URL("/oauth2/revoke", this.config.domain), {
      method: "POST",
      body: new URLSearchParams({ token, client_id: this.config.clientId }),
    });
  }

  async tokenEndpoint(fields) {
    const response = await fetch(new URL("/oauth2/token", this.config.domain), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: this.config.clientId, ...fields }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new SignInRequired(body.error || `token endpoint answered ${response.status}`);
    return {
      accessToken: body.access_token,
      idToken: body.id_token,
      refreshToken: body.refresh_token,
      expiresIn: body.expires_in,
    };
  }
}
