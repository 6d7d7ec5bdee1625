// The CoreC REST API: sign-in, tokens (kept in sessionStorage, refreshed before they
// expire) and authenticated JSON requests. Same origin as the page.

const STORAGE_KEY = "corec.session";
const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let session = loadSession();
let refreshTimer = null;
let refreshing = null;
let loggedOutHandler = () => {};
let refreshedHandler = () => {};

function loadSession() {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function saveSession(pair) {
  session = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    access_expires_ms: nsToMs(pair.access_expires_ts_ns),
    refresh_expires_ms: nsToMs(pair.refresh_expires_ts_ns),
    principal: pair.principal || null,
  };
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  } catch {
    /* private mode: keep it in memory */
  }
  scheduleRefresh();
}

function clearSession() {
  session = null;
  clearTimeout(refreshTimer);
  refreshTimer = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* ignore */
  }
}

function nsToMs(tsNs) {
  const n = Number(tsNs);
  return Number.isFinite(n) && n > 0 ? n / 1e6 : 0;
}

/** Called once the session is gone (refresh refused, 401 after refresh, sign-out). */
export function onLoggedOut(handler) {
  loggedOutHandler = handler;
}

/** Called after each successful token refresh (the WebSocket reconnects with it). */
export function onRefreshed(handler) {
  refreshedHandler = handler;
}

export function currentSession() {
  return session;
}

export function accessToken() {
  return session ? session.access_token : null;
}

export function principal() {
  return session ? session.principal : null;
}

export function isAdmin() {
  return principal()?.role === "admin";
}

/** The error message a person should read, from whatever shape the API sent. */
export function errorMessage(body, fallback) {
  if (!body) return fallback;
  if (typeof body === "string") return body || fallback;
  const detail = body.detail ?? body.error ?? body.message;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (typeof d === "string" ? d : d.msg || JSON.stringify(d))).join("; ");
  }
  if (detail && typeof detail === "object") return detail.message || detail.code || fallback;
  return fallback;
}

async function readBody(response) {
  const type = response.headers.get("content-type") || "";
  if (response.status === 204) return null;
  try {
    return type.includes("json") ? await response.json() : await response.text();
  } catch {
    return null;
  }
}

async function post(path, body, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(API + path, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
  const data = await readBody(response);
  if (!response.ok) {
    throw new ApiError(response.status, errorMessage(data, `HTTP ${response.status}`), data);
  }
  return data;
}

export async function login(user, password) {
  const pair = await post("/auth/login", { user, password });
  saveSession(pair);
  return session;
}

/** Sign out: tell the API (best effort) and forget the tokens. */
export async function logout() {
  const token = accessToken();
  clearSession();
  if (token) {
    try {
      await post("/auth/logout", {}, token);
    } catch {
      /* the token dies with its expiry anyway */
    }
  }
}

/** Exchange the refresh token for a new pair; concurrent callers share one request. */
export function refresh() {
  if (refreshing) return refreshing;
  if (!session?.refresh_token) return Promise.resolve(false);
  const token = session.refresh_token;
  refreshing = post("/auth/refresh", { refresh_token: token })
    .then((pair) => {
      saveSession(pair);
      refreshedHandler();
      return true;
    })
    .catch((err) => {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 422)) {
        expire();
        return false;
      }
      // Network trouble or the node restarting: try again soon while the access token lives.
      retryRefreshSoon();
      return Boolean(session && session.access_expires_ms > Date.now());
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

function retryRefreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh(), 10_000);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const remaining = session.access_expires_ms - Date.now();
  // A minute before expiry, or at three quarters of a short lifetime.
  let delay = remaining > 120_000 ? remaining - 60_000 : remaining * 0.75;
  delay = Math.min(Math.max(delay, 1_000), 2_000_000_000);
  refreshTimer = setTimeout(() => refresh(), delay);
}

function expire() {
  if (!session) return;
  clearSession();
  loggedOutHandler();
}

/**
 * Make sure the stored session is usable (after a page reload or a sleeping laptop):
 * refresh when the access token is (nearly) expired. Returns false when signed out.
 */
export async function ensureFresh() {
  if (!session) return false;
  const now = Date.now();
  if (session.refresh_expires_ms && session.refresh_expires_ms <= now) {
    expire();
    return false;
  }
  if (session.access_expires_ms - now < 15_000) return refresh();
  scheduleRefresh();
  return true;
}

/**
 * An authenticated request. `query` values that are null/undefined are left out.
 * A 401 triggers one refresh and one retry; a second 401 signs the person out.
 */
export async function api(path, { method = "GET", query, body } = {}) {
  if (!session) throw new ApiError(401, "Not signed in", null);
  if (session.access_expires_ms - Date.now() < 5_000) await refresh();

  let url = API + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined) params.set(k, v);
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }

  for (let attempt = 0; attempt < 2; attempt += 1) {
    const token = accessToken();
    if (!token) throw new ApiError(401, "Not signed in", null);
    const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const data = await readBody(response);
    if (response.status === 401) {
      if (attempt === 0 && (await refresh())) continue;
      expire();
      throw new ApiError(401, "Your session ended; please sign in again.", data);
    }
    if (!response.ok) {
      throw new ApiError(response.status, errorMessage(data, `HTTP ${response.status}`), data);
    }
    return data;
  }
  throw new ApiError(401, "Not signed in", null);
}

// A laptop waking up: timers were late, check the tokens now.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && session) ensureFresh();
});
