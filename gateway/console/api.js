// Tollgate's own REST API with the console session token: the only secret the browser keeps.
const SESSION = "tollgate.session";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function session() {
  const saved = sessionStorage.getItem(SESSION);
  return saved ? JSON.parse(saved) : null;
}

export function saveSession(value) {
  if (value) sessionStorage.setItem(SESSION, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION);
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body.message || (body.error && body.error.message) || message;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) {
    saveSession(null);
    message = `${message} — your session ended; log in again.`;
  }
  return new ApiError(response.status, message);
}

export async function call(method, path, { body, headers = {}, raw = false } = {}) {
  const current = session();
  const sent = { ...headers };
  if (current) sent.authorization = `Bearer ${current.token}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "Tollgate did not answer: check that the server is running, then retry.");
  }
  if (!response.ok) throw await errorOf(response);
  return raw ? response : response.json();
}

export const get = (path) => call("GET", path);

// Saves what GET `path` answers as a file named `filename` (a CSV export, say), with the session's credential.
export async function download(path, filename) {
  const response = await call("GET", path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value != null) search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}
