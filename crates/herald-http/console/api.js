// Talking to Herald's API: the token, the one request function, and the rules that keep a
// refused or replaced token from ever showing stale data.
//
// The token lives in sessionStorage (this tab only, gone when it closes) and travels only in
// the Authorization header (and, for the WebSocket, in a subprotocol): never in a URL.
//
// Every sign-in starts a new *epoch*. A response that arrives after the epoch changed (the
// user signed out, or the token was refused meanwhile) is thrown away as `Stale`, so nothing
// from an old token is ever drawn as current. A 401 ends the epoch once, through the handler
// `main.js` installs, and is never retried: the console asks for a token instead of looping.

const TOKEN_KEY = 'herald.token';

/** The API's base URL, relative to the page (so a path prefix in front of Herald works). */
export const apiBase = new URL('api/v1/', document.baseURI);

let epoch = 0;
let unauthorized = () => {};

/** An error answer from the API (or no answer: status 0). */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A response that belongs to an earlier sign-in; callers drop it silently. */
export class Stale extends Error {
  constructor() {
    super('stale response');
  }
}

/** The stored token, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Stores a token and starts a new epoch. */
export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  return ++epoch;
}

/** Forgets the token and ends the epoch: every request still in flight becomes `Stale`. */
export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  epoch += 1;
}

/** The current epoch (to tell whether a callback still belongs to it). */
export function currentEpoch() {
  return epoch;
}

/** Installs what happens when Herald refuses the token (`message` is Herald's reason). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** Percent-encodes one path segment. */
export const seg = (value) => encodeURIComponent(String(value));

/**
 * Sends one request to `path` (relative to `api/v1/`, query included) and resolves to the
 * parsed JSON body (null when empty). Rejects with `ApiError`, or with `Stale` when the answer
 * no longer matters (including after a 401, which has already signed the user out).
 */
export async function request(method, path, body) {
  const mine = epoch;
  const bearer = token();
  if (!bearer) throw new Stale();
  const headers = { Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  let text;
  try {
    response = await fetch(new URL(path, apiBase), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    });
    text = await response.text();
  } catch (error) {
    if (mine !== epoch) throw new Stale();
    throw new ApiError(0, 'unreachable', `Herald did not answer (${error.message}).`);
  }
  if (mine !== epoch) throw new Stale();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const problem = data && typeof data === 'object' && data.error ? data.error : {};
  if (response.status === 401) {
    unauthorized(String(problem.message || 'the token was refused'));
    throw new Stale();
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      String(problem.code || `http_${response.status}`),
      String(problem.message || `HTTP ${response.status}`),
      problem.details && typeof problem.details === 'object' ? problem.details : {},
    );
  }
  return data;
}

/** Shorthands for `request`. */
export const api = {
  get: (path) => request('GET', path),
  post: (path, body = {}) => request('POST', path, body),
  patch: (path, body) => request('PATCH', path, body),
  del: (path) => request('DELETE', path),
};

/** The WebSocket URL of an API path (same host and port, `ws:` or `wss:`). */
export function socketUrl(path) {
  const url = new URL(path, apiBase);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

/** What to show for a failed call: Herald's own message, with the field it names. */
export function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  const field = error.details && error.details.field ? ` (${error.details.field})` : '';
  return `${error.message}${field}`;
}
