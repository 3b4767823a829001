/**
 * Expected failures carry a stable snake_case `code`; one table maps each code to an HTTP
 * status. Domain code throws these and never sees HTTP; programmer mistakes stay plain
 * `Error`/`TypeError` and become 500.
 */
export const errorStatus = {
  invalid_request: 400,
  malformed_json: 400,
  invalid_credentials: 401,
  missing_token: 401,
  invalid_token: 401,
  invalid_refresh_token: 401,
  refresh_token_reused: 401,
  forbidden: 403,
  cross_site_request: 403,
  invalid_current_password: 403,
  signup_disabled: 403,
  not_found: 404,
  session_not_found: 404,
  method_not_allowed: 405,
  name_taken: 409,
  last_admin: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  weak_password: 422,
  user_not_found: 404,
  user_disabled: 403,
  rate_limited: 429,
  not_ready: 503,
  store_unavailable: 503,
  server_busy: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

/** One field a validation failure names: a JSON Pointer into the request and a message. */
export interface FieldError {
  pointer: string;
  message: string;
}

export interface AuthErrorOptions {
  cause?: unknown;
  errors?: FieldError[];
  /** Extra response headers, such as `Retry-After`. */
  headers?: Record<string, string>;
  /** Extension members of the problem document (RFC 9457 §3.2), such as readiness `checks`. */
  extensions?: Record<string, unknown>;
}

/** An expected failure with a stable code; its message is safe to show to the client. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly code: ErrorCode;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string> | undefined;
  readonly extensions: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: AuthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errors = options.errors;
    this.headers = options.headers;
    this.extensions = options.extensions;
  }

  get status(): number {
    return errorStatus[this.code];
  }
}

export function isAuthError(error: unknown, code?: ErrorCode): error is AuthError {
  return error instanceof AuthError && (code === undefined || error.code === code);
}
