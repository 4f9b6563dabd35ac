// The public API as the storefront uses it: JSON in and out, the signed-in
// user's token on every call, and problem details (RFC 9457) turned into
// errors that carry the API's own message. The order dashboard
// (web/dashboard) uses it too: one client and one session for the site.
//
// A session is a short-lived access token (5 minutes) and a single-use
// refresh token, kept together in sessionStorage (never localStorage) as
// {access_token, refresh_token, renew_at}. Shortly before the access token
// expires, or when a request answers 401, the session is renewed with the
// refresh token (POST /auth/token {refresh_token}, which answers a new pair)
// and the request sent once more. Requests made meanwhile share that one
// renewal: a refresh token works once, so a second renewal would fail. A
// refused renewal (expired, or the password changed) ends the session.

const SESSION_KEY = "mart.token";

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem && problem.errors) || [];
    const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
    super(fields.length ? `${detail}: ${fields.map((f) => `${f.field} ${f.message}`).join("; ")}` : detail);
    this.status = status;
  }
}

// What this tab keeps; a bare access token is what pages stored before
// refresh tokens (it works until it expires).
function stored() {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return {};
  try {
    const kept = JSON.parse(raw);
    if (kept && typeof kept.access_token === "string") return kept;
  } catch {
    // not JSON: a bare token
  }
  return { access_token: raw };
}

const kept = stored();

export const session = {
  token: kept.access_token || null,
  refreshToken: kept.refresh_token || null,
  // When to renew (ms, this browser's clock): 30 s before the access token
  // expires, or halfway through a shorter life.
  renewAt: kept.renew_at || null,
  user: null,
  // Takes POST /auth/token's answer.
  set(answer) {
    const life = Number(answer.expires_in) * 1000;
    this.token = answer.access_token;
    this.refreshToken = answer.refresh_token || null;
    this.renewAt = life > 0 ? Date.now() + Math.max(life - 30_000, life / 2) : null;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({
      access_token: this.token,
      refresh_token: this.refreshToken,
      renew_at: this.renewAt,
    }));
  },
  clear() {
    this.token = null;
    this.refreshToken = null;
    this.renewAt = null;
    this.user = null;
    sessionStorage.removeItem(SESSION_KEY);
  },
  get renewDue() {
    return this.refreshToken !== null && this.renewAt !== null && Date.now() >= this.renewAt;
  },
  get admin() {
    return this.user !== null && this.user.role === "admin";
  },
};

function send(path, { method = "GET", body, headers = {} }, token) {
  const sent = { accept: "application/json", ...headers };
  if (token) sent.authorization = `Bearer ${token}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  return fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function read(response) {
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
    if (response.ok) throw new ApiError(502, { detail: "the server answered with something other than JSON" });
  }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

// POST /auth/token, without the session's token and never renewing.
async function authenticate(body) {
  return read(await send("/auth/token", { method: "POST", body }, null));
}

// The one renewal in flight, shared by every request that needs it.
let renewing = null;

// Resolves true once the session has a new access token, false if the
// refresh token was refused (the session is then over); throws when the
// API could not answer (the tokens are kept: the access token may still do).
function renew() {
  if (!renewing) renewing = exchange().finally(() => { renewing = null; });
  return renewing;
}

async function exchange() {
  const refreshToken = session.refreshToken;
  if (!refreshToken) return false;
  let answer;
  try {
    answer = await authenticate({ refresh_token: refreshToken });
  } catch (error) {
    if (error.status !== 401 && error.status !== 422) throw error;
    // Unless the user signed out or in again meanwhile, this session ends.
    if (session.refreshToken === refreshToken) session.clear();
    return false;
  }
  if (session.refreshToken !== refreshToken) return session.token !== null;
  session.set(answer);
  return true;
}

export async function api(path, options = {}) {
  let renewed = false;
  if (session.renewDue) {
    renewed = true;
    try {
      await renew();
    } catch {
      // The API could not renew now; the access token may still do.
    }
  }
  const token = session.token;
  const response = await send(path, options, token);
  if (response.status !== 401 || !token) return read(response);
  // Expired or revoked: renew once (unless another request already did
  // since this one was sent) and send it once more.
  if (session.token === token && (renewed || !(await renew()))) return read(response);
  if (!session.token) return read(response);
  return read(await send(path, options, session.token));
}

export async function signIn(email, password) {
  session.set(await authenticate({ email, password }));
  session.user = await api("/users/me");
}

// The signed-in user again after a reload (renewing the session if its
// access token expired); signed out if it cannot be renewed.
export async function resume() {
  if (!session.token) return;
  try {
    session.user = await api("/users/me");
  } catch (error) {
    if (error.status === 401) session.clear();
    else throw error;
  }
}
