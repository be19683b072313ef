/**
 * Matrix errors raised by client-api logic. Until libs/http's MatrixError is wired here, this
 * class carries the same fields (status, errcode, message, extra body fields); the exception
 * filter turns it into `{"errcode":"M_...","error":"...", ...extra}` with the HTTP status.
 */
export class MatrixError extends Error {
  override readonly name = 'MatrixError';
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    /** Extra top-level fields of the error body (retry_after_ms, soft_logout, UIA flows...). */
    readonly extra: Record<string, unknown> = {},
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
    /** The body is only `extra` (the first 401 of user-interactive auth carries no errcode). */
    readonly bodyIsExtraOnly = false,
  ) {
    super(message);
  }

  toBody(): Record<string, unknown> {
    if (this.bodyIsExtraOnly) return { ...this.extra };
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}

export const badJson = (message: string) => new MatrixError(400, 'M_BAD_JSON', message);
export const notJson = (message: string) => new MatrixError(400, 'M_NOT_JSON', message);
export const missingParam = (message: string) => new MatrixError(400, 'M_MISSING_PARAM', message);
export const invalidParam = (message: string) => new MatrixError(400, 'M_INVALID_PARAM', message);
export const forbidden = (message: string) => new MatrixError(403, 'M_FORBIDDEN', message);
export const notFound = (message: string) => new MatrixError(404, 'M_NOT_FOUND', message);
export const unknownError = (status: number, message: string) => new MatrixError(status, 'M_UNKNOWN', message);
