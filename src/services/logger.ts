/** The slice of a pino logger the services use; tests can pass a recording one. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** A logger adding `bindings` to every line (pino's); a recording logger may leave it out. */
  child?(bindings: Record<string, unknown>): Logger;
}
