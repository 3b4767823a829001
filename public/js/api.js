// Shared by the pages: JSON requests to the API and RFC 9457 problem documents as errors.

/**
 * A wait as people say it: seconds under a minute ("1 second", "45 seconds"), whole minutes
 * from there, rounded up so the wait is never told shorter than it is ("1 minute", "15 minutes").
 */
export function formatWait(seconds) {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return s === 1 ? '1 second' : `${s} seconds`;
  const m = Math.ceil(s / 60);
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/**
 * The message shown for a problem: its detail, and with a Retry-After its wait in words. The
 * server counts the wait in seconds ("Try again in 895 seconds."); that sentence is replaced by
 * the header's wait, said in minutes once it is a minute or more.
 */
function describe(problem, retryAfter) {
  const detail = problem.detail || problem.title;
  if (retryAfter === undefined) return detail;
  const rest = detail.replace(/\s*Try again in [^.]*\.\s*$/i, '');
  return `${rest ? `${rest} ` : ''}Try again in ${formatWait(retryAfter)}.`;
}

/** A failed API call; `problem` is the server's problem document (or one made up for it). */
export class ApiError extends Error {
  constructor(problem, retryAfter) {
    super(describe(problem, retryAfter));
    this.name = 'ApiError';
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.retryAfter = retryAfter;
  }
}

async function readProblem(res) {
  const fallback = {
    type: 'about:blank',
    title: res.statusText || 'Error',
    status: res.status,
    detail: `The server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`,
  };
  const type = res.headers.get('content-type') || '';
  if (!type.includes('json')) return fallback;
  try {
    const body = await res.json();
    if (body === null || typeof body !== 'object') return fallback;
    return { ...fallback, ...body, detail: typeof body.detail === 'string' && body.detail ? body.detail : body.title || fallback.detail };
  } catch {
    return fallback;
  }
}

/**
 * Sends one JSON request to this origin and returns the parsed body (null for 204).
 * Throws an ApiError carrying the problem document on any non-2xx answer or network failure.
 */
export async function api(method, path, options = {}) {
  const res = await send(method, path, options);
  return res.status === 204 ? null : res.json();
}

/**
 * RFC 8288: the target of the `rel="next"` link of a Link header value, or null. The server sends
 * one link, a relative reference (`</users?limit=20&cursor=...>; rel="next"`).
 */
export function nextLink(header) {
  for (const part of (header || '').split(',')) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /(^|;)\s*rel="?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(match[2])) return match[1];
  }
  return null;
}

/** A GET of a paged list: its items and the path of the next page (null on the last). */
export async function apiPage(path, options = {}) {
  const res = await send('GET', path, options);
  return { items: await res.json(), next: nextLink(res.headers.get('link')) };
}

async function send(method, path, { body, token } = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // The refresh cookie is same-origin and Path=/refresh; nothing here is cross-site.
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError({
      type: 'about:blank',
      title: 'Network error',
      status: 0,
      code: 'network_error',
      detail: 'The server could not be reached. Check the connection and try again.',
    });
  }
  if (res.ok) return res;
  const retryAfter = Number.parseInt(res.headers.get('retry-after') || '', 10);
  throw new ApiError(await readProblem(res), Number.isFinite(retryAfter) ? retryAfter : undefined);
}

/** Puts a message into an alert element and shows it; textContent only, never HTML. */
export function showAlert(el, message, kind = 'danger') {
  el.className = `alert alert-${kind}`;
  el.textContent = message;
  el.hidden = false;
}

export function hideAlert(el) {
  el.hidden = true;
  el.textContent = '';
}

/**
 * A field message as every form words them: one sentence. The server names a field's problem
 * as a predicate ("is one of the most common passwords", "must be at least 8 characters");
 * the field's label becomes its subject: "Password is one of the most common passwords."
 */
function fieldSentence(input, message) {
  const text = String(message).trim();
  if (!/^[a-z]/.test(text)) return text;
  const label = input.labels && input.labels[0] ? input.labels[0].textContent.trim() : input.name;
  return `${label} ${text}${/[.!?]$/.test(text) ? '' : '.'}`;
}

/**
 * Marks the form's fields named by the problem's `errors` (JSON Pointers such as /body/name)
 * invalid and puts each message under its field. Returns whether any field was marked.
 */
export function showFieldErrors(form, errors) {
  let marked = false;
  for (const { pointer, message } of Array.isArray(errors) ? errors : []) {
    const field = typeof pointer === 'string' ? pointer.replace(/^\/body\//, '').split('/')[0] : '';
    const input = field && form.elements.namedItem(field);
    if (!(input instanceof HTMLInputElement)) continue;
    setFieldError(input, fieldSentence(input, message));
    marked = true;
  }
  return marked;
}

/**
 * Marks one input invalid (Bootstrap's is-invalid, aria-invalid) with a message in its
 * `<id>-feedback` element, which the input names in aria-describedby so screen readers read it.
 */
export function setFieldError(input, message) {
  input.classList.add('is-invalid');
  input.setAttribute('aria-invalid', 'true');
  const feedback = document.getElementById(`${input.id}-feedback`);
  if (feedback) feedback.textContent = message;
}

/** Takes one input's mark and message away. */
export function clearFieldError(input) {
  input.classList.remove('is-invalid');
  input.removeAttribute('aria-invalid');
  const feedback = document.getElementById(`${input.id}-feedback`);
  if (feedback) feedback.textContent = '';
}

export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll('.is-invalid')) clearFieldError(input);
  for (const feedback of form.querySelectorAll('.invalid-feedback')) feedback.textContent = '';
}

/** Disables a form's submit button and shows its spinner while `work` runs. */
export async function busy(form, work) {
  const button = form.querySelector('button[type="submit"]');
  const spinner = button && button.querySelector('.spinner-border');
  if (button) button.disabled = true;
  if (spinner) spinner.hidden = false;
  try {
    return await work();
  } finally {
    if (button) button.disabled = false;
    if (spinner) spinner.hidden = true;
  }
}
