// The REST client: Chatwoot-compatible paths, the session token in `api_access_token`.

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function createApi(session, { onUnauthorized } = {}) {
  async function request(method, path, body, { account = true } = {}) {
    const url = account ? `/api/v1/accounts/${session.accountId}${path}` : path;
    const headers = { Accept: "application/json" };
    if (session.token) headers.api_access_token = session.token;
    const form = body instanceof FormData;
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined || form ? body : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, error.message || "network error");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      if (response.status === 401 && session.token && onUnauthorized) onUnauthorized();
      throw new ApiError(response.status, (data && data.message) || response.statusText || `HTTP ${response.status}`, data);
    }
    return data;
  }
  return {
    get: (path, options) => request("GET", path, undefined, options),
    post: (path, body = {}, options) => request("POST", path, body, options),
    patch: (path, body = {}, options) => request("PATCH", path, body, options),
    del: (path, options) => request("DELETE", path, undefined, options),
    /** POST multipart form data (files); the browser sets the boundary. */
    upload: (path, formData, options) => request("POST", path, formData, options),
    /** An attachment's bytes (its URL needs the token, so an <img src> cannot load it). */
    async blob(url) {
      const response = await fetch(url, { headers: { api_access_token: session.token } });
      if (!response.ok) throw new ApiError(response.status, response.statusText || `HTTP ${response.status}`);
      return response.blob();
    },
  };
}

/** POST /auth/sign_in → {token, user, accountId}. */
export async function signIn(email, password) {
  const api = createApi({});
  const answer = await api.post("/auth/sign_in", { email, password }, { account: false });
  const data = answer.data;
  return {
    token: data.access_token,
    accountId: data.accounts[0].id,
    accountName: data.accounts[0].name,
    user: { id: data.id, name: data.available_name || data.name, email: data.email, role: data.role },
  };
}
