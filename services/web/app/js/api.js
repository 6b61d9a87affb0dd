// The Collections HTTP API (see /openapi.json). Errors are {"error": {"code", "message"}}; this turns
// them into ApiError with a sentence a person can read. A 401 refreshes the token once, then asks
// the person to sign in again (keeping the route); 429 and 503 say when to try again.

import { SignInRequired } from "./auth.js";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export class Api {
  constructor(baseUrl, auth, onSignInRequired) {
    this.baseUrl = baseUrl;
    this.auth = auth;
    this.onSignInRequired = onSignInRequired;
  }

  url(path, query = {}) {
    const url = new URL(this.baseUrl + path, location.href);
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
    }
    return url;
  }

  async request(method, path, { query, body } = {}) {
    for (let attempt = 0; ; attempt++) {
      let token;
      try {
        token = await this.auth.token();
      } catch (error) {
        if (error instanceof SignInRequired) this.onSignInRequired();
        throw error;
      }
      let response;
      try {
        response = await fetch(this.url(path, query), {
          method,
          headers: {
            Authorization: `Bearer ${token}`,
            ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          },
          body: body !== undefined ? JSON.stringify(body) : undefined,
        });
      } catch {
        throw new ApiError(0, "network", "The service cannot be reached. Check your connection and try again.");
      }
      if (response.status === 401 && attempt === 0) {
        try {
          await this.auth.refresh();
          continue;
        } catch {
          // fall through: the session is over
        }
      }
      if (response.status === 401) {
        this.onSignInRequired();
        throw new SignInRequired("Your session has ended; please sign in again.");
      }
      if (response.status === 204) return null;
      const data = await response.json().catch(() => null);
      if (response.ok) return data;
      throw errorFrom(response, data);
    }
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }
}

function errorFrom(response, data) {
  const error = data?.error || {};
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  let message = error.message || `The service answered ${response.status}.`;
  if (response.status === 429) {
    message = `Too many requests right now${retryAfter ? `; try again in ${retryAfter} s` : "; try again shortly"}.`;
    if (error.message) message = `${error.message}${retryAfter ? ` (try again in ${retryAfter} s)` : ""}`;
  } else if (response.status === 503) {
    message = `The service is busy; try again${retryAfter ? ` in ${retryAfter} s` : " in a moment"}.`;
  } else if (response.status >= 500) {
    message = "Something went wrong on our side; try again.";
  }
  return new ApiError(response.status, error.code || String(response.status), message, retryAfter);
}
