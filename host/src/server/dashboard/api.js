// The HTTP API (/v1) as the dashboard calls it: one function per call, the token from this tab's
// sessionStorage in the Authorization header (never in a URL), errors as ApiError with the
// server's message. What a 401 does to the page is the shell's (through `hooks`), so this
// module imports nothing.

export const TOKEN_KEY = "jobhost-token";
/** The server tells the page whether it needs a token before its first request. */
export const authNeeded = document.querySelector('meta[name="jobhost-auth"]')?.content === "token";

/** Set by the shell: whether a token is in use (the Forget token button), and a 401. */
export const hooks = { signedIn: () => {}, unauthorized: () => {} };

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    /** `invalid_input`: each field the factory's schema refuses (pointer, message). */
    this.fields = fields;
  }
}

// The latest answer to each GET and its ETag: asked again with If-None-Match, an unchanged
// answer comes back as a bodiless 304 and is taken from here (the API's answers are
// `no-store`, so the browser's cache never holds them; this map lives as long as the tab).
const seen = new Map();
const SEEN_MAX = 64;

/** One API call; an error answer becomes an ApiError carrying the server's message. */
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const known = method === "GET" ? seen.get(path) : undefined;
  if (known && known.token === token) headers["If-None-Match"] = known.etag;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  hooks.signedIn(Boolean(token));
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the server cannot be reached (${e.message})`);
  }
  let text = await response.text();
  if (response.status === 304 && known) {
    text = known.text;
  } else if (method === "GET" && response.ok && response.headers.get("ETag")) {
    seen.delete(path);
    seen.set(path, { etag: response.headers.get("ETag"), text, token });
    if (seen.size > SEEN_MAX) seen.delete(seen.keys().next().value);
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok && !(response.status === 304 && known)) {
    seen.delete(path);
    const error = data?.error ?? {};
    const message = error.message || `${response.status} ${response.statusText}`;
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      hooks.unauthorized(message);
    }
    throw new ApiError(response.status, error.code || `http_${response.status}`, message, error.fields);
  }
  return data;
}

/** A name as one URL path segment (`.` and `..` escaped too, or the browser would resolve them). */
export const seg = (name) => encodeURIComponent(name).replace(/\./g, "%2E");

export const q = (params) => {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const text = query.toString();
  return text ? `?${text}` : "";
};

