// The public API as the storefront uses it: JSON in and out, the signed-in
// user's token on every call, and problem details (RFC 9457) turned into
// errors that carry the API's own message. The order dashboard
// (web/dashboard) uses it too: one client and one session for the site.

const TOKEN_KEY = "mart.token";

export class ApiError extends Error {
  constructor(status, problem) {
    const fields = (problem && problem.errors) || [];
    const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
    super(fields.length ? `${detail}: ${fields.map((f) => `${f.field} ${f.message}`).join("; ")}` : detail);
    this.status = status;
  }
}

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: null,
  set(token) {
    this.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    this.token = null;
    this.user = null;
    sessionStorage.removeItem(TOKEN_KEY);
  },
  get admin() {
    return this.user !== null && this.user.role === "admin";
  },
};

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const sent = { accept: "application/json", ...headers };
  if (session.token) sent.authorization = `Bearer ${session.token}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
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

export async function signIn(email, password) {
  const answer = await api("/auth/token", { method: "POST", body: { email, password } });
  session.set(answer.access_token);
  session.user = await api("/users/me");
}

// The signed-in user again after a reload; signed out if the token expired.
export async function resume() {
  if (!session.token) return;
  try {
    session.user = await api("/users/me");
  } catch (error) {
    if (error.status === 401) session.clear();
    else throw error;
  }
}
